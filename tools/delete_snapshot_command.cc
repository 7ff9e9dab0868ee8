// `finalsnap delete-snapshot`: removes one committed snapshot from the fleet's storage and prints
// it as ElastiCache's DeleteSnapshot does, with SnapshotStatus "deleting".
#include "delete_snapshot_command.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli_common.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

CommandResult NotFound(const std::string& name) {
  return CommandResult::Fail("SnapshotNotFoundFault", "Snapshot " + name + " not found.");
}

struct DeleteSnapshotOptions {
  std::string name;
  bool yes = false;
};

CommandResult RunDeleteSnapshot(const DeleteSnapshotOptions& options,
                                const GlobalOptions& globals) {
  const std::string& name = options.name;
  std::variant<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (auto* failed = std::get_if<CommandResult>(&loaded)) return *failed;
  const Fleet& fleet = std::get<Fleet>(loaded);

  // Checked first so that deleting from a fleet that never took a snapshot does not create the
  // storage directory (a read-write open would).
  std::error_code ec;
  if (!std::filesystem::exists(fleet.storage.path, ec)) return NotFound(name);
  auto opened = SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadWrite);
  if (auto* error = std::get_if<std::string>(&opened)) {
    return CommandResult::Fail("InvalidParameterValue", *error);
  }
  SnapshotStore& store = std::get<SnapshotStore>(opened);

  std::optional<Snapshot> snapshot = store.Describe(name);
  if (!snapshot) return NotFound(name);
  // A snapshot being written belongs to a running operation; ElastiCache refuses the same way.
  // A "failed" one (unreadable manifest) may go: deleting it is how it gets cleaned up.
  if (snapshot->snapshot_status == "creating") {
    return CommandResult::Fail("InvalidSnapshotState", "Snapshot " + snapshot->snapshot_name +
                                                           " is not in available state "
                                                           "(creating).");
  }
  // A deleted snapshot cannot be brought back, so a person at a terminal is asked first (DESIGN:
  // destructive commands confirm unless --yes); scripts without a terminal proceed.
  if (!options.yes && CanPrompt()) {
    std::string question = "Delete snapshot " + snapshot->snapshot_name;
    if (!snapshot->cache_cluster_id.empty()) question += " of " + snapshot->cache_cluster_id;
    if (!snapshot->replication_group_id.empty()) {
      question += " of " + snapshot->replication_group_id;
    }
    if (!Confirm(question + "? [y/N] ")) return CommandResult::Interrupted("aborted");
  }
  if (Status s = store.Delete(name); !s.ok()) {
    // Someone else may have deleted it between Describe and Delete.
    if (!store.Describe(name)) return NotFound(name);
    return CommandResult::Fail("InvalidSnapshotState", s.message());
  }

  snapshot->snapshot_status = "deleting";
  Json doc;
  doc["Snapshot"] = SnapshotJson(*snapshot);
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
  sub->add_flag("--yes,-y", options->yes, "Do not ask for confirmation on a terminal");
  return Command{sub, "DeleteSnapshot",
                 [options, &globals] { return RunDeleteSnapshot(*options, globals); }};
}

}  // namespace finalsnap::cli
