// The `delete-replication-group` subcommand: takes an optional final snapshot of every shard of a
// replication group (one primary with replicas, or a sharded Redis Cluster), proves it, and shuts
// the group down, replicas first (ElastiCache's DeleteReplicationGroup).
#ifndef FINALSNAP_TOOLS_DELETE_REPLICATION_GROUP_COMMAND_H_
#define FINALSNAP_TOOLS_DELETE_REPLICATION_GROUP_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `delete-replication-group`. Fails with the engine's fault (ReplicationGroupNotFoundFault,
// SnapshotAlreadyExistsFault, InvalidReplicationGroupStateFault, InvalidParameterCombination,
// ...) when a gate refuses; asks for confirmation on a terminal unless --yes.
Command RegisterDeleteReplicationGroupCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DELETE_REPLICATION_GROUP_COMMAND_H_
