// `finalsnap verify PATH`: runs finalsnap::VerifyPath and presents the results.
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
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "finalsnap/verify.h"

namespace finalsnap::cli {
namespace {

using Json = nlohmann::ordered_json;

std::string Hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, value);
  return buf;
}

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

CommandResult RunVerify(const std::string& path, const GlobalOptions& globals) {
  const bool is_directory = std::filesystem::is_directory(path);
  const std::vector<FileVerification> files = VerifyPath(path);

  const FileVerification* first_failure = nullptr;
  size_t failures = 0;
  bool examined = false;  // at least one file was opened and read
  for (const FileVerification& file : files) {
    if (!file.path_error) examined = true;
    if (file.ok()) continue;
    ++failures;
    if (first_failure == nullptr) first_failure = &file;
  }

  // A path that could not be examined at all gets only the error line, as the aws CLI prints
  // nothing on stdout for a refused request. Anything examined is reported, valid or not.
  if (examined) {
    if (globals.output == OutputFormat::kText) {
      for (const FileVerification& file : files) PrintText(file, std::cout);
      if (is_directory) {
        std::cout << "[summary] " << files.size() << " files, " << failures << " invalid\n";
      }
    } else {
      Json doc;
      if (is_directory) {
        Json list = Json::array();
        for (const FileVerification& file : files) list.push_back(FileJson(file));
        doc["Files"] = std::move(list);
        doc["Valid"] = failures == 0;
      } else {
        doc = FileJson(files.front());
      }
      // Keys and AUX values are binary-safe in RDB but JSON wants UTF-8: replace what is not.
      std::cout << doc.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    std::cout.flush();
  }

  if (first_failure == nullptr) return CommandResult::Ok();
  std::string message = first_failure->path + ": " + ErrorSummary(*first_failure);
  if (failures > 1) message += " (and " + std::to_string(failures - 1) + " more invalid files)";
  return CommandResult::Fail(
      first_failure->path_error ? "InvalidParameterValue" : "InvalidSnapshotState", message);
}

}  // namespace

Command RegisterVerifyCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "verify",
      "Verify an .rdb, .rdb.zst or .rdb.lz4 file, or every RDB file in a snapshot directory: "
      "parse it from header to EOF, check the CRC-64 and count keys per database.");
  // Owned by the closure, which outlives parsing: CLI11 writes the value here.
  auto path = std::make_shared<std::string>();
  sub->add_option("PATH", *path, "File or directory to verify")->required();
  return Command{sub, "Verify", [path, &globals] { return RunVerify(*path, globals); }};
}

}  // namespace finalsnap::cli
