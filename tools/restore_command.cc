// `finalsnap restore`: finalsnap::RestoreSnapshot, writing a snapshot's shards as dump.rdb files
// that redis-server loads from its `dir`.
//
// The target is checked here before the engine runs, so that a problem with the target (not a
// directory, not writable, a dump.rdb already there) is told apart from a problem with the
// snapshot: the first is the caller's parameter (InvalidParameterValue), the second the
// snapshot's state (InvalidSnapshotState).
#include "restore_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli_common.h"
#include "finalsnap/engine.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

namespace fs = std::filesystem;

struct RestoreOptions {
  std::string snapshot_name;
  std::string target_dir;
  std::string endpoint;
};

CommandResult NotFound(const std::string& name) {
  return CommandResult::Fail("SnapshotNotFoundFault", "Snapshot " + name + " not found.");
}

// Where RestoreSnapshot will write each shard (engine.h): the target itself for one shard, a
// directory per NodeGroupId for several.
Status CheckTarget(const fs::path& target, const Snapshot& snapshot) {
  std::error_code ec;
  if (!fs::exists(target, ec)) return Status::Ok();  // RestoreSnapshot creates it, 0700
  if (!fs::is_directory(target, ec)) {
    return Status::Error(target.string() + " exists and is not a directory");
  }
  if (::access(target.c_str(), W_OK | X_OK) != 0) {
    return Status::Error("cannot write to " + target.string() + ": " + std::strerror(errno));
  }
  for (const NodeSnapshot& node : snapshot.node_snapshots) {
    const fs::path dir = snapshot.node_snapshots.size() == 1 ? target : target / node.node_group_id;
    if (fs::exists(dir / "dump.rdb", ec)) {
      return Status::Error((dir / "dump.rdb").string() +
                           " exists; restore never overwrites a dump.rdb");
    }
  }
  return Status::Ok();
}

CommandResult RunRestore(const RestoreOptions& options, const GlobalOptions& globals) {
  if (!options.endpoint.empty()) {
    return CommandResult::Fail("InvalidParameterCombination",
                               "restore to an endpoint is not supported yet; use --target-dir");
  }
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  std::error_code ec;
  if (!fs::exists(fleet.storage.path, ec)) return NotFound(options.snapshot_name);
  Expected<SnapshotStore> opened =
      SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadOnly);
  if (!opened.ok()) return CommandResult::Fail("InvalidParameterValue", opened.error().message());
  const SnapshotStore& store = *opened;
  const std::optional<Snapshot> snapshot = store.Describe(options.snapshot_name);
  if (!snapshot) return NotFound(options.snapshot_name);
  if (snapshot->snapshot_status != "available") {
    std::string message = "Snapshot " + snapshot->snapshot_name + " is not in available state (" +
                          snapshot->snapshot_status + ").";
    if (!snapshot->status_message.empty()) message += " " + snapshot->status_message;
    return CommandResult::Fail("InvalidSnapshotState", message);
  }

  const fs::path target = fs::absolute(options.target_dir, ec).lexically_normal();
  if (Status usable = CheckTarget(target, *snapshot); !usable.ok()) {
    return CommandResult::Fail("InvalidParameterValue", usable.message());
  }
  const RestoreResult result = RestoreSnapshot(store, snapshot->snapshot_name, target);
  if (!result.status.ok()) {
    return CommandResult::Fail("InvalidSnapshotState", result.status.message());
  }

  Json files = Json::array();
  for (const fs::path& file : result.files) files.push_back(file.string());
  Json doc;
  doc["SnapshotName"] = snapshot->snapshot_name;
  doc["Files"] = std::move(files);
  doc["RdbBytes"] = result.rdb_bytes;
  PrintDocument(doc, globals.output, std::cout);
  return CommandResult::Ok();
}

}  // namespace

Command RegisterRestoreCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "restore",
      "Write a snapshot's RDB files, decompressed and validated, as dump.rdb files for "
      "redis-server (<dir>/dump.rdb, or <dir>/<NodeGroupId>/dump.rdb for several shards).");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<RestoreOptions>();
  sub->add_option("--snapshot-name", options->snapshot_name,
                  "The snapshot to restore (case-insensitive)")
      ->required();
  // Exactly one target; neither or both is a command-line error (exit 252).
  CLI::Option_group* target = sub->add_option_group("target", "Where to restore to");
  target->add_option("--target-dir", options->target_dir,
                     "Directory for dump.rdb (created if missing; an existing dump.rdb is never "
                     "overwritten)");
  target->add_option("--endpoint", options->endpoint,
                     "HOST:PORT of a server to load the snapshot into (not supported yet)");
  target->require_option(1);
  return Command{sub, "Restore", [options, &globals] { return RunRestore(*options, globals); }};
}

}  // namespace finalsnap::cli
