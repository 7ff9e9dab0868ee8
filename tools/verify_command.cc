// `finalsnap verify PATH`: runs finalsnap::VerifyPath and presents the results. PATH may also be
// the name of a snapshot in the fleet's storage: then the manifest's files are verified and each
// one's CRC-64 is compared with the manifest's.
//
// JSON output uses ElastiCache-style PascalCase field names and keeps every field present (null
// when unknown), so that scripts can rely on one schema for valid and invalid files alike.
#include "verify_command.h"

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_common.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "finalsnap/verify.h"

namespace finalsnap::cli {
namespace {

double Round(double value, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(value * scale) / scale;
}

// Decoded RDB megabytes (10^6 bytes) per second of wall-clock time.
double ThroughputMBps(const FileVerification& file) {
  if (file.seconds <= 0) return 0;
  return Round(static_cast<double>(file.report.bytes) / 1e6 / file.seconds, 1);
}

// Makes binary AUX values and keys printable on one line: control and non-ASCII bytes become
// \xNN, as redis-cli shows them.
std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '\\') {
      out += c;
    } else {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", byte);
      out += buf;
    }
  }
  return out;
}

// One line saying what is wrong with a file, without its path.
std::string ErrorSummary(const FileVerification& file) {
  if (!file.rdb_error) return file.io_error;
  std::string summary = file.rdb_error->ToString();
  if (!file.io_error.empty()) summary += "; " + file.io_error;
  return summary;
}

bool ChecksumKnown(rdb::ChecksumVerdict verdict) {
  return verdict == rdb::ChecksumVerdict::kMatch || verdict == rdb::ChecksumVerdict::kMismatch ||
         verdict == rdb::ChecksumVerdict::kDisabled;
}

Json ErrorJson(const FileVerification& file) {
  Json error = Json::object();
  if (file.rdb_error) {
    const rdb::Diagnostic& d = *file.rdb_error;
    error["Class"] = std::string(rdb::ErrcName(d.code));
    error["Offset"] = d.offset;
    error["State"] = d.state.empty() ? Json() : Json(d.state);
    error["Key"] = d.key.empty() ? Json() : Json(d.key);
    error["Type"] = d.type.empty() ? Json() : Json(d.type);
    error["Db"] = d.db ? Json(*d.db) : Json();
    error["Message"] = d.message;
    // A truncated compressed file fails in both stages; keep the decompressor's account too.
    if (!file.io_error.empty()) error["IoError"] = file.io_error;
  } else {
    error["Class"] = "io";
    error["Offset"] = nullptr;
    error["State"] = nullptr;
    error["Key"] = nullptr;
    error["Type"] = nullptr;
    error["Db"] = nullptr;
    error["Message"] = file.io_error;
  }
  return error;
}

Json FileJson(const FileVerification& file) {
  const rdb::Report& report = file.report;
  const bool header_read = report.rdb_version != 0;
  Json j;
  j["Path"] = file.path;
  j["Compression"] = std::string(CompressionName(file.compression));
  j["StoredBytes"] = file.stored_bytes;
  j["RdbBytes"] = report.bytes;
  j["RdbVersion"] = header_read ? Json(report.rdb_version) : Json();
  j["Family"] = !header_read                            ? Json()
                : report.family == rdb::Family::kValkey ? Json("valkey")
                                                        : Json("redis");
  j["Valid"] = file.ok();
  Json checksum;
  checksum["Verdict"] = std::string(rdb::ChecksumVerdictName(report.checksum));
  const bool known = ChecksumKnown(report.checksum);
  checksum["Computed"] = known ? Json(Hex64(report.computed_crc)) : Json();
  checksum["Stored"] = known ? Json(Hex64(report.stored_crc)) : Json();
  j["Checksum"] = std::move(checksum);
  Json aux = Json::object();
  for (const auto& [name, value] : report.aux) aux[name] = value;
  j["Aux"] = std::move(aux);
  Json databases = Json::array();
  for (const auto& [db, counts] : report.databases) {
    databases.push_back({{"Db", db}, {"Keys", counts.keys}, {"Expires", counts.expires}});
  }
  j["Databases"] = std::move(databases);
  j["Keys"] = report.TotalKeys();
  j["Expires"] = report.TotalExpires();
  j["Functions"] = report.functions;
  j["ModuleAux"] = report.module_aux;
  j["SlotInfo"] = report.slot_info;
  j["Seconds"] = Round(file.seconds, 6);
  j["ThroughputMBps"] = ThroughputMBps(file);
  if (!file.ok()) j["Error"] = ErrorJson(file);
  return j;
}

void PrintText(const FileVerification& file, std::ostream& out) {
  const rdb::Report& report = file.report;
  out << "[file] " << file.path << " (" << CompressionName(file.compression) << ", "
      << file.stored_bytes << " bytes stored)\n";
  if (file.path_error) {
    out << "[error] " << file.io_error << "\n";
    return;
  }
  if (report.rdb_version != 0) {
    out << "[info] RDB version " << report.rdb_version << " ("
        << (report.family == rdb::Family::kValkey ? "valkey" : "redis") << "), " << report.bytes
        << " bytes\n";
  }
  for (const auto& [name, value] : report.aux) {
    out << "[aux] " << Printable(name) << " = '" << Printable(value) << "'\n";
  }
  for (const auto& [db, counts] : report.databases) {
    out << "[db" << db << "] " << counts.keys << " keys, " << counts.expires << " expires\n";
  }
  out << "[info] " << report.TotalKeys() << " keys, " << report.TotalExpires() << " expires, "
      << report.functions << " functions, " << report.module_aux << " module aux, "
      << report.slot_info << " slot info\n";
  if (ChecksumKnown(report.checksum)) {
    out << "[checksum] " << rdb::ChecksumVerdictName(report.checksum) << " (computed "
        << Hex64(report.computed_crc) << ", stored " << Hex64(report.stored_crc) << ")\n";
  } else {
    out << "[checksum] " << rdb::ChecksumVerdictName(report.checksum) << "\n";
  }
  if (file.ok()) {
    char timing[64];
    std::snprintf(timing, sizeof(timing), "%.3f s, %.1f MB/s", file.seconds, ThroughputMBps(file));
    out << "\\o/ RDB looks OK! \\o/ (" << timing << ")\n";
  } else {
    out << "[error] " << Printable(ErrorSummary(file)) << "\n";
  }
}

// A snapshot in the fleet's storage, for `verify NAME`.
struct SnapshotTarget {
  std::filesystem::path dir;
  Snapshot manifest;
};

// Looks PATH up as a snapshot name when it is not a path that exists. Nothing here may make
// verify depend on a fleet file: with none (or no such snapshot) the path is verified as a path
// and fails as one. A fleet file that exists but is refused is reported, though, since the user
// may well have meant a snapshot and would otherwise see only "no such file". nullopt: verify
// PATH as a path.
Expected<std::optional<SnapshotTarget>, CommandResult> FindSnapshot(const std::string& path,
                                                                    const GlobalOptions& globals) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) || !CheckSnapshotName(path).ok())
    return std::optional<SnapshotTarget>();
  const std::filesystem::path fleet_path = DefaultFleetPath(globals.fleet);
  Expected<Fleet, FleetError> loaded = LoadFleet(fleet_path);
  if (!loaded.ok()) {
    if (!std::filesystem::exists(fleet_path, ec)) return std::optional<SnapshotTarget>();
    return CommandResult::Fail("InvalidParameterValue",
                               path +
                                   ": no such file or directory, and the fleet file that "
                                   "could name such a snapshot was refused: " +
                                   loaded.error().ToString());
  }
  const Fleet& fleet = *loaded;
  if (Status local = CheckLocalStorage(fleet.storage); !local.ok()) {
    return CommandResult::Fail("InvalidParameterValue",
                               fleet_path.string() + ": " + local.message());
  }
  if (!std::filesystem::exists(fleet.storage.path, ec)) return std::optional<SnapshotTarget>();
  Expected<SnapshotStore> opened =
      SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadOnly);
  if (!opened.ok()) return std::optional<SnapshotTarget>();
  const SnapshotStore& store = *opened;
  std::optional<std::filesystem::path> dir = store.SnapshotDir(path);
  std::optional<Snapshot> manifest = store.Describe(path);
  if (!dir || !manifest) return std::optional<SnapshotTarget>();
  return std::optional<SnapshotTarget>(SnapshotTarget{std::move(*dir), std::move(*manifest)});
}

// A file's CRC-64 against the manifest's, for files of a snapshot; nullopt when there is no
// manifest entry to compare with (a plain file or directory) or the file did not verify.
std::optional<bool> MatchesManifest(const FileVerification& file,
                                    const std::optional<uint64_t>& expected) {
  if (!expected || !file.ok()) return std::nullopt;
  return file.report.computed_crc == *expected;
}

CommandResult RunVerify(const std::string& path, const GlobalOptions& globals) {
  Expected<std::optional<SnapshotTarget>, CommandResult> found = FindSnapshot(path, globals);
  if (!found.ok()) return found.error();
  const SnapshotTarget* snapshot = found->has_value() ? &found->value() : nullptr;

  bool is_directory = std::filesystem::is_directory(path);
  std::vector<FileVerification> files;
  // Per file, the CRC-64 the manifest recorded, when verifying a snapshot by name.
  std::vector<std::optional<uint64_t>> expected_crc;
  if (snapshot != nullptr && !snapshot->manifest.node_snapshots.empty()) {
    // The manifest's files, not whatever the directory holds: a file the manifest names but
    // the directory lacks is then a failure, as it must be.
    is_directory = true;
    // Names from a manifest: regular files only, never followed through a symbolic link.
    for (const NodeSnapshot& node : snapshot->manifest.node_snapshots) {
      files.push_back(
          VerifyFile((snapshot->dir / node.file).string(), rdb::Options{}, FileKind::kRegular));
      expected_crc.push_back(node.crc64);
    }
  } else if (snapshot != nullptr) {
    // No files in the manifest (an unreadable one has none): check what is there.
    is_directory = true;
    files = VerifyPath(snapshot->dir.string(), rdb::Options{}, FileKind::kRegular);
    expected_crc.resize(files.size());
  } else if (path == "-") {
    // Standard input, read once (a pipe cannot be read twice; VerifyFile knows).
    files = {VerifyDescriptor(0, "-")};
    expected_crc.resize(files.size());
  } else {
    files = VerifyPath(path);
    expected_crc.resize(files.size());
  }

  const FileVerification* first_failure = nullptr;
  std::string first_message;
  size_t failures = 0;
  bool examined = false;  // at least one file was opened and read
  for (size_t i = 0; i < files.size(); ++i) {
    const FileVerification& file = files[i];
    if (!file.path_error) examined = true;
    std::string why;
    const std::optional<bool> match = MatchesManifest(file, expected_crc[i]);
    if (!file.ok()) {
      why = ErrorSummary(file);
    } else if (match.has_value() && !*match) {
      why = "CRC-64 " + Hex64(file.report.computed_crc) + " differs from the manifest's " +
            Hex64(*expected_crc[i]);
    }
    if (why.empty()) continue;
    ++failures;
    if (first_failure == nullptr) {
      first_failure = &file;
      first_message = file.path + ": " + why;
    }
  }
  // A snapshot whose manifest could not be read is not a good snapshot, whatever its files say.
  std::string snapshot_problem;
  if (snapshot != nullptr && snapshot->manifest.snapshot_status != "available") {
    snapshot_problem = "snapshot " + snapshot->manifest.snapshot_name + " is " +
                       snapshot->manifest.snapshot_status + ", not available";
    if (!snapshot->manifest.status_message.empty()) {
      snapshot_problem += ": " + snapshot->manifest.status_message;
    }
  }

  // A path that could not be examined at all gets only the error line, as the aws CLI prints
  // nothing on stdout for a refused request. Anything examined is reported, valid or not, and so
  // is a snapshot found by name even when its files are missing.
  if (examined || snapshot != nullptr) {
    if (globals.output == OutputFormat::kText) {
      if (snapshot != nullptr) {
        std::cout << "[snapshot] " << snapshot->manifest.snapshot_name << " ("
                  << snapshot->manifest.snapshot_status << ") in " << snapshot->dir.string()
                  << "\n";
      }
      for (size_t i = 0; i < files.size(); ++i) {
        PrintText(files[i], std::cout);
        if (const std::optional<bool> match = MatchesManifest(files[i], expected_crc[i])) {
          std::cout << "[manifest] CRC-64 " << Hex64(files[i].report.computed_crc)
                    << (*match ? " matches the manifest\n"
                               : " differs from the manifest's " + Hex64(*expected_crc[i]) + "\n");
        }
      }
      if (is_directory) {
        std::cout << "[summary] " << files.size() << " files, " << failures << " invalid\n";
      }
    } else {
      Json doc;
      if (snapshot != nullptr) {
        doc["SnapshotName"] = snapshot->manifest.snapshot_name;
        doc["SnapshotStatus"] = snapshot->manifest.snapshot_status;
        doc["Path"] = snapshot->dir.string();
      }
      if (is_directory) {
        Json list = Json::array();
        for (size_t i = 0; i < files.size(); ++i) {
          Json file = FileJson(files[i]);
          if (snapshot != nullptr) {
            file["ManifestCrc64"] = expected_crc[i] ? Json(Hex64(*expected_crc[i])) : Json();
            const std::optional<bool> match = MatchesManifest(files[i], expected_crc[i]);
            file["MatchesManifest"] = match ? Json(*match) : Json();
          }
          list.push_back(std::move(file));
        }
        doc["Files"] = std::move(list);
        doc["Valid"] = failures == 0 && snapshot_problem.empty();
      } else {
        doc = FileJson(files.front());
      }
      // Keys and AUX values are binary-safe in RDB; PrintDocument replaces what is not UTF-8.
      PrintDocument(doc, OutputFormat::kJson, std::cout);
    }
    std::cout.flush();
  }

  if (first_failure == nullptr) {
    if (!snapshot_problem.empty())
      return CommandResult::Fail("InvalidSnapshotState", snapshot_problem);
    return CommandResult::Ok();
  }
  std::string message = first_message;
  if (failures > 1) message += " (and " + std::to_string(failures - 1) + " more invalid files)";
  // Why the snapshot itself is unusable (a bad manifest, a file that is a symbolic link) comes
  // first: it is the cause, the files' failures follow from it.
  if (!snapshot_problem.empty()) message = snapshot_problem + "; " + message;
  // A file the manifest names but that is missing is the snapshot's fault, not the caller's.
  const bool callers_path = first_failure->path_error && snapshot == nullptr;
  return CommandResult::Fail(callers_path ? "InvalidParameterValue" : "InvalidSnapshotState",
                             message);
}

}  // namespace

Command RegisterVerifyCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "verify",
      "Verify an .rdb, .rdb.zst or .rdb.lz4 file, every RDB file in a snapshot directory, or a "
      "snapshot of the fleet's storage by name: parse it from header to EOF, check the CRC-64 "
      "(and, for a snapshot, compare it with the manifest's) and count keys per database.");
  // Owned by the closure, which outlives parsing: CLI11 writes the value here.
  auto path = std::make_shared<std::string>();
  sub->add_option("PATH", *path, "File, directory or snapshot name to verify; - for standard input")
      ->required();
  return Command{sub, "Verify", [path, &globals] { return RunVerify(*path, globals); }};
}

}  // namespace finalsnap::cli
