// `finalsnap delete-cache-cluster`: finalsnap::DeleteCacheCluster behind the aws CLI's flags.
//
// The result is printed whether the engine deleted the node or refused: a refusal's gates and
// notes are what an operator needs to see (which gate, what evidence, what was put back), so
// they go to stdout as for a success, and the error line to stderr. Only when nothing got as far
// as a gate (an unknown id) is stdout left empty, as the aws CLI leaves it for a failed call.
#include "delete_cache_cluster_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli_common.h"
#include "finalsnap/engine.h"

namespace finalsnap::cli {
namespace {

struct DeleteOptions {
  std::string cache_cluster_id;
  // Given at all (even empty) means "take a final snapshot of this name": only leaving the
  // option out means none, as in ElastiCache. An empty name is refused before anything runs
  // (finalsnap_main.cc), and the engine's snapshot-name-free gate would refuse it again.
  CLI::Option* final_snapshot_option = nullptr;
  std::string final_snapshot;
  bool yes = false;
  bool dry_run = false;
};

std::string Question(const std::string& id, const CacheClusterEntry* entry,
                     const std::optional<std::string>& snapshot) {
  std::string q = "Delete cache cluster " + id +
                  (entry != nullptr ? " at " + entry->endpoint.ToString() : std::string()) +
                  " and shut it down";
  if (snapshot) q += " with final snapshot " + *snapshot;
  return q + "? [y/N] ";
}

CommandResult RunDelete(const DeleteOptions& options, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  if (!options.dry_run) RecoverAbandoned(fleet);

  std::optional<std::string> snapshot;
  if (options.final_snapshot_option->count() > 0) snapshot = options.final_snapshot;

  // Confirmed before anything touches the node. A dry run changes nothing, so it needs none.
  // (An id that names nothing is asked about too; the engine then refuses it.)
  const CacheClusterEntry* entry = fleet.FindCacheCluster(options.cache_cluster_id);
  if (!options.dry_run) {
    if (auto refused = ConfirmDestructive(
            "delete-cache-cluster", Question(options.cache_cluster_id, entry, snapshot),
            options.yes)) {
      return *refused;
    }
  }

  OperationOptions op;
  op.cancel = globals.cancel;
  op.dry_run = options.dry_run;
  ProgressLine progress("final snapshot", snapshot.has_value() && StderrIsTerminal());
  op.observer = progress.Observer();
  const OperationResult result = DeleteCacheCluster(fleet, options.cache_cluster_id, snapshot, op);
  progress.Finish();

  Json doc;
  if (options.dry_run) {
    doc["DryRun"] = true;
    doc["Plan"] = result.plan;
  } else {
    doc["CacheCluster"] = CacheClusterJson(result.cluster);
    if (result.snapshot) doc["Snapshot"] = SnapshotJson(*result.snapshot);
  }
  return ReportOperation(result, std::move(doc), globals, "InvalidCacheClusterState");
}

}  // namespace

Command RegisterDeleteCacheClusterCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "delete-cache-cluster",
      "Take a verified final snapshot of a cache cluster (when --final-snapshot-identifier is "
      "given), then shut its node down. Nothing is shut down unless every gate passed.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DeleteOptions>();
  sub->add_option("--cache-cluster-id", options->cache_cluster_id,
                  "The cache cluster to delete (case-insensitive)")
      ->required();
  options->final_snapshot_option =
      AddDeleteOptions(sub, options->final_snapshot, options->yes, options->dry_run);
  Command command{sub, "DeleteCacheCluster",
                 [options, &globals] { return RunDelete(*options, globals); }};
  command.cancellable = true;
  return command;
}

}  // namespace finalsnap::cli
