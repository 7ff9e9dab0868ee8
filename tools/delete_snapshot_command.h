// The `delete-snapshot` subcommand: removes one snapshot from the fleet's storage.
#ifndef FINALSNAP_TOOLS_DELETE_SNAPSHOT_COMMAND_H_
#define FINALSNAP_TOOLS_DELETE_SNAPSHOT_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `delete-snapshot`. A missing snapshot is SnapshotNotFoundFault; one still being written
// is InvalidSnapshotState.
Command RegisterDeleteSnapshotCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DELETE_SNAPSHOT_COMMAND_H_
