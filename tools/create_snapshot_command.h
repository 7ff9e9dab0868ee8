// The `create-snapshot` subcommand: a verified snapshot of a cache cluster that keeps running.
#ifndef FINALSNAP_TOOLS_CREATE_SNAPSHOT_COMMAND_H_
#define FINALSNAP_TOOLS_CREATE_SNAPSHOT_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `create-snapshot`. Exactly one of --cache-cluster-id and --replication-group-id.
Command RegisterCreateSnapshotCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_CREATE_SNAPSHOT_COMMAND_H_
