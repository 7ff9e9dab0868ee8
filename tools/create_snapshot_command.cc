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
};

CommandResult RunCreate(const CreateOptions& options, const GlobalOptions& globals) {
  std::variant<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (auto* failed = std::get_if<CommandResult>(&loaded)) return *failed;
  const Fleet& fleet = std::get<Fleet>(loaded);

  if (!options.replication_group_id.empty()) {
    // The engine captures single nodes only so far. Still answer as ElastiCache would for an
    // unknown group, so that scripts see the same fault for a typo either way.
    if (fleet.FindReplicationGroup(options.replication_group_id) == nullptr) {
      return CommandResult::Fail(
          "ReplicationGroupNotFoundFault",
          "ReplicationGroup " + options.replication_group_id + " not found.");
    }
    return CommandResult::Fail("InvalidParameterCombination",
                               "replication groups are not supported yet");
  }

  OperationOptions op;
  ProgressLine progress("snapshot", StderrIsTerminal());
  op.progress = progress.Callback();
  const OperationResult result =
      CreateSnapshot(fleet, options.cache_cluster_id, options.snapshot_name, op);
  progress.Finish();

  if (!result.gates.empty() || result.ok) {
    Json doc;
    doc["Snapshot"] = result.snapshot ? SnapshotJson(*result.snapshot) : Json();
    doc["Gates"] = GatesJson(result.gates);
    doc["Notes"] = result.notes;
    PrintDocument(doc, globals.output, std::cout);
  }
  if (result.ok) return CommandResult::Ok();
  return CommandResult::Fail(result.fault.empty() ? "InvalidCacheClusterState" : result.fault,
                             result.message);
}

}  // namespace

Command RegisterCreateSnapshotCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "create-snapshot",
      "Take a verified snapshot of a cache cluster; the node keeps running, and writes stall "
      "only until the server has forked.");
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
  return Command{sub, "CreateSnapshot",
                 [options, &globals] { return RunCreate(*options, globals); }};
}

}  // namespace finalsnap::cli
