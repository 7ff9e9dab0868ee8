// The manifest (storage.h, root.h): Snapshot <-> JSON with ElastiCache's field names, the name
// rules for snapshots and for the files inside one, and the manifest file, read (bounded) and
// written (atomically).
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "finalsnap/text.h"
#include "root.h"
#include "unique_fd.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using detail::ErrnoMessage;
using detail::kManifestName;
using detail::Quote;
using detail::UniqueFd;

constexpr int kManifestVersion = 1;
// WriteFileAtomic's temp file for the manifest, which no snapshot file may be called either.
constexpr std::string_view kManifestTmpName = "manifest.json.tmp";
constexpr size_t kMaxNameLength = 255;
// A manifest is a few KiB even for a large cluster; anything far bigger is not one of ours.
constexpr uint64_t kMaxManifestBytes = uint64_t{16} << 20;
constexpr int kMaxSlot = 16383;
// Bounds on what a manifest may hold. Ours stay far below them; a manifest beyond one is not
// one of ours, and would make every reader (describe, restore, the API) do unbounded work.
// Redis Cluster tops out near 1000 shards; ElastiCache allows 500 node groups.
constexpr size_t kMaxNodeSnapshots = 1024;
constexpr size_t kMaxGates = 64 * kMaxNodeSnapshots;
constexpr size_t kMaxDatabases = 1 << 16;
// A gate's evidence can say something of every node (readback's is some 400 bytes a file);
// other strings are ids, names, addresses, versions and times.
constexpr size_t kMaxEvidenceBytes = 1 << 20;
constexpr size_t kMaxStringBytes = 1024;
// 1 PiB: more than any node's memory, small enough that sums over a snapshot cannot overflow.
constexpr uint64_t kMaxBytes = uint64_t{1} << 50;
// Keys and expires per database; Redis counts them in 64 bits, but 2^48 is past any real node.
constexpr uint64_t kMaxKeys = uint64_t{1} << 48;

// Thrown inside SnapshotFromJson only, and caught there: the path of the bad field and why.
struct FieldError {
  std::string message;
};

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw FieldError{path + ": " + what};
}

// A value as an error message may show it: quoted when short and printable, else only its size,
// so that a hostile or corrupt manifest cannot fill a terminal or a log line.
std::string Shown(std::string_view value) {
  const bool printable = std::all_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (value.size() <= 64 && printable) return Quote(value);
  return "(a value of " + std::to_string(value.size()) + " bytes, not shown)";
}

// ElastiCache's node group ids are four digits ("0001"); restore makes a directory of one, so
// nothing else may pass.
bool IsNodeGroupId(std::string_view id) {
  return id.size() == 4 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

const Json* Find(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string GetString(const Json& object, const char* key, const std::string& path, bool required) {
  const Json* value = Find(object, key);
  if (value == nullptr) {
    if (required) Fail(path + key, "missing");
    return {};
  }
  if (!value->is_string()) Fail(path + key, "expected a string");
  const std::string& text = value->get_ref<const std::string&>();
  const size_t limit = std::string_view(key) == "Evidence" ? kMaxEvidenceBytes : kMaxStringBytes;
  if (text.size() > limit) {
    Fail(path + key, std::to_string(text.size()) + " bytes is longer than the " +
                         std::to_string(limit) + " allowed");
  }
  return text;
}

uint64_t GetUint(const Json& object, const char* key, const std::string& path, bool required) {
  const Json* value = Find(object, key);
  if (value == nullptr) {
    if (required) Fail(path + key, "missing");
    return 0;
  }
  if (!value->is_number_unsigned()) Fail(path + key, "expected a non-negative integer");
  return value->get<uint64_t>();
}

// GetUint, bounded.
uint64_t GetUintAtMost(const Json& object, const char* key, const std::string& path, bool required,
                       uint64_t max) {
  const uint64_t value = GetUint(object, key, path, required);
  if (value > max) Fail(path + key, "out of range (at most " + std::to_string(max) + ")");
  return value;
}

int GetInt(const Json& object, const char* key, const std::string& path, bool required) {
  const Json* value = Find(object, key);
  if (value == nullptr) {
    if (required) Fail(path + key, "missing");
    return 0;
  }
  if (!value->is_number_integer()) Fail(path + key, "expected an integer");
  const int64_t v = value->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) Fail(path + key, "out of range");
  return static_cast<int>(v);
}

const Json& GetArray(const Json& object, const char* key, const std::string& path,
                     size_t max_size) {
  static const Json kEmpty = Json::array();
  const Json* value = Find(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_array()) Fail(path + key, "expected an array");
  if (value->size() > max_size) {
    Fail(path + key, std::to_string(value->size()) + " entries; at most " +
                         std::to_string(max_size) + " are allowed");
  }
  return *value;
}

std::vector<std::pair<int, int>> SlotsFromString(std::string_view text, const std::string& path) {
  std::vector<std::pair<int, int>> slots;
  const auto parse_slot = [&](std::string_view s) {
    int value = -1;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || value < 0 ||
        value > kMaxSlot) {
      Fail(path, "bad slot " + Shown(s) + " (expected 0-16383)");
    }
    return value;
  };
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view range = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t dash = range.find('-');
    const int first = parse_slot(range.substr(0, dash));
    const int last = dash == std::string_view::npos ? first : parse_slot(range.substr(dash + 1));
    if (last < first) Fail(path, "slot range " + Shown(range) + " runs backwards");
    slots.emplace_back(first, last);
  }
  return slots;
}

Json NodeSnapshotToJson(const NodeSnapshot& node) {
  Json j = Json::object();
  j["NodeGroupId"] = node.node_group_id;
  j["CacheNodeId"] = node.cache_node_id;
  if (!node.cache_cluster_id.empty()) j["CacheClusterId"] = node.cache_cluster_id;
  j["CacheSize"] = CacheSizeString(node.cache_size);
  j["CacheSizeBytes"] = node.cache_size;
  j["SnapshotCreateTime"] = node.snapshot_create_time;
  if (!node.slots.empty()) {
    // ElastiCache puts a shard's slots in its NodeGroupConfiguration, as "0-5460,10923-16383".
    j["NodeGroupConfiguration"] = {{"NodeGroupId", node.node_group_id},
                                   {"Slots", SlotRangesText(node.slots)}};
  }
  if (!node.source_endpoint.empty()) j["SourceEndpoint"] = node.source_endpoint;
  j["File"] = node.file;
  j["Compression"] = std::string(CompressionName(node.compression));
  j["CompressionLevel"] = node.compression_level;
  j["StoredBytes"] = node.stored_bytes;
  j["RdbBytes"] = node.rdb_bytes;
  j["RdbVersion"] = node.rdb_version;
  j["Crc64"] = Hex64(node.crc64);
  Json keyspace = Json::array();
  for (const auto& [db, counts] : node.keyspace) {
    keyspace.push_back({{"Db", db}, {"Keys", counts.keys}, {"Expires", counts.expires}});
  }
  j["Keyspace"] = std::move(keyspace);
  if (!node.repl_id.empty()) j["ReplicationId"] = node.repl_id;
  if (node.repl_offset) j["ReplicationOffset"] = *node.repl_offset;
  return j;
}

NodeSnapshot NodeSnapshotFromJson(const Json& j, const std::string& path) {
  if (!j.is_object()) Fail(path, "expected an object");
  const std::string p = path + ".";
  NodeSnapshot node;
  node.node_group_id = GetString(j, "NodeGroupId", p, true);
  if (!IsNodeGroupId(node.node_group_id)) {
    Fail(p + "NodeGroupId",
         Shown(node.node_group_id) + " is not a node group id (four digits, as \"0001\")");
  }
  node.cache_node_id = GetString(j, "CacheNodeId", p, false);
  node.cache_cluster_id = GetString(j, "CacheClusterId", p, false);
  if (Find(j, "CacheSizeBytes") != nullptr) {
    node.cache_size = GetUintAtMost(j, "CacheSizeBytes", p, true, kMaxBytes);
  } else if (const std::string size = GetString(j, "CacheSize", p, false); !size.empty()) {
    // A manifest written by hand, with ElastiCache's "<n> MB" only.
    uint64_t mb = 0;
    const auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), mb);
    if (ec != std::errc() || std::string_view(ptr, size.data() + size.size() - ptr) != " MB" ||
        mb > (kMaxBytes >> 20)) {
      Fail(p + "CacheSize", "expected \"<n> MB\" (at most 1 PiB)");
    }
    node.cache_size = mb << 20;
  }
  node.snapshot_create_time = GetString(j, "SnapshotCreateTime", p, false);
  if (const Json* config = Find(j, "NodeGroupConfiguration"); config != nullptr) {
    if (!config->is_object()) Fail(p + "NodeGroupConfiguration", "expected an object");
    const std::string slots = GetString(*config, "Slots", p + "NodeGroupConfiguration.", false);
    node.slots = SlotsFromString(slots, p + "NodeGroupConfiguration.Slots");
  }
  node.source_endpoint = GetString(j, "SourceEndpoint", p, false);
  node.file = GetString(j, "File", p, true);
  // The manifest is data read from disk: its file names must not lead out of the snapshot.
  if (Status s = detail::CheckFileName(node.file); !s.ok()) Fail(p + "File", s.message());
  const std::string compression = GetString(j, "Compression", p, true);
  const std::optional<Compression> parsed = CompressionFromName(compression);
  if (!parsed) Fail(p + "Compression", "unknown compression " + Shown(compression));
  node.compression = *parsed;
  node.compression_level = GetInt(j, "CompressionLevel", p, false);
  node.stored_bytes = GetUintAtMost(j, "StoredBytes", p, true, kMaxBytes);
  node.rdb_bytes = GetUintAtMost(j, "RdbBytes", p, true, kMaxBytes);
  node.rdb_version = GetInt(j, "RdbVersion", p, true);
  const std::string crc = GetString(j, "Crc64", p, true);
  uint64_t crc_value = 0;
  const auto [ptr, ec] = std::from_chars(crc.data(), crc.data() + crc.size(), crc_value, 16);
  if (crc.size() != 16 || ec != std::errc() || ptr != crc.data() + crc.size()) {
    Fail(p + "Crc64", "expected 16 hex digits");
  }
  node.crc64 = crc_value;
  const Json& keyspace = GetArray(j, "Keyspace", p, kMaxDatabases);
  for (size_t i = 0; i < keyspace.size(); ++i) {
    const std::string kp = p + "Keyspace[" + std::to_string(i) + "]";
    if (!keyspace[i].is_object()) Fail(kp, "expected an object");
    const uint64_t db = GetUintAtMost(keyspace[i], "Db", kp + ".", true, INT32_MAX);
    rdb::DbCounts counts;
    counts.keys = GetUintAtMost(keyspace[i], "Keys", kp + ".", true, kMaxKeys);
    counts.expires = GetUintAtMost(keyspace[i], "Expires", kp + ".", false, kMaxKeys);
    if (!node.keyspace.emplace(db, counts).second) Fail(kp, "db " + std::to_string(db) + " twice");
  }
  node.repl_id = GetString(j, "ReplicationId", p, false);
  if (Find(j, "ReplicationOffset") != nullptr) {
    node.repl_offset = GetUint(j, "ReplicationOffset", p, true);
  }
  return node;
}

// Reads a manifest, refusing anything too large to be one.
Status ReadManifestFile(const fs::path& path, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return Status::Error(path.string() + ": " + ErrnoMessage(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::Error(path.string() + ": " + ErrnoMessage(errno));
  if (!S_ISREG(st.st_mode)) return Status::Error(path.string() + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) {
    return Status::Error(path.string() + ": " + std::to_string(st.st_size) +
                         " bytes is too large for a manifest");
  }
  out->clear();
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(path.string() + ": " + ErrnoMessage(errno));
    }
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
    if (out->size() > kMaxManifestBytes) return Status::Error(path.string() + ": grew while read");
  }
  return Status::Ok();
}

}  // namespace

// ---- Manifest JSON ----

std::string SnapshotToJson(const Snapshot& snapshot) {
  Json j = Json::object();
  j["SnapshotName"] = snapshot.snapshot_name;
  j["SnapshotStatus"] = snapshot.snapshot_status;
  j["SnapshotSource"] = snapshot.snapshot_source;
  if (!snapshot.cache_cluster_id.empty()) j["CacheClusterId"] = snapshot.cache_cluster_id;
  if (!snapshot.replication_group_id.empty()) {
    j["ReplicationGroupId"] = snapshot.replication_group_id;
  }
  j["Engine"] = snapshot.engine;
  j["EngineVersion"] = snapshot.engine_version;
  j["NumNodeGroups"] = snapshot.num_node_groups;
  if (!snapshot.final_snapshot_of.empty()) j["FinalSnapshotOf"] = snapshot.final_snapshot_of;
  Json nodes = Json::array();
  for (const NodeSnapshot& node : snapshot.node_snapshots)
    nodes.push_back(NodeSnapshotToJson(node));
  j["NodeSnapshots"] = std::move(nodes);
  Json gates = Json::array();
  for (const GateVerdict& gate : snapshot.gates) {
    Json g = {{"Gate", gate.gate},
              {"Phase", gate.phase},
              {"Passed", gate.passed},
              {"Evidence", gate.evidence}};
    if (!gate.node.empty()) g["Node"] = gate.node;
    g["AtMs"] = gate.at_ms;
    gates.push_back(std::move(g));
  }
  j["Gates"] = std::move(gates);
  j["ManifestVersion"] = kManifestVersion;
  return j.dump(2) + "\n";
}

Expected<Snapshot> SnapshotFromJson(std::string_view json) {
  try {
    const Json j = Json::parse(json.begin(), json.end());
    if (!j.is_object()) Fail("manifest", "expected a JSON object");
    if (Find(j, "ManifestVersion") != nullptr &&
        GetInt(j, "ManifestVersion", "", true) > kManifestVersion) {
      Fail("ManifestVersion", "this manifest was written by a newer finalsnap");
    }
    Snapshot s;
    s.snapshot_name = GetString(j, "SnapshotName", "", true);
    if (Status name = CheckSnapshotName(s.snapshot_name); !name.ok()) {
      Fail("SnapshotName", Shown(s.snapshot_name) + ": " + name.message());
    }
    s.snapshot_status = GetString(j, "SnapshotStatus", "", true);
    if (s.snapshot_status != "creating" && s.snapshot_status != "available" &&
        s.snapshot_status != "failed" && s.snapshot_status != "deleting") {
      Fail("SnapshotStatus", "unknown status " + Shown(s.snapshot_status));
    }
    s.snapshot_source = GetString(j, "SnapshotSource", "", false);
    s.cache_cluster_id = GetString(j, "CacheClusterId", "", false);
    s.replication_group_id = GetString(j, "ReplicationGroupId", "", false);
    s.engine = GetString(j, "Engine", "", false);
    s.engine_version = GetString(j, "EngineVersion", "", false);
    s.num_node_groups = GetInt(j, "NumNodeGroups", "", false);
    if (s.num_node_groups < 0 || static_cast<size_t>(s.num_node_groups) > kMaxNodeSnapshots) {
      Fail("NumNodeGroups", "out of range (0 to " + std::to_string(kMaxNodeSnapshots) + ")");
    }
    s.final_snapshot_of = GetString(j, "FinalSnapshotOf", "", false);
    const Json& nodes = GetArray(j, "NodeSnapshots", "", kMaxNodeSnapshots);
    for (size_t i = 0; i < nodes.size(); ++i) {
      const std::string np = "NodeSnapshots[" + std::to_string(i) + "]";
      NodeSnapshot node = NodeSnapshotFromJson(nodes[i], np);
      // Restore writes one dump.rdb per node group and reads one file per node: a second
      // entry with either would overwrite or alias the first.
      for (const NodeSnapshot& earlier : s.node_snapshots) {
        if (earlier.file == node.file) Fail(np + ".File", "names the same file as an earlier one");
        if (earlier.node_group_id == node.node_group_id) {
          Fail(np + ".NodeGroupId", "the same node group as an earlier one");
        }
      }
      s.node_snapshots.push_back(std::move(node));
    }
    const Json& gates = GetArray(j, "Gates", "", kMaxGates);
    for (size_t i = 0; i < gates.size(); ++i) {
      const std::string gp = "Gates[" + std::to_string(i) + "]";
      if (!gates[i].is_object()) Fail(gp, "expected an object");
      GateVerdict gate;
      gate.gate = GetString(gates[i], "Gate", gp + ".", true);
      gate.phase = GetString(gates[i], "Phase", gp + ".", false);
      const Json* passed = Find(gates[i], "Passed");
      if (passed == nullptr || !passed->is_boolean())
        Fail(gp + ".Passed", "expected true or false");
      gate.passed = passed->get<bool>();
      gate.evidence = GetString(gates[i], "Evidence", gp + ".", false);
      gate.node = GetString(gates[i], "Node", gp + ".", false);
      if (const Json* at = Find(gates[i], "AtMs"); at != nullptr) {
        if (!at->is_number()) Fail(gp + ".AtMs", "expected a number");
        gate.at_ms = at->get<double>();
        // Milliseconds since the operation began: finite and not negative.
        if (!(gate.at_ms >= 0 && gate.at_ms <= 1e12)) {
          Fail(gp + ".AtMs", "out of range");
        }
      }
      s.gates.push_back(std::move(gate));
    }
    return s;
  } catch (const FieldError& e) {
    return Status::Error(e.message);
  } catch (const Json::exception& e) {
    // nlohmann's messages carry the position: "parse error at line 3, column 5: ...". They also
    // quote the token they stopped at ("; last read: '...'"), which can be any length of the
    // file, escaped: the position says enough.
    std::string message = e.what();
    if (const size_t last = message.find("; last read:"); last != std::string::npos) {
      message.resize(last);
    }
    if (message.size() > 512) message = message.substr(0, 512) + "...";
    return Status::Error(message);
  }
}

std::string CacheSizeString(uint64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

std::string SnapshotTimeString(std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(ms);
  const time_t t = static_cast<time_t>(seconds.count());
  struct tm utc {};
  ::gmtime_r(&t, &utc);
  char buffer[80];  // room for any int the format could be given, as GCC checks
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>((ms - seconds).count()));
  return buffer;
}

// ---- Names ----

Status CheckSnapshotName(std::string_view name) {
  if (name.empty()) return Status::Error("the snapshot name is empty");
  if (name.size() > kMaxNameLength) {
    return Status::Error("the snapshot name is " + std::to_string(name.size()) +
                         " characters long; the limit is 255");
  }
  const auto is_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!is_letter(name.front())) return Status::Error("the snapshot name must begin with a letter");
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '-') {
      if (i + 1 < name.size() && name[i + 1] == '-') {
        return Status::Error("the snapshot name must not contain two consecutive hyphens");
      }
      continue;
    }
    if (!is_letter(c) && !is_digit(c)) {
      return Status::Error("the snapshot name may contain only ASCII letters, digits and hyphens");
    }
  }
  if (name.back() == '-') return Status::Error("the snapshot name must not end with a hyphen");
  return Status::Ok();
}

// ---- The manifest file and the names inside a snapshot ----

namespace detail {

Status CheckFileName(std::string_view name) {
  if (name.empty()) return Status::Error("empty file name");
  if (name.size() > kMaxNameLength) return Status::Error("file name longer than 255 characters");
  // Ours are ids and node group ids with an extension ("0001.rdb.zst"): letters, digits, '.',
  // '-' and '_' are all a file name needs, and nothing else can hide a path, a control
  // character or a terminal escape.
  const bool plain = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
  if (!plain) {
    return Status::Error("file name " + Shown(name) +
                         " is not a plain name (letters, digits, '.', '-' and '_' only)");
  }
  if (name.front() == '.') return Status::Error("file name " + Quote(name) + " starts with '.'");
  if (name == kManifestName || name == kManifestTmpName) {
    return Status::Error("file name " + Quote(name) + " is reserved for the manifest");
  }
  return Status::Ok();
}

Expected<Snapshot> LoadManifest(const fs::path& dir) {
  std::string text;
  if (Status s = ReadManifestFile(dir / kManifestName, &text); !s.ok()) return s;
  Expected<Snapshot> snapshot = SnapshotFromJson(text);
  if (!snapshot.ok()) {
    return Status::Error((dir / kManifestName).string() + ": " + snapshot.error().message());
  }
  return snapshot;
}

Status WriteManifest(int dir_fd, const Snapshot& snapshot, DirSync dir_sync) {
  return WriteFileAtomic(dir_fd, std::string(kManifestName), SnapshotToJson(snapshot), dir_sync);
}

}  // namespace detail
}  // namespace finalsnap
