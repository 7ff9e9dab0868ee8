// Shared pieces of the fleet-aware subcommands (cli_common.h).
#include "cli_common.h"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <utility>

namespace finalsnap::cli {

Expected<Fleet, CommandResult> LoadFleetForCommand(const GlobalOptions& globals) {
  const std::filesystem::path path = DefaultFleetPath(globals.fleet);
  Expected<Fleet, FleetError> loaded = LoadFleet(path);
  if (!loaded.ok()) {
    std::string message = loaded.error().ToString();
    // The commonest first-run mistake is running from a directory without the file: say where
    // else the file can come from.
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      message += " (give --fleet FILE or set $FINALSNAP_FLEET)";
    }
    return CommandResult::Fail("InvalidParameterValue", message);
  }
  if (Status local = CheckLocalStorage(loaded->storage); !local.ok()) {
    return CommandResult::Fail("InvalidParameterValue", path.string() + ": " + local.message());
  }
  return std::move(loaded).value();
}

void RecoverAbandoned(const Fleet& fleet) {
  OperationOptions options;
  options.observer = [](const OperationEvent& e) {
    if (e.kind == OperationEvent::Kind::kRecovery) std::cerr << "finalsnap: " << e.message << "\n";
  };
  (void)Recover(fleet, options);
}

namespace {

Json OrNull(const std::string& s) { return s.empty() ? Json() : Json(s); }

// Adds to `to` each member of `from` that `to` lacks, keeping the members `to` has, and does the
// same inside the objects both have and, element by element, inside lists of equal length both
// have. So the manifest's own fields join the Snapshot shape without the shape's members being
// spelled a second time.
void AddMissingMembers(Json& to, const Json& from) {
  if (to.is_object() && from.is_object()) {
    for (const auto& [key, value] : from.items()) {
      if (!to.contains(key)) {
        to[key] = value;
      } else {
        AddMissingMembers(to[key], value);
      }
    }
  } else if (to.is_array() && from.is_array() && to.size() == from.size()) {
    for (size_t i = 0; i < to.size(); ++i) AddMissingMembers(to[i], from[i]);
  }
}

}  // namespace

Json SnapshotJson(const Snapshot& snapshot) {
  Json j = SnapshotShape(snapshot, /*show_node_group_config=*/true);
  // The manifest is the store's one serialisation of a snapshot; its fields beyond the model
  // (files, checksums, keyspace, gates) are what an operator reads in the CLI's answer.
  AddMissingMembers(j, Json::parse(SnapshotToJson(snapshot)));
  // Why a snapshot is "failed" (its manifest or a file it names is unusable): not stored, found
  // when the storage is read.
  if (!snapshot.status_message.empty()) j["StatusMessage"] = snapshot.status_message;
  return j;
}

Json GatesJson(const std::vector<GateVerdict>& gates) {
  // The same shape as the manifest's Gates, but with Node always present (null for gates that
  // are not about one node) so that scripts can rely on one schema.
  Json list = Json::array();
  for (const GateVerdict& gate : gates) {
    Json g;
    g["Gate"] = gate.gate;
    g["Phase"] = gate.phase;
    g["Passed"] = gate.passed;
    g["Evidence"] = gate.evidence;
    g["Node"] = OrNull(gate.node);
    g["AtMs"] = std::round(gate.at_ms * 1000.0) / 1000.0;
    list.push_back(std::move(g));
  }
  return list;
}

Json CacheClusterJson(const CacheClusterInfo& info) {
  Json j = CacheClusterShape(info, "", /*show_cache_nodes=*/true, ShapeStyle::kCli);
  j["Role"] = OrNull(info.role);
  j["CaptureMode"] = OrNull(info.capture);
  j["UsedMemoryBytes"] = info.used_memory;
  if (info.error) j["StatusReason"] = *info.error;
  return j;
}

Json ReplicationGroupJson(const ReplicationGroupInfo& info) {
  Json j = ReplicationGroupShape(info, "", ShapeStyle::kCli);
  // The shape has one NodeGroups element per node group and one NodeGroupMembers element per
  // member, in order (finalsnap/elasticache.h).
  for (size_t g = 0; g < info.node_groups.size(); ++g) {
    Json& members = j["NodeGroups"][g]["NodeGroupMembers"];
    for (size_t m = 0; m < info.node_groups[g].members.size(); ++m) {
      const GroupMember& member = info.node_groups[g].members[m];
      members[m]["ReplicationOffset"] = member.repl_offset;
      if (!member.link.empty()) members[m]["LinkStatus"] = member.link;
    }
  }
  j["EngineVersion"] = OrNull(info.engine_version);
  j["DiscoveredVia"] = OrNull(info.discovered_via);
  if (info.error) j["StatusReason"] = *info.error;
  return j;
}

CommandResult ReportOperation(const OperationResult& result, Json doc,
                              const GlobalOptions& globals, std::string_view default_fault) {
  if (!result.gates.empty() || result.ok) {
    doc["Gates"] = GatesJson(result.gates);
    doc["Notes"] = result.notes;
    PrintDocument(doc, globals.output, std::cout);
  }
  if (result.ok) return CommandResult::Ok();
  return CommandResult::Fail(result.fault.empty() ? std::string(default_fault) : result.fault,
                             result.message);
}

namespace {

std::string TextScalar(const Json& value) {
  if (value.is_null()) return "None";
  if (value.is_boolean()) return value.get<bool>() ? "True" : "False";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

bool IsScalar(const Json& value) { return !value.is_object() && !value.is_array(); }

// The aws CLI's text output (awscli/text.py): an object is one line of its scalar fields sorted
// by name, preceded by its upper-cased name; its lists and objects follow on their own lines.
void FormatText(const Json& value, const std::string& identifier, std::ostream& out) {
  if (value.is_object()) {
    std::vector<std::string> keys;
    for (const auto& [key, unused] : value.items()) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    std::vector<std::string> fields;
    if (!identifier.empty()) fields.push_back(Upper(identifier));
    bool any_scalar = false;
    for (const std::string& key : keys) {
      if (IsScalar(value[key])) {
        fields.push_back(TextScalar(value[key]));
        any_scalar = true;
      }
    }
    if (any_scalar) {
      for (size_t i = 0; i < fields.size(); ++i) out << (i ? "\t" : "") << fields[i];
      out << "\n";
    }
    for (const std::string& key : keys) {
      if (!IsScalar(value[key])) FormatText(value[key], key, out);
    }
  } else if (value.is_array()) {
    const bool all_scalar = std::all_of(value.begin(), value.end(), IsScalar);
    if (all_scalar) {
      if (value.empty()) return;
      if (!identifier.empty()) out << Upper(identifier) << "\t";
      for (size_t i = 0; i < value.size(); ++i) out << (i ? "\t" : "") << TextScalar(value[i]);
      out << "\n";
    } else {
      for (const Json& element : value) FormatText(element, identifier, out);
    }
  } else {
    if (!identifier.empty()) out << Upper(identifier) << "\t";
    out << TextScalar(value) << "\n";
  }
}

}  // namespace

void PrintDocument(const Json& doc, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kText) {
    FormatText(doc, "", out);
  } else {
    // Keys, evidence and AUX values can be binary; JSON wants UTF-8, so replace what is not.
    out << doc.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  out.flush();
}

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

namespace {

// Asks `question` on stderr and reads one line from stdin. True only for "y" or "yes" (any
// case); anything else, including end of input, is a no.
bool Confirm(const std::string& question) {
  std::cerr << question << std::flush;
  std::string line;
  if (!std::getline(std::cin, line)) {
    // End of input is no answer, and no answer is no. End the prompt's line for the shell.
    std::cerr << "\n";
    return false;
  }
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  const std::string answer =
      first == std::string::npos ? "" : Upper(line.substr(first, last - first + 1));
  return answer == "Y" || answer == "YES";
}

}  // namespace

void AddYesFlag(CLI::App* sub, bool& yes) {
  sub->add_flag("--yes,-y", yes,
                "Do not ask for confirmation; required when standard input is not a terminal");
}

CLI::Option* AddDeleteOptions(CLI::App* sub, std::string& final_snapshot, bool& yes,
                              bool& dry_run) {
  CLI::Option* option =
      sub->add_option("--final-snapshot-identifier", final_snapshot,
                      "Name of the final snapshot to take first (leave the option out to delete "
                      "without one)");
  AddYesFlag(sub, yes);
  sub->add_flag("--dry-run", dry_run, "Run the preflight gates and print the plan; change nothing");
  return option;
}

std::optional<CommandResult> ConfirmDestructive(std::string_view command,
                                                const std::string& question, bool yes) {
  if (yes) return std::nullopt;
  const bool stdin_tty = ::isatty(STDIN_FILENO) == 1;
  if (stdin_tty && ::isatty(STDERR_FILENO) == 1) {
    if (Confirm(question)) return std::nullopt;
    return CommandResult::Interrupted("aborted");
  }
  return CommandResult::Usage(
      "MissingParameter",
      std::string(command) + " deletes data and " +
          (stdin_tty ? "standard error" : "standard input") +
          " is not a terminal, so there is no one to confirm it. Nothing was contacted or "
          "changed. Add --yes to run it from a script.");
}

ProgressLine::ProgressLine(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled) {}

ProgressLine::~ProgressLine() { Finish(); }

std::function<void(const OperationEvent&)> ProgressLine::Observer() {
  if (!enabled_) return {};
  return [this](const OperationEvent& e) {
    if (e.kind == OperationEvent::Kind::kProgress) {
      exact_ = e.progress.exact;
      Update(e.progress.bytes, e.progress.expected, e.progress.seconds);
    }
  };
}

void ProgressLine::Update(uint64_t done, uint64_t expected, double seconds, bool force) {
  if (!enabled_) return;
  last_done_ = done;
  last_expected_ = expected;
  last_seconds_ = seconds;
  pending_ = true;
  // Redrawing on every buffer would cost more than the transfer on a fast link, and flicker.
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  pending_ = false;

  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;  // bytes/s
  std::string line = label_ + ": " + HumanBytes(done);
  // The expected size is exact once the server sent `$<length>` (or the RDB file was opened),
  // and "~" an estimate from used_memory before that; a finished transfer is exact.
  if (expected > 0) line += (exact_ ? " of " : " of ~") + HumanBytes(expected);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "  %.1f MB/s", rate / 1e6);
  line += buf;
  if (expected > done && rate > 0) {
    const auto eta = static_cast<uint64_t>(static_cast<double>(expected - done) / rate + 0.5);
    std::snprintf(buf, sizeof(buf), "  ETA %llu:%02llu", static_cast<unsigned long long>(eta / 60),
                  static_cast<unsigned long long>(eta % 60));
    line += buf;
  } else {
    line += "  ETA --:--";
  }
  const size_t width = line.size();
  if (width < width_) line.append(width_ - width, ' ');
  width_ = width;
  std::cerr << '\r' << line << std::flush;
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (!drawn_) return;
  if (pending_) Update(last_done_, last_expected_, last_seconds_, /*force=*/true);
  std::cerr << '\n' << std::flush;
  drawn_ = false;
  width_ = 0;
}

}  // namespace finalsnap::cli
