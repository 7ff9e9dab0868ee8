// `finalsnap describe-snapshots`: the snapshots in the fleet's storage, filtered as the aws CLI
// filters them. Read-only: the storage directory is never created by looking at it.
#include "describe_snapshots_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

CommandResult RunDescribe(const SnapshotFilter& filter, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  // No storage directory yet means no snapshot has been taken: an empty answer, not an error
  // (ListSnapshots, shared with the API server).
  Expected<std::vector<Snapshot>> listed = ListSnapshots(fleet.storage.path, filter);
  if (!listed.ok()) return CommandResult::Fail("InvalidParameterValue", listed.error().message());
  const std::vector<Snapshot>& snapshots = *listed;
  // ElastiCache answers a named snapshot that does not exist with a fault, not an empty list.
  if (!filter.snapshot_name.empty() && snapshots.empty()) {
    return CommandResult::Fail("SnapshotNotFoundFault",
                               "Snapshot " + filter.snapshot_name + " not found.");
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
  auto options = std::make_shared<SnapshotFilter>();
  sub->add_option("--snapshot-name", options->snapshot_name, "Only this snapshot");
  sub->add_option("--cache-cluster-id", options->cache_cluster_id,
                  "Only snapshots of this cache cluster");
  sub->add_option("--replication-group-id", options->replication_group_id,
                  "Only snapshots of this replication group");
  return Command{sub, "DescribeSnapshots",
                 [options, &globals] { return RunDescribe(*options, globals); }};
}

}  // namespace finalsnap::cli
