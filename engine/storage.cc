// The snapshot store (storage.h): manifest JSON, name rules, the root's directory scan and its
// lock, SnapshotWriter's durable commit, and the readback gate.
//
// Every change to what a reader can see under the root is one rename(2): a partial directory
// becomes a snapshot (Commit), a snapshot becomes a .deleting- directory (Delete), a temp file
// becomes manifest.json. Each rename is preceded by fsyncs of what it publishes and followed by
// an fsync of the directory that holds it, so after a crash a reader sees either the old state
// or the new one, never a snapshot whose files are not all on disk.
#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "unique_fd.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <system_error>

#include "finalsnap/verify.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr int kManifestVersion = 1;
constexpr std::string_view kManifestName = "manifest.json";
constexpr std::string_view kManifestTmpName = "manifest.json.tmp";
constexpr std::string_view kPartialPrefix = ".partial-";
constexpr std::string_view kDeletingPrefix = ".deleting-";
constexpr std::string_view kProbePrefix = ".probe-";
constexpr std::string_view kLockName = ".lock";
constexpr size_t kMaxNameLength = 255;
// How much of the snapshot name goes into a partial directory's name. The full name would not
// fit in NAME_MAX beside the prefix, pid and random suffix; the manifest inside has it whole.
constexpr size_t kPartialNameChars = 64;
// A manifest is a few KiB even for a large cluster; anything far bigger is not one of ours.
constexpr uint64_t kMaxManifestBytes = uint64_t{16} << 20;
constexpr int kMaxSlot = 16383;

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

using detail::UniqueFd;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// 16 random hex digits: enough that two writers never pick the same partial directory.
std::string RandomHex() {
  std::random_device device;
  const uint64_t value = (uint64_t{device()} << 32) ^ uint64_t { device() };
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, value);
  return buffer;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(ErrnoMessage(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FsyncFd(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return Status::Error(ErrnoMessage(errno));
  }
  return Status::Ok();
}

Status FsyncDir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Status::Error("open " + dir.string() + ": " + ErrnoMessage(errno));
  if (Status s = FsyncFd(fd.get()); !s.ok()) {
    return Status::Error("fsync " + dir.string() + ": " + s.message());
  }
  return Status::Ok();
}

// Writes `content` as `dir_fd`/manifest.json so that a reader (or a crash) sees the old manifest
// or the new one, never a torn one: temp file, fsync, rename. The caller fsyncs the directory.
Status WriteManifestAt(int dir_fd, const std::string& content) {
  const std::string tmp(kManifestTmpName);
  // O_TRUNC rather than O_EXCL: a temp file left by a crash is ours to overwrite.
  UniqueFd fd(
      ::openat(dir_fd, tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Status::Error("create " + tmp + ": " + ErrnoMessage(errno));
  // The mode given to open is filtered by the umask; the store's files are 0600 exactly.
  if (::fchmod(fd.get(), 0600) != 0)
    return Status::Error("chmod " + tmp + ": " + ErrnoMessage(errno));
  if (Status s = WriteAll(fd.get(), content); !s.ok()) {
    return Status::Error("write " + tmp + ": " + s.message());
  }
  if (Status s = FsyncFd(fd.get()); !s.ok()) {
    return Status::Error("fsync " + tmp + ": " + s.message());
  }
  fd.Reset();
  const std::string final_name(kManifestName);
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, final_name.c_str()) != 0) {
    return Status::Error("rename " + tmp + " -> " + final_name + ": " + ErrnoMessage(errno));
  }
  return Status::Ok();
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

std::optional<Snapshot> LoadManifest(const fs::path& dir, std::string* error) {
  std::string text;
  if (Status s = ReadManifestFile(dir / kManifestName, &text); !s.ok()) {
    *error = s.message();
    return std::nullopt;
  }
  std::string parse_error;
  std::optional<Snapshot> snapshot = SnapshotFromJson(text, &parse_error);
  if (!snapshot) *error = (dir / kManifestName).string() + ": " + parse_error;
  return snapshot;
}

bool PidAlive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// flock(2) that retries when a signal interrupts it.
int Flock(int fd, int operation) {
  int rc;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// <root>/.lock, held shared by readers and exclusively by anything that changes the root, for
// the duration of one store operation. Locks are per open file, so two stores in one process
// exclude each other as two processes do.
class RootLock {
 public:
  RootLock(const fs::path& root, bool exclusive, bool may_create) {
    const fs::path path = root / kLockName;
    const int flags = may_create ? (O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW)
                                 : (O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    UniqueFd fd(::open(path.c_str(), flags, 0600));
    if (fd.get() < 0) {
      error_ = "open " + path.string() + ": " + ErrnoMessage(errno);
      return;
    }
    if (Flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
      error_ = "lock " + path.string() + ": " + ErrnoMessage(errno);
      return;
    }
    fd_ = fd.Release();
  }
  ~RootLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
  }
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

// What a scan of the root found. Only names are inspected, except for partial directories,
// whose writer is asked whether it still lives.
struct RootScan {
  struct Committed {
    std::string name;  // the directory name, which is the snapshot name
    fs::path path;
  };
  struct Partial {
    std::string name_hint;  // the (possibly cut) snapshot name in the directory name
    long pid = 0;
    fs::path path;
    bool alive = false;
  };
  std::vector<Committed> committed;
  std::vector<Partial> partials;
  std::vector<fs::path> deleting;
  std::vector<std::pair<fs::path, long>> probes;  // probe files and the pid that made them
  std::string error;                              // set if the root could not be listed
};

// Parses "<prefix><name>-<pid>-<hex>" from the right, as the name may hold hyphens itself.
void ParsePidSuffix(std::string_view rest, std::string* name, long* pid) {
  const size_t last = rest.rfind('-');
  if (last == std::string_view::npos) {
    *name = std::string(rest);
    return;
  }
  const std::string_view head = rest.substr(0, last);
  const size_t pid_dash = head.rfind('-');
  const std::string_view pid_text =
      pid_dash == std::string_view::npos ? head : head.substr(pid_dash + 1);
  long value = 0;
  const auto [ptr, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), value);
  if (ec == std::errc() && ptr == pid_text.data() + pid_text.size()) *pid = value;
  *name =
      pid_dash == std::string_view::npos ? std::string() : std::string(head.substr(0, pid_dash));
}

// A writer holds an exclusive flock on its partial directory until it commits, aborts or dies.
// If a shared lock can be taken, nobody is writing there any more.
bool PartialWriterAlive(const fs::path& path, long pid) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return false;  // gone, or replaced by something that is not a directory
  if (Flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;
  if (errno == EWOULDBLOCK) return true;
  // A file system without flock support: the pid is the best evidence left.
  return PidAlive(pid);
}

RootScan ScanRoot(const fs::path& root) {
  RootScan scan;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    // symlink_status: a symbolic link is never a snapshot, so nothing is followed out of the root.
    const fs::file_status status = it->symlink_status(type_ec);
    if (type_ec) continue;
    if (StartsWith(name, kPartialPrefix) && fs::is_directory(status)) {
      RootScan::Partial partial;
      ParsePidSuffix(std::string_view(name).substr(kPartialPrefix.size()), &partial.name_hint,
                     &partial.pid);
      partial.path = it->path();
      partial.alive = PartialWriterAlive(partial.path, partial.pid);
      scan.partials.push_back(std::move(partial));
    } else if (StartsWith(name, kDeletingPrefix) && fs::is_directory(status)) {
      scan.deleting.push_back(it->path());
    } else if (StartsWith(name, kProbePrefix) && fs::is_regular_file(status)) {
      std::string unused;
      long pid = 0;
      ParsePidSuffix(std::string_view(name).substr(kProbePrefix.size()), &unused, &pid);
      scan.probes.emplace_back(it->path(), pid);
    } else if (fs::is_directory(status) && CheckSnapshotName(name).empty()) {
      scan.committed.push_back({name, it->path()});
    }
  }
  if (ec) scan.error = "cannot list " + root.string() + ": " + ec.message();
  return scan;
}

// The committed snapshot called `name`: the exact spelling if there is one, else the first
// that matches case-insensitively (two such directories only exist if made by hand).
const RootScan::Committed* FindCommitted(const RootScan& scan, std::string_view name) {
  const RootScan::Committed* found = nullptr;
  for (const RootScan::Committed& c : scan.committed) {
    if (c.name == name) return &c;
    if (found == nullptr && EqualsIgnoreCase(c.name, name)) found = &c;
  }
  return found;
}

Snapshot LoadCommitted(const RootScan::Committed& committed) {
  std::string error;
  std::optional<Snapshot> snapshot = LoadManifest(committed.path, &error);
  if (!snapshot) {
    // Shown rather than hidden, so that an operator can see it and delete it.
    Snapshot failed;
    failed.snapshot_name = committed.name;
    failed.snapshot_status = "failed";
    return failed;
  }
  // The directory name is what Describe and Delete go by, so it wins over the manifest.
  snapshot->snapshot_name = committed.name;
  return std::move(*snapshot);
}

Snapshot LoadPartial(const RootScan::Partial& partial) {
  std::string error;
  std::optional<Snapshot> snapshot = LoadManifest(partial.path, &error);
  if (!snapshot) {
    snapshot.emplace();
    snapshot->snapshot_name = partial.name_hint;
  }
  // Whatever the manifest inside says (Commit writes "available" there just before the rename),
  // a partial directory is a snapshot being created.
  snapshot->snapshot_status = "creating";
  return std::move(*snapshot);
}

// The partial directory of a live writer for `name`, if any.
const RootScan::Partial* FindLivePartial(const RootScan& scan, std::string_view name,
                                         std::string* actual_name) {
  for (const RootScan::Partial& p : scan.partials) {
    if (!p.alive) continue;
    // The directory name holds at most kPartialNameChars of the name; the manifest holds all.
    if (!EqualsIgnoreCase(p.name_hint, name.substr(0, kPartialNameChars))) continue;
    const Snapshot snapshot = LoadPartial(p);
    if (EqualsIgnoreCase(snapshot.snapshot_name, name)) {
      if (actual_name != nullptr) *actual_name = snapshot.snapshot_name;
      return &p;
    }
  }
  return nullptr;
}

// Moves a directory out of sight (one rename), makes that durable, then removes it. The
// removal may fail part way without harm: a .deleting- directory is never listed, and the sweep
// finishes it.
Status RemoveDirDurably(const fs::path& root, const fs::path& dir) {
  const fs::path doomed = root / (std::string(kDeletingPrefix) + RandomHex());
  if (::rename(dir.c_str(), doomed.c_str()) != 0) {
    return Status::Error("rename " + dir.string() + " -> " + doomed.filename().string() + ": " +
                         ErrnoMessage(errno));
  }
  if (Status s = FsyncDir(root); !s.ok()) return s;
  std::error_code ec;
  fs::remove_all(doomed, ec);
  return Status::Ok();
}

// ---- JSON ----

// Thrown inside SnapshotFromJson only, and caught there: the path of the bad field and why.
struct FieldError {
  std::string message;
};

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw FieldError{path + ": " + what};
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
  return value->get<std::string>();
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

const Json& GetArray(const Json& object, const char* key, const std::string& path) {
  static const Json kEmpty = Json::array();
  const Json* value = Find(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_array()) Fail(path + key, "expected an array");
  return *value;
}

std::string SlotsToString(const std::vector<std::pair<int, int>>& slots) {
  std::string out;
  for (const auto& [first, last] : slots) {
    if (!out.empty()) out += ',';
    out += std::to_string(first);
    if (last != first) out += "-" + std::to_string(last);
  }
  return out;
}

std::vector<std::pair<int, int>> SlotsFromString(std::string_view text, const std::string& path) {
  std::vector<std::pair<int, int>> slots;
  const auto parse_slot = [&](std::string_view s) {
    int value = -1;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || value < 0 ||
        value > kMaxSlot) {
      Fail(path, "bad slot " + Quote(s) + " (expected 0-16383)");
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
    if (last < first) Fail(path, "slot range " + Quote(range) + " runs backwards");
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
                                   {"Slots", SlotsToString(node.slots)}};
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
  node.cache_node_id = GetString(j, "CacheNodeId", p, false);
  node.cache_cluster_id = GetString(j, "CacheClusterId", p, false);
  if (Find(j, "CacheSizeBytes") != nullptr) {
    node.cache_size = GetUint(j, "CacheSizeBytes", p, true);
  } else if (const std::string size = GetString(j, "CacheSize", p, false); !size.empty()) {
    // A manifest written by hand, with ElastiCache's "<n> MB" only.
    uint64_t mb = 0;
    const auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), mb);
    if (ec != std::errc() || std::string_view(ptr) != " MB") {
      Fail(p + "CacheSize", "expected \"<n> MB\"");
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
  const std::string compression = GetString(j, "Compression", p, true);
  const std::optional<Compression> parsed = CompressionFromName(compression);
  if (!parsed) Fail(p + "Compression", "unknown compression " + Quote(compression));
  node.compression = *parsed;
  node.compression_level = GetInt(j, "CompressionLevel", p, false);
  node.stored_bytes = GetUint(j, "StoredBytes", p, true);
  node.rdb_bytes = GetUint(j, "RdbBytes", p, true);
  node.rdb_version = GetInt(j, "RdbVersion", p, true);
  const std::string crc = GetString(j, "Crc64", p, true);
  uint64_t crc_value = 0;
  const auto [ptr, ec] = std::from_chars(crc.data(), crc.data() + crc.size(), crc_value, 16);
  if (crc.size() != 16 || ec != std::errc() || ptr != crc.data() + crc.size()) {
    Fail(p + "Crc64", "expected 16 hex digits");
  }
  node.crc64 = crc_value;
  const Json& keyspace = GetArray(j, "Keyspace", p);
  for (size_t i = 0; i < keyspace.size(); ++i) {
    const std::string kp = p + "Keyspace[" + std::to_string(i) + "]";
    if (!keyspace[i].is_object()) Fail(kp, "expected an object");
    const uint64_t db = GetUint(keyspace[i], "Db", kp + ".", true);
    rdb::DbCounts counts;
    counts.keys = GetUint(keyspace[i], "Keys", kp + ".", true);
    counts.expires = GetUint(keyspace[i], "Expires", kp + ".", false);
    if (!node.keyspace.emplace(db, counts).second) Fail(kp, "db " + std::to_string(db) + " twice");
  }
  node.repl_id = GetString(j, "ReplicationId", p, false);
  if (Find(j, "ReplicationOffset") != nullptr) {
    node.repl_offset = GetUint(j, "ReplicationOffset", p, true);
  }
  return node;
}

// A plain file name inside the snapshot directory: no path, nothing hidden, not the manifest.
std::string CheckFileName(std::string_view name) {
  if (name.empty()) return "empty file name";
  if (name.size() > kMaxNameLength) return "file name longer than 255 characters";
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return "file name " + Quote(name) + " is not a plain name";
  }
  if (name.front() == '.') return "file name " + Quote(name) + " starts with '.'";
  if (name == kManifestName || name == kManifestTmpName) {
    return "file name " + Quote(name) + " is reserved for the manifest";
  }
  return {};
}

// The first difference between two keyspaces, or empty if they are equal.
std::string KeyspaceDifference(const std::map<uint64_t, rdb::DbCounts>& file,
                               const std::map<uint64_t, rdb::DbCounts>& manifest) {
  std::set<uint64_t> dbs;
  for (const auto& entry : file) dbs.insert(entry.first);
  for (const auto& entry : manifest) dbs.insert(entry.first);
  for (const uint64_t db : dbs) {
    const auto f = file.find(db);
    const auto m = manifest.find(db);
    const rdb::DbCounts in_file = f == file.end() ? rdb::DbCounts{} : f->second;
    const rdb::DbCounts in_manifest = m == manifest.end() ? rdb::DbCounts{} : m->second;
    if (in_file.keys != in_manifest.keys) {
      return "db" + std::to_string(db) + " has " + std::to_string(in_file.keys) +
             " keys in the file, " + std::to_string(in_manifest.keys) + " in the manifest";
    }
    if (in_file.expires != in_manifest.expires) {
      return "db" + std::to_string(db) + " has " + std::to_string(in_file.expires) +
             " expires in the file, " + std::to_string(in_manifest.expires) + " in the manifest";
    }
  }
  return {};
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

std::optional<Snapshot> SnapshotFromJson(std::string_view json, std::string* error) {
  try {
    const Json j = Json::parse(json.begin(), json.end());
    if (!j.is_object()) Fail("manifest", "expected a JSON object");
    if (Find(j, "ManifestVersion") != nullptr &&
        GetInt(j, "ManifestVersion", "", true) > kManifestVersion) {
      Fail("ManifestVersion", "this manifest was written by a newer finalsnap");
    }
    Snapshot s;
    s.snapshot_name = GetString(j, "SnapshotName", "", true);
    s.snapshot_status = GetString(j, "SnapshotStatus", "", true);
    s.snapshot_source = GetString(j, "SnapshotSource", "", false);
    s.cache_cluster_id = GetString(j, "CacheClusterId", "", false);
    s.replication_group_id = GetString(j, "ReplicationGroupId", "", false);
    s.engine = GetString(j, "Engine", "", false);
    s.engine_version = GetString(j, "EngineVersion", "", false);
    s.num_node_groups = GetInt(j, "NumNodeGroups", "", false);
    s.final_snapshot_of = GetString(j, "FinalSnapshotOf", "", false);
    const Json& nodes = GetArray(j, "NodeSnapshots", "");
    for (size_t i = 0; i < nodes.size(); ++i) {
      s.node_snapshots.push_back(
          NodeSnapshotFromJson(nodes[i], "NodeSnapshots[" + std::to_string(i) + "]"));
    }
    const Json& gates = GetArray(j, "Gates", "");
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
      }
      s.gates.push_back(std::move(gate));
    }
    return s;
  } catch (const FieldError& e) {
    if (error != nullptr) *error = e.message;
  } catch (const Json::exception& e) {
    // nlohmann's messages carry the position: "parse error at line 3, column 5: ...".
    if (error != nullptr) *error = e.what();
  }
  return std::nullopt;
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

std::string CheckSnapshotName(std::string_view name) {
  if (name.empty()) return "the snapshot name is empty";
  if (name.size() > kMaxNameLength) {
    return "the snapshot name is " + std::to_string(name.size()) +
           " characters long; the limit is 255";
  }
  const auto is_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!is_letter(name.front())) return "the snapshot name must begin with a letter";
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '-') {
      if (i + 1 < name.size() && name[i + 1] == '-') {
        return "the snapshot name must not contain two consecutive hyphens";
      }
      continue;
    }
    if (!is_letter(c) && !is_digit(c)) {
      return "the snapshot name may contain only ASCII letters, digits and hyphens";
    }
  }
  if (name.back() == '-') return "the snapshot name must not end with a hyphen";
  return {};
}

// ---- SnapshotStore ----

SnapshotStore::SnapshotStore(fs::path root, Access access)
    : root_(std::move(root)), access_(access) {}

std::variant<SnapshotStore, std::string> SnapshotStore::Open(fs::path root, Access access) {
  if (root.empty()) return std::string("the snapshot storage path is empty");
  std::error_code ec;
  // Absolute, so that the store keeps meaning the same directory if the caller changes its
  // working directory.
  root = fs::absolute(root, ec).lexically_normal();
  if (ec) return "snapshot storage " + root.string() + ": " + ec.message();
  if (root.filename().empty()) root = root.parent_path();  // "dir/" -> "dir"
  const std::string where = "snapshot storage " + root.string();

  const fs::file_status status = fs::status(root, ec);
  if (fs::exists(status) && !fs::is_directory(status)) {
    return where + " exists and is not a directory";
  }
  if (access == Access::kReadOnly) {
    if (!fs::exists(status)) return where + ": " + ErrnoMessage(ENOENT);
    if (::access(root.c_str(), R_OK | X_OK) != 0) return where + ": " + ErrnoMessage(errno);
    return SnapshotStore(std::move(root), access);
  }

  if (!fs::exists(status)) {
    fs::create_directories(root.parent_path(), ec);
    if (ec) return where + ": cannot create " + root.parent_path().string() + ": " + ec.message();
    if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
      return where + ": cannot create it: " + ErrnoMessage(errno);
    }
    // Snapshots hold the whole data set: nobody but the owner reads them, whatever the umask.
    if (::chmod(root.c_str(), 0700) != 0) return where + ": chmod: " + ErrnoMessage(errno);
    // The new directory's entry in its parent is made durable now, not at the first commit.
    if (Status s = FsyncDir(root.parent_path()); !s.ok()) return where + ": " + s.message();
    if (!fs::is_directory(root, ec)) return where + " exists and is not a directory";
  }
  if (::access(root.c_str(), W_OK | X_OK) != 0) {
    return where + " is not writable: " + ErrnoMessage(errno);
  }
  return SnapshotStore(std::move(root), access);
}

bool SnapshotStore::Exists(std::string_view name) const {
  // A reader that cannot lock (read-only media without a .lock) still answers; it just cannot
  // exclude a writer that is half way through Begin.
  const RootLock lock(root_, /*exclusive=*/false, /*may_create=*/access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  return FindCommitted(scan, name) != nullptr || FindLivePartial(scan, name, nullptr) != nullptr;
}

Status SnapshotStore::CheckWritable() const {
  const std::string where = "snapshot storage " + root_.string();
  if (access_ != Access::kReadWrite) return Status::Error(where + " was opened read-only");
  const std::string name =
      std::string(kProbePrefix) + std::to_string(::getpid()) + "-" + RandomHex();
  const fs::path path = root_ / name;
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    return Status::Error(where +
                         " is not writable: cannot create a file in it: " + ErrnoMessage(errno));
  }
  Status result = WriteAll(fd.get(), "finalsnap storage probe\n");
  if (result.ok()) result = FsyncFd(fd.get());
  fd.Reset();
  if (::unlink(path.c_str()) != 0 && result.ok()) {
    result = Status::Error("unlink: " + ErrnoMessage(errno));
  }
  if (!result.ok())
    return Status::Error(where + " is not writable: probe file: " + result.message());
  return Status::Ok();
}

uint64_t SnapshotStore::FreeBytes() const {
  struct statvfs st {};
  if (::statvfs(root_.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

std::vector<Snapshot> SnapshotStore::List() const {
  std::vector<Snapshot> snapshots;
  {
    const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
    const RootScan scan = ScanRoot(root_);
    for (const RootScan::Committed& committed : scan.committed) {
      snapshots.push_back(LoadCommitted(committed));
    }
    for (const RootScan::Partial& partial : scan.partials) {
      // A dead writer's leftovers are not a snapshot, not even one being created.
      if (partial.alive) snapshots.push_back(LoadPartial(partial));
    }
  }
  std::sort(snapshots.begin(), snapshots.end(), [](const Snapshot& a, const Snapshot& b) {
    const std::string la = Lower(a.snapshot_name);
    const std::string lb = Lower(b.snapshot_name);
    return la != lb ? la < lb : a.snapshot_name < b.snapshot_name;
  });
  return snapshots;
}

std::optional<Snapshot> SnapshotStore::Describe(std::string_view name) const {
  const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) {
    return LoadCommitted(*committed);
  }
  if (const RootScan::Partial* partial = FindLivePartial(scan, name, nullptr)) {
    return LoadPartial(*partial);
  }
  return std::nullopt;
}

std::optional<fs::path> SnapshotStore::SnapshotDir(std::string_view name) const {
  const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) return committed->path;
  return std::nullopt;
}

Status SnapshotStore::Delete(std::string_view name) {
  if (access_ != Access::kReadWrite) {
    return Status::Error("snapshot storage " + root_.string() + " was opened read-only");
  }
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(lock.error());
  const RootScan scan = ScanRoot(root_);
  const RootScan::Committed* committed = FindCommitted(scan, name);
  if (committed == nullptr) {
    if (FindLivePartial(scan, name, nullptr) != nullptr) {
      return Status::Error("snapshot " + Quote(name) +
                           " is still being created and cannot be deleted until it finishes");
    }
    return Status::Error("snapshot " + Quote(name) + " not found");
  }
  if (Status s = RemoveDirDurably(root_, committed->path); !s.ok()) {
    return Status::Error("delete snapshot " + Quote(committed->name) + ": " + s.message());
  }
  return Status::Ok();
}

Status SnapshotStore::ReplaceManifest(const Snapshot& snapshot) {
  const std::string what = "replace the manifest of snapshot " + Quote(snapshot.snapshot_name);
  if (access_ != Access::kReadWrite) return Status::Error(what + ": the store is read-only");
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(what + ": " + lock.error());
  const RootScan scan = ScanRoot(root_);
  const RootScan::Committed* committed = FindCommitted(scan, snapshot.snapshot_name);
  if (committed == nullptr) return Status::Error(what + ": no such committed snapshot");
  UniqueFd dir_fd(::open(committed->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return Status::Error(what + ": open: " + ErrnoMessage(errno));
  if (Status s = WriteManifestAt(dir_fd.get(), SnapshotToJson(snapshot)); !s.ok()) {
    return Status::Error(what + ": " + s.message());
  }
  if (Status s = FsyncFd(dir_fd.get()); !s.ok()) {
    return Status::Error(what + ": fsync the directory: " + s.message());
  }
  return Status::Ok();
}

std::variant<std::unique_ptr<SnapshotWriter>, std::string> SnapshotStore::Begin(
    const Snapshot& initial) {
  const std::string& name = initial.snapshot_name;
  if (const std::string problem = CheckSnapshotName(name); !problem.empty()) {
    return "invalid snapshot name " + Quote(name) + ": " + problem;
  }
  if (access_ != Access::kReadWrite) {
    return "snapshot storage " + root_.string() + " was opened read-only";
  }
  // Held until the partial directory exists, is locked and has its manifest, so that another
  // Begin for the same name (in this process or another) waits and then sees it.
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return lock.error();
  const RootScan scan = ScanRoot(root_);
  if (!scan.error.empty()) return scan.error;
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) {
    return "snapshot " + Quote(committed->name) + " already exists";
  }
  std::string in_flight;
  if (const RootScan::Partial* partial = FindLivePartial(scan, name, &in_flight)) {
    return "snapshot " + Quote(in_flight) + " is already being created (" +
           partial->path.filename().string() + ")";
  }

  const std::string dir_name = std::string(kPartialPrefix) + name.substr(0, kPartialNameChars) +
                               "-" + std::to_string(::getpid()) + "-" + RandomHex();
  const fs::path dir = root_ / dir_name;
  if (::mkdir(dir.c_str(), 0700) != 0) return "create " + dir.string() + ": " + ErrnoMessage(errno);
  const auto fail = [&dir](std::string message) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return message;
  };
  if (::chmod(dir.c_str(), 0700) != 0)
    return fail("chmod " + dir.string() + ": " + ErrnoMessage(errno));
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (dir_fd.get() < 0) return fail("open " + dir.string() + ": " + ErrnoMessage(errno));
  // The "alive" mark that List, Exists and the sweep test for; the kernel drops it if we die.
  if (Flock(dir_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return fail("lock " + dir.string() + ": " + ErrnoMessage(errno));
  }
  Snapshot manifest = initial;
  manifest.snapshot_status = "creating";
  if (Status s = WriteManifestAt(dir_fd.get(), SnapshotToJson(manifest)); !s.ok()) {
    return fail(dir.string() + ": " + s.message());
  }
  return std::unique_ptr<SnapshotWriter>(new SnapshotWriter(root_, name, dir, dir_fd.Release()));
}

std::variant<std::vector<std::string>, std::string> SnapshotStore::SweepAbandonedPartials() {
  if (access_ != Access::kReadWrite) {
    return "snapshot storage " + root_.string() + " was opened read-only";
  }
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return lock.error();
  const RootScan scan = ScanRoot(root_);
  if (!scan.error.empty()) return scan.error;
  std::vector<std::string> removed;
  const auto remove = [&removed](const fs::path& path) -> std::string {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) return "remove " + path.string() + ": " + ec.message();
    removed.push_back(path.filename().string());
    return {};
  };
  for (const RootScan::Partial& partial : scan.partials) {
    if (partial.alive) continue;
    if (std::string error = remove(partial.path); !error.empty()) return error;
  }
  for (const fs::path& path : scan.deleting) {
    if (std::string error = remove(path); !error.empty()) return error;
  }
  for (const auto& [path, pid] : scan.probes) {
    if (PidAlive(pid)) continue;
    if (std::string error = remove(path); !error.empty()) return error;
  }
  return removed;
}

// ---- SnapshotWriter ----

SnapshotWriter::SnapshotWriter(fs::path root, std::string name, fs::path dir, int dir_fd)
    : root_(std::move(root)), name_(std::move(name)), dir_(std::move(dir)), dir_fd_(dir_fd) {}

SnapshotWriter::~SnapshotWriter() {
  Abort();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

std::variant<int, std::string> SnapshotWriter::CreateFile(const std::string& file_name) {
  if (committed_ || aborted_) {
    return "snapshot " + Quote(name_) + " is already " + (committed_ ? "committed" : "aborted");
  }
  if (const std::string problem = CheckFileName(file_name); !problem.empty()) return problem;
  for (const File& file : files_) {
    if (file.name == file_name) return "file " + Quote(file_name) + " was already created";
  }
  const int fd = ::openat(dir_fd_, file_name.c_str(),
                          O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return "create " + (dir_ / file_name).string() + ": " + ErrnoMessage(errno);
  if (::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlinkat(dir_fd_, file_name.c_str(), 0);
    return "chmod " + (dir_ / file_name).string() + ": " + ErrnoMessage(err);
  }
  files_.push_back({file_name, fd});
  return fd;
}

Status SnapshotWriter::Commit(Snapshot& final_manifest, std::string* evidence) {
  if (committed_ || aborted_) {
    return Status::Error("snapshot " + Quote(name_) + " is already " +
                         (committed_ ? "committed" : "aborted"));
  }
  const auto fail = [this](const std::string& message) {
    Abort();
    return Status::Error("snapshot " + Quote(name_) + ": " + message);
  };

  // The manifest must describe exactly the files written, or readback and restore would look
  // for files that are not there, or miss one that is.
  Snapshot manifest = final_manifest;
  if (manifest.snapshot_name.empty()) manifest.snapshot_name = name_;
  if (manifest.snapshot_name != name_) {
    return fail("the final manifest is named " + Quote(manifest.snapshot_name));
  }
  std::vector<NodeSnapshot*> by_file(files_.size(), nullptr);
  for (size_t i = 0; i < manifest.node_snapshots.size(); ++i) {
    NodeSnapshot& node = manifest.node_snapshots[i];
    const auto it = std::find_if(files_.begin(), files_.end(),
                                 [&node](const File& f) { return f.name == node.file; });
    const std::string where = "NodeSnapshots[" + std::to_string(i) + "]";
    if (it == files_.end())
      return fail(where + " names " + Quote(node.file) + ", which was not created");
    NodeSnapshot*& slot = by_file[static_cast<size_t>(it - files_.begin())];
    if (slot != nullptr) return fail(where + " names " + Quote(node.file) + " a second time");
    slot = &node;
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    if (by_file[i] == nullptr) {
      return fail("file " + Quote(files_[i].name) + " was created but no NodeSnapshot names it");
    }
  }

  // The data first: every file is on disk before a manifest that vouches for it is written.
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < files_.size(); ++i) {
    File& file = files_[i];
    if (Status s = FsyncFd(file.fd); !s.ok())
      return fail("fsync " + file.name + ": " + s.message());
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) return fail("stat " + file.name + ": " + ErrnoMessage(errno));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (by_file[i]->stored_bytes == 0) {
      by_file[i]->stored_bytes = size;
    } else if (by_file[i]->stored_bytes != size) {
      return fail(file.name + " holds " + std::to_string(size) + " bytes but the manifest says " +
                  std::to_string(by_file[i]->stored_bytes));
    }
    total_bytes += size;
    const int fd = std::exchange(file.fd, -1);
    if (::close(fd) != 0) return fail("close " + file.name + ": " + ErrnoMessage(errno));
  }

  manifest.snapshot_status = "available";
  if (Status s = WriteManifestAt(dir_fd_, SnapshotToJson(manifest)); !s.ok()) {
    return fail(s.message());
  }
  if (Status s = FsyncFd(dir_fd_); !s.ok()) return fail("fsync the directory: " + s.message());

  const fs::path target = root_ / name_;
  {
    const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
    if (!lock.ok()) return fail(lock.error());
    // RENAME_NOREPLACE refuses an exact match; the scan also refuses one that differs in case.
    const RootScan scan = ScanRoot(root_);
    if (const RootScan::Committed* existing = FindCommitted(scan, name_)) {
      return fail("a snapshot named " + Quote(existing->name) + " appeared while it was written");
    }
    int rc = ::renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // A file system without RENAME_NOREPLACE. The root lock and the scan above already
      // exclude every cooperating writer, so a plain rename is safe enough here.
      std::error_code ec;
      if (fs::exists(fs::symlink_status(target, ec))) {
        errno = EEXIST;
      } else {
        rc = ::rename(dir_.c_str(), target.c_str());
      }
    }
    if (rc != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY) {
        return fail(Quote(target.string()) + " appeared while the snapshot was written");
      }
      return fail("rename " + dir_.filename().string() + " -> " + name_ + ": " + ErrnoMessage(err));
    }
    if (Status s = FsyncDir(root_); !s.ok()) {
      // The rename may not survive a crash, so the gate cannot pass. Take the snapshot back
      // out of sight rather than leave one that might vanish.
      const Status removed = RemoveDirDurably(root_, target);
      aborted_ = true;
      std::string message = "fsync the root after the rename: " + s.message();
      if (!removed.ok()) message += "; removing it again also failed: " + removed.message();
      return Status::Error("snapshot " + Quote(name_) + ": " + message);
    }
  }

  const std::string partial_name = dir_.filename().string();
  dir_ = target;
  committed_ = true;
  ::close(std::exchange(dir_fd_, -1));  // releases the "alive" mark; the rename made it moot
  final_manifest = std::move(manifest);
  if (evidence != nullptr) {
    *evidence = "fsynced " + std::to_string(files_.size()) +
                (files_.size() == 1 ? " file (" : " files (") + std::to_string(total_bytes) +
                " bytes), manifest, dir; renamed " + partial_name + " -> " + name_ +
                "; fsynced root";
  }
  return Status::Ok();
}

void SnapshotWriter::Abort() {
  if (committed_ || aborted_) return;
  aborted_ = true;
  for (File& file : files_) {
    if (file.fd >= 0) ::close(std::exchange(file.fd, -1));
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  // Released only after the directory is gone, so that nobody sees it as abandoned meanwhile.
  if (dir_fd_ >= 0) ::close(std::exchange(dir_fd_, -1));
}

// ---- Readback ----

namespace {

// The facts a readback found about one stored file, whichever way it was read.
struct ReadFacts {
  uint64_t stored_bytes = 0;
  Compression compression = Compression::kNone;
  const rdb::Report* report = nullptr;
};

// The first difference between what was read back and what the manifest says; "" if none.
std::string ManifestDifference(const ReadFacts& v, const NodeSnapshot& node) {
  if (v.stored_bytes != node.stored_bytes) {
    return "holds " + std::to_string(v.stored_bytes) + " bytes, the manifest says " +
           std::to_string(node.stored_bytes);
  }
  if (v.compression != node.compression) {
    return "is " + std::string(CompressionName(v.compression)) + ", the manifest says " +
           std::string(CompressionName(node.compression));
  }
  const rdb::Report& r = *v.report;
  if (r.computed_crc != node.crc64) {
    return "CRC-64 " + Hex64(r.computed_crc) + " does not match the manifest's " +
           Hex64(node.crc64);
  }
  if (r.bytes != node.rdb_bytes) {
    return "the RDB is " + std::to_string(r.bytes) + " bytes, the manifest says " +
           std::to_string(node.rdb_bytes);
  }
  if (r.rdb_version != node.rdb_version) {
    return "RDB version " + std::to_string(r.rdb_version) + ", the manifest says " +
           std::to_string(node.rdb_version);
  }
  return KeyspaceDifference(r.databases, node.keyspace);
}

std::string Mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

Status Readback(const SnapshotStore& store, std::string_view name, std::string* evidence) {
  const std::optional<fs::path> dir = store.SnapshotDir(name);
  if (!dir) return Status::Error("readback: snapshot " + Quote(name) + " is not committed");
  std::string error;
  const std::optional<Snapshot> manifest = LoadManifest(*dir, &error);
  if (!manifest) return Status::Error("readback: " + error);
  if (manifest->node_snapshots.empty()) {
    return Status::Error("readback: the manifest of " + Quote(name) + " lists no files");
  }

  uint64_t stored_total = 0;
  uint64_t rdb_total = 0;
  size_t not_dropped = 0;
  for (const NodeSnapshot& node : manifest->node_snapshots) {
    const auto fail = [&node](const std::string& message) {
      return Status::Error("readback: " + node.file + ": " + message);
    };
    // The manifest is data read from disk: it must not send us outside the directory.
    if (const std::string problem = CheckFileName(node.file); !problem.empty()) {
      return fail(problem);
    }
    const fs::path path = *dir / node.file;
    {
      // Committed files were fsynced, so their cached pages are clean and DONTNEED drops them:
      // the read below then comes from the device, which is what the gate is meant to prove.
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (fd.get() < 0) return fail(ErrnoMessage(errno));
      if (::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED) != 0) ++not_dropped;
    }
    const FileVerification v = VerifyFile(path.string());
    if (v.rdb_error) return fail(v.rdb_error->ToString());
    if (!v.io_error.empty()) return fail(v.io_error);
    if (const std::string diff = ManifestDifference({v.stored_bytes, v.compression, &v.report}, node);
        !diff.empty()) {
      return fail(diff);
    }
    stored_total += v.stored_bytes;
    rdb_total += v.report.bytes;
  }
  if (evidence != nullptr) {
    const size_t n = manifest->node_snapshots.size();
    *evidence = "read back " + std::to_string(n) + (n == 1 ? " file (" : " files (") +
                std::to_string(stored_total) + " stored bytes, " + std::to_string(rdb_total) +
                " RDB bytes), " +
                (not_dropped == 0 ? std::string("page cache dropped")
                                  : "page cache not dropped for " + std::to_string(not_dropped)) +
                "; CRC-64 and key counts match the manifest";
  }
  return Status::Ok();
}

Status CheckReadback(std::span<const ReadbackReport> readbacks, const Snapshot& manifest,
                     std::string* evidence) {
  if (manifest.node_snapshots.empty()) {
    return Status::Error("readback: the manifest of " + Quote(manifest.snapshot_name) +
                         " lists no files");
  }
  std::string summary;
  for (const NodeSnapshot& node : manifest.node_snapshots) {
    const auto fail = [&node](const std::string& message) {
      return Status::Error("readback: " + node.file + ": " + message);
    };
    const ReadbackReport* r = nullptr;
    for (const ReadbackReport& candidate : readbacks) {
      if (fs::path(candidate.path).filename() == node.file) r = &candidate;
    }
    if (r == nullptr) return fail("was not read back");
    if (r->rdb_error) return fail(r->rdb_error->ToString());
    if (!r->io_error.empty()) return fail(r->io_error);
    if (const std::string diff = ManifestDifference({r->stored_bytes, r->compression, &r->report},
                                                    node);
        !diff.empty()) {
      return fail(diff);
    }
    std::string how;
    if (r->direct) {
      how = "each synced to the device (sync_file_range) and read with O_DIRECT";
    } else if (r->cache_dropped) {
      how = "each synced (sync_file_range), its page cache dropped and read (no O_DIRECT here)";
    } else {
      how = "each synced (sync_file_range) and read; the kernel refused to drop some cached pages, "
            "so part may have come from the page cache";
    }
    if (!summary.empty()) summary += "; ";
    summary += "read back " + node.file + " while it was written: " +
               std::to_string(r->stored_bytes) + " stored bytes in " +
               std::to_string(r->stretches) + (r->stretches == 1 ? " stretch, " : " stretches, ") +
               how + "; decoded (" + std::string(CompressionName(r->compression)) + ") to " +
               std::to_string(r->report.bytes) + " RDB bytes" +
               (r->deep ? ", then read again in deep mode (the RDB has no CRC-64)" : "") +
               "; CRC-64 " + Hex64(r->report.computed_crc) +
               " and key counts match the manifest; " + Mib(r->tail_bytes) +
               " was left to read when the writer finished, done " +
               std::to_string(static_cast<int>(r->tail_seconds * 1000 + 0.5)) + " ms later";
  }
  if (evidence != nullptr) *evidence = summary;
  return Status::Ok();
}

}  // namespace finalsnap
