// `finalsnap describe-snapshots`: the snapshots in the fleet's storage, filtered as the aws CLI
// filters them. Read-only: the storage directory is never created by looking at it.
#include "describe_snapshots_command.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

struct DescribeOptions {
  std::string snapshot_name;
  std::string cache_cluster_id;
  std::string replication_group_id;
};

bool Matches(const Snapshot& snapshot, const DescribeOptions& options) {
  if (!options.snapshot_name.empty() &&
      !EqualsIgnoreCase(snapshot.snapshot_name, options.snapshot_name)) {
    return false;
  }
  if (!options.cache_cluster_id.empty() &&
      !EqualsIgnoreCase(snapshot.cache_cluster_id, options.cache_cluster_id)) {
    return false;
  }
  if (!options.replication_group_id.empty() &&
      !EqualsIgnoreCase(snapshot.replication_group_id, options.replication_group_id)) {
    return false;
  }
  return true;
}

CommandResult RunDescribe(const DescribeOptions& options, const GlobalOptions& globals) {
  std::variant<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (auto* failed = std::get_if<CommandResult>(&loaded)) return *failed;
  const Fleet& fleet = std::get<Fleet>(loaded);

  std::vector<Snapshot> snapshots;
  // No storage directory yet means no snapshot has been taken: an empty answer, not an error.
  std::error_code ec;
  if (std::filesystem::exists(fleet.storage.path, ec)) {
    auto opened = SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadOnly);
    if (auto* error = std::get_if<std::string>(&opened)) {
      return CommandResult::Fail("InvalidParameterValue", *error);
    }
    for (Snapshot& s : std::get<SnapshotStore>(opened).List()) {
      if (Matches(s, options)) snapshots.push_back(std::move(s));
    }
  }
  // ElastiCache answers a named snapshot that does not exist with a fault, not an empty list.
  if (!options.snapshot_name.empty() && snapshots.empty()) {
    return CommandResult::Fail("SnapshotNotFoundFault",
                               "Snapshot " + options.snapshot_name + " not found.");
  }

  Json list = Json::array();
  for (const Snapshot& s : snapshots) list.push_back(SnapshotJson(s));
  Json doc;
  doc["Snapshots"] = std::move(list);
  PrintDocument(doc, globals.output, std::cout);
  return CommandResult::Ok();
}

}  // namespace

Command RegisterDescribeSnapshotsCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "describe-snapshots",
      "List the snapshots in the fleet's storage (all, or those matching the filters).");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DescribeOptions>();
  sub->add_option("--snapshot-name", options->snapshot_name, "Only this snapshot");
  sub->add_option("--cache-cluster-id", options->cache_cluster_id,
                  "Only snapshots of this cache cluster");
  sub->add_option("--replication-group-id", options->replication_group_id,
                  "Only snapshots of this replication group");
  return Command{sub, "DescribeSnapshots",
                 [options, &globals] { return RunDescribe(*options, globals); }};
}

}  // namespace finalsnap::cli
