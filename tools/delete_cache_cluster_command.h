// The `delete-cache-cluster` subcommand: takes an optional final snapshot of a cache cluster,
// proves it, and shuts the node down (ElastiCache's DeleteCacheCluster).
#ifndef FINALSNAP_TOOLS_DELETE_CACHE_CLUSTER_COMMAND_H_
#define FINALSNAP_TOOLS_DELETE_CACHE_CLUSTER_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `delete-cache-cluster`. Fails with the engine's fault (CacheClusterNotFound,
// SnapshotAlreadyExistsFault, InvalidCacheClusterState, ...) when a gate refuses; asks for
// confirmation on a terminal unless --yes.
Command RegisterDeleteCacheClusterCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DELETE_CACHE_CLUSTER_COMMAND_H_
