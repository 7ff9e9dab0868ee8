// `finalsnap describe-cache-clusters`: asks each of the fleet's cache clusters (or the one named)
// for its live state. An unreachable node is reported with status "unreachable" and the reason,
// not as a failed command: describing a fleet must work when part of it is down.
#include "describe_cache_clusters_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli_common.h"
#include "finalsnap/engine.h"

namespace finalsnap::cli {
namespace {

CommandResult RunDescribe(const std::string& id, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  std::optional<std::string_view> filter;
  if (!id.empty()) filter = id;
  Json list = Json::array();
  for (const CacheClusterInfo& info : DescribeCacheClusters(fleet, filter)) {
    list.push_back(CacheClusterJson(info));
  }
  // A standalone cluster is always listed (if only as unreachable); a group member only when
  // its group answered and has it.
  if (filter && list.empty()) {
    return CommandResult::Fail("CacheClusterNotFound", "CacheCluster " + id + " not found.");
  }
  Json doc;
  doc["CacheClusters"] = std::move(list);
  PrintDocument(doc, globals.output, std::cout);
  return CommandResult::Ok();
}

}  // namespace

Command RegisterDescribeCacheClustersCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "describe-cache-clusters",
      "Show the live state of the fleet's cache clusters, standalone ones and the members of "
      "replication groups: status, engine, version, endpoint, role.");
  // Owned by the closure, which outlives parsing: CLI11 writes the value here.
  auto id = std::make_shared<std::string>();
  sub->add_option("--cache-cluster-id", *id, "Only this cache cluster (case-insensitive)");
  return Command{sub, "DescribeCacheClusters",
                 [id, &globals] { return RunDescribe(*id, globals); }};
}

}  // namespace finalsnap::cli
