// `finalsnap delete-replication-group`: finalsnap::DeleteReplicationGroup behind the aws CLI's
// flags. As with delete-cache-cluster, a refusal that got as far as a gate still prints the gates
// and notes on stdout, with the error line on stderr.
#include "delete_replication_group_command.h"

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "cli_common.h"
#include "finalsnap/engine.h"

namespace finalsnap::cli {
namespace {

struct DeleteGroupOptions {
  std::string replication_group_id;
  // Given at all (even empty) means "take a final snapshot of this name"; see
  // delete_cache_cluster_command.cc.
  CLI::Option* final_snapshot_option = nullptr;
  std::string final_snapshot;
  bool retain_primary_cluster = false;
  bool from_replica = false;
  bool yes = false;
  bool dry_run = false;
};

CommandResult RunDeleteGroup(const DeleteGroupOptions& options, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  if (!options.dry_run) RecoverAbandoned(fleet);

  std::optional<std::string> snapshot;
  if (options.final_snapshot_option->count() > 0) snapshot = options.final_snapshot;
  // Confirmed before anything touches a node; a dry run changes nothing and needs none.
  if (!options.dry_run) {
    const ReplicationGroupEntry* entry = fleet.FindReplicationGroup(options.replication_group_id);
    std::string q = "Delete replication group " +
                    (entry != nullptr ? entry->id : options.replication_group_id) +
                    " and shut down " +
                    (options.retain_primary_cluster ? "its replicas" : "every member");
    if (snapshot) q += " with final snapshot " + *snapshot;
    if (auto refused = ConfirmDestructive("delete-replication-group", q + "? [y/N] ",
                                          options.yes)) {
      return *refused;
    }
  }

  OperationOptions op;
  op.cancel = globals.cancel;
  op.dry_run = options.dry_run;
  op.snapshot_from_replica = options.from_replica;
  ProgressLine progress("final snapshot", snapshot.has_value() && StderrIsTerminal());
  op.observer = progress.Observer();
  const OperationResult result = DeleteReplicationGroup(
      fleet, options.replication_group_id, snapshot, options.retain_primary_cluster, op);
  progress.Finish();

  Json doc;
  if (options.dry_run) {
    doc["DryRun"] = true;
    doc["Plan"] = result.plan;
  } else {
    ReplicationGroupInfo group;
    if (result.group) {
      group = *result.group;
    } else {
      group.replication_group_id = options.replication_group_id;
      group.status = "available";
    }
    doc["ReplicationGroup"] = ReplicationGroupJson(group);
    if (result.snapshot) doc["Snapshot"] = SnapshotJson(*result.snapshot);
  }
  return ReportOperation(result, std::move(doc), globals, "InvalidReplicationGroupStateFault");
}

}  // namespace

Command RegisterDeleteReplicationGroupCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "delete-replication-group",
      "Pause writes on every primary of a replication group, take a verified final snapshot of "
      "every shard (when --final-snapshot-identifier is given), then shut down the replicas and "
      "after them the primaries. Nothing is shut down unless every gate passed.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DeleteGroupOptions>();
  sub->add_option("--replication-group-id", options->replication_group_id,
                  "The replication group to delete (case-insensitive)")
      ->required();
  options->final_snapshot_option =
      AddDeleteOptions(sub, options->final_snapshot, options->yes, options->dry_run);
  sub->add_flag("--retain-primary-cluster", options->retain_primary_cluster,
                "Shut down the replicas only; keep the primary running (one shard only)");
  sub->add_flag("--from-replica", options->from_replica,
                "Capture each shard from an in-sync replica instead of its primary");
  Command command{sub, "DeleteReplicationGroup",
                 [options, &globals] { return RunDeleteGroup(*options, globals); }};
  command.cancellable = true;
  return command;
}

}  // namespace finalsnap::cli
