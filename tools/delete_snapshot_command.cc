// `finalsnap delete-snapshot`: removes one committed snapshot from the fleet's storage and prints
// it as ElastiCache's DeleteSnapshot does, with SnapshotStatus "deleting".
#include "delete_snapshot_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli_common.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

struct DeleteSnapshotOptions {
  std::string name;
  bool yes = false;
};

CommandResult RunDeleteSnapshot(const DeleteSnapshotOptions& options,
                                const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  // A deleted snapshot cannot be brought back: confirmed like every delete (ConfirmDestructive),
  // once the snapshot is known to exist, so that the question can name its source.
  std::optional<CommandResult> refused;
  auto confirm = [&](const Snapshot& snapshot) {
    std::string question = "Delete snapshot " + snapshot.snapshot_name;
    if (!snapshot.cache_cluster_id.empty()) question += " of " + snapshot.cache_cluster_id;
    if (!snapshot.replication_group_id.empty()) {
      question += " of " + snapshot.replication_group_id;
    }
    refused = ConfirmDestructive("delete-snapshot", question + "? [y/N] ", options.yes);
    return !refused.has_value();
  };
  // The checks (unknown name, a snapshot still being written) are shared with the API server.
  SnapshotDeletion deletion = DeleteStoredSnapshot(fleet.storage.path, options.name, confirm);
  if (deletion.declined) return *refused;
  if (!deletion.ok()) return CommandResult::Fail(deletion.fault, deletion.message);

  Json doc;
  doc["Snapshot"] = SnapshotJson(*deletion.snapshot);
  PrintDocument(doc, globals.output, std::cout);
  return CommandResult::Ok();
}

}  // namespace

Command RegisterDeleteSnapshotCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "delete-snapshot", "Delete a snapshot (its manifest and files) from the fleet's storage.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DeleteSnapshotOptions>();
  sub->add_option("--snapshot-name", options->name, "The snapshot to delete (case-insensitive)")
      ->required();
  AddYesFlag(sub, options->yes);
  return Command{sub, "DeleteSnapshot",
                 [options, &globals] { return RunDeleteSnapshot(*options, globals); }};
}

}  // namespace finalsnap::cli
