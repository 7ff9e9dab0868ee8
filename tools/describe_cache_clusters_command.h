// The `describe-cache-clusters` subcommand: the live state of the fleet's cache clusters.
#ifndef FINALSNAP_TOOLS_DESCRIBE_CACHE_CLUSTERS_COMMAND_H_
#define FINALSNAP_TOOLS_DESCRIBE_CACHE_CLUSTERS_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `describe-cache-clusters`. An id not in the fleet is CacheClusterNotFound.
Command RegisterDescribeCacheClustersCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DESCRIBE_CACHE_CLUSTERS_COMMAND_H_
