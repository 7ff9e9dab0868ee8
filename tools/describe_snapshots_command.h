// The `describe-snapshots` subcommand: lists the snapshots in the fleet's storage.
#ifndef FINALSNAP_TOOLS_DESCRIBE_SNAPSHOTS_COMMAND_H_
#define FINALSNAP_TOOLS_DESCRIBE_SNAPSHOTS_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `describe-snapshots`. A --snapshot-name that does not exist is SnapshotNotFoundFault.
Command RegisterDescribeSnapshotsCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DESCRIBE_SNAPSHOTS_COMMAND_H_
