// `finalsnap create-snapshot`: finalsnap::CreateSnapshot behind the aws CLI's flags.
//
// As with delete-cache-cluster, a refusal that got as far as a gate still prints the gates and
// notes on stdout (what refused, what was put back on the node), with the error line on stderr.
#include "create_snapshot_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli_common.h"
#include "finalsnap/engine.h"

namespace finalsnap::cli {
namespace {

struct CreateOptions {
  std::string cache_cluster_id;
  std::string replication_group_id;
  std::string snapshot_name;
  bool from_replica = false;
};

CommandResult RunCreate(const CreateOptions& options, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  OperationOptions op;
  op.cancel = globals.cancel;
  op.snapshot_from_replica = options.from_replica;
  ProgressLine progress("snapshot", StderrIsTerminal());
  op.observer = progress.Observer();
  const bool group = !options.replication_group_id.empty();
  const OperationResult result =
      group ? CreateReplicationGroupSnapshot(fleet, options.replication_group_id,
                                             options.snapshot_name, op)
            : CreateSnapshot(fleet, options.cache_cluster_id, options.snapshot_name, op);
  progress.Finish();

  Json doc;
  doc["Snapshot"] = result.snapshot ? SnapshotJson(*result.snapshot) : Json();
  return ReportOperation(result, std::move(doc), globals,
                         group ? "InvalidReplicationGroupStateFault" : "InvalidCacheClusterState");
}

}  // namespace

Command RegisterCreateSnapshotCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "create-snapshot",
      "Take a verified snapshot of a cache cluster or a replication group (every shard cut at "
      "the same moment); the nodes keep running, and writes stall only until each server has "
      "forked.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<CreateOptions>();
  // Exactly one source, as in the aws CLI; CLI11 enforces it so a wrong combination is a
  // command-line error (exit 252), not a failed operation.
  CLI::Option_group* source = sub->add_option_group("source", "What to snapshot");
  source->add_option("--cache-cluster-id", options->cache_cluster_id,
                     "The cache cluster to snapshot (case-insensitive)");
  source->add_option("--replication-group-id", options->replication_group_id,
                     "The replication group to snapshot (case-insensitive)");
  source->require_option(1);
  sub->add_option("--snapshot-name", options->snapshot_name, "Name of the new snapshot")
      ->required();
  sub->add_flag("--from-replica", options->from_replica,
                "Replication groups: capture each shard from an in-sync replica (once it has "
                "applied everything the paused primary had), sparing the primary the fork");
  Command command{sub, "CreateSnapshot",
                 [options, &globals] { return RunCreate(*options, globals); }};
  command.cancellable = true;
  return command;
}

}  // namespace finalsnap::cli
