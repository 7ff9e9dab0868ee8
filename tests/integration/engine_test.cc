// Integration tests of the engine's operations (engine.h: DeleteCacheCluster, CreateSnapshot,
// RestoreSnapshot) against real redis-server processes, with faults injected by a TCP proxy.
//
// Success paths check that every gate passed, in DESIGN.md's order, and that the snapshot is real:
// the stored file decompresses with the zstd / lz4 command-line tools to an RDB that
// redis-check-rdb accepts, and RestoreSnapshot gives a dump.rdb that a fresh redis-server loads
// with the same DEBUG DIGEST, keyspace and DBSIZE as the source had just before the operation.
//
// Refusals check that the node is left as it was: running, same DEBUG DIGEST and keyspace, same
// CONFIG GET *, writable within a second (so CLIENT PAUSE was lifted), and that the storage holds
// no snapshot and no partial directory.
//
// Faults: the node killed mid-transfer (SIGKILL from the progress callback, or while the proxy
// holds the stream), the replication connection cut, a payload byte flipped, the stream stalled
// past transfer_timeout_ms, a node too slow for command_timeout_ms (DEBUG SLEEP) before the
// operation or right after the transfer, and the command connection lost mid-transfer. For the
// last two the engine may succeed or refuse, but never half: a success leaves the node as
// before (create) or gone (delete), a refusal leaves it as before.
//
// Also: writers during the operation (every acknowledged write is in a final snapshot; a
// create-snapshot image is prefix-closed), AUTH as an ACL user, two bgsave-file snapshots within
// one second, two operations racing for one snapshot name, a dry run, and the proxy itself.
//
// Every fleet sets transfer_timeout_ms, so an engine that waits forever fails a test instead of
// hanging the suite. The whole file takes about a minute on 2 cores.
//
// A missing redis-server, redis-check-rdb, zstd or lz4 fails these tests; it never skips them.
#include "finalsnap/engine.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "support/dataset.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "support/storage_entries.h"
#include "support/tcp_proxy.h"
#include "support/writer.h"

namespace finalsnap::rdb {

// Lets GoogleTest print the per-database maps it compares. Static: other test files in the same
// binary may define their own.
[[maybe_unused]] static void PrintTo(const DbCounts& c, std::ostream* os) {
  *os << "{keys=" << c.keys << ", expires=" << c.expires << "}";
}

}  // namespace finalsnap::rdb

namespace finalsnap::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kClusterId[] = "c1";
constexpr uint64_t kKeys = 3000;  // FillMixed keys for the round-trip tests

// The gates in DESIGN.md's order.
const std::vector<std::string> kDesignOrder = {
    "target-resolved",    "topology-consistent", "permissions",    "target-claimed",
    "snapshot-name-free", "storage-ready",       "writes-paused",  "rdb-complete",
    "rdb-checksum",       "rdb-parsed",          "keycount-match", "durable",
    "readback",           "nodes-shutdown"};
const std::vector<std::string> kSnapshotGates = {
    "target-resolved", "topology-consistent", "permissions",
    "target-claimed",  "snapshot-name-free",  "storage-ready",
    "writes-paused",   "rdb-complete",        "rdb-checksum",
    "rdb-parsed",      "keycount-match",      "durable",
    "readback"};
const std::set<std::string> kCaptureGates = {"rdb-complete", "rdb-checksum", "rdb-parsed",
                                             "keycount-match"};

// Everything about an operation's result, for assertion messages.
std::string Describe(const OperationResult& r) {
  std::ostringstream out;
  out << "ok=" << r.ok << " fault='" << r.fault << "' failed_gate='" << r.failed_gate
      << "' message='" << r.message << "' seconds=" << r.seconds << "\n";
  for (const GateVerdict& g : r.gates) {
    out << "  [" << (g.passed ? "pass" : "FAIL") << "] " << g.phase << "/" << g.gate << " @"
        << g.at_ms << "ms: " << g.evidence << "\n";
  }
  for (const std::string& n : r.notes) out << "  note: " << n << "\n";
  return out.str();
}

std::vector<std::string> GateNames(const OperationResult& r) {
  std::vector<std::string> names;
  for (const GateVerdict& g : r.gates) names.push_back(g.gate);
  return names;
}

// True when `names` appear in DESIGN.md's order, each at most once.
bool InDesignOrder(const std::vector<std::string>& names) {
  size_t at = 0;
  for (const std::string& n : names) {
    while (at < kDesignOrder.size() && kDesignOrder[at] != n) ++at;
    if (at == kDesignOrder.size()) return false;
    ++at;
  }
  return true;
}

void ExpectAllPassed(const OperationResult& r, const std::vector<std::string>& gates) {
  if (!r.ok) {
    ADD_FAILURE() << "the operation failed\n" << Describe(r);
    return;
  }
  EXPECT_TRUE(r.fault.empty()) << Describe(r);
  EXPECT_TRUE(r.failed_gate.empty()) << Describe(r);
  EXPECT_EQ(GateNames(r), gates) << Describe(r);
  for (const GateVerdict& g : r.gates) {
    EXPECT_TRUE(g.passed) << g.gate << "\n" << Describe(r);
    EXPECT_FALSE(g.evidence.empty()) << g.gate << "\n" << Describe(r);
  }
}

// A refusal: not ok, the fault and gate named (an empty `fault` accepts any non-empty one), the
// failed gate is the last verdict recorded, every earlier one passed, all in DESIGN.md's order.
void ExpectRefused(const OperationResult& r, const std::string& fault, const std::string& gate) {
  EXPECT_FALSE(r.ok) << Describe(r);
  if (fault.empty()) {
    EXPECT_FALSE(r.fault.empty()) << Describe(r);
  } else {
    EXPECT_EQ(r.fault, fault) << Describe(r);
  }
  EXPECT_EQ(r.failed_gate, gate) << Describe(r);
  EXPECT_FALSE(r.message.empty()) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value()) << Describe(r);
  EXPECT_TRUE(InDesignOrder(GateNames(r))) << Describe(r);
  if (gate.empty()) {
    for (const GateVerdict& g : r.gates) EXPECT_TRUE(g.passed) << g.gate << "\n" << Describe(r);
    return;
  }
  ASSERT_FALSE(r.gates.empty()) << Describe(r);
  EXPECT_EQ(r.gates.back().gate, gate) << "the last verdict is not the failed gate\n"
                                       << Describe(r);
  EXPECT_FALSE(r.gates.back().passed) << Describe(r);
  for (size_t i = 0; i + 1 < r.gates.size(); ++i) {
    EXPECT_TRUE(r.gates[i].passed) << r.gates[i].gate << "\n" << Describe(r);
  }
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What a node looked like; compared before and after an operation.
struct NodeState {
  std::string digest;  // DEBUG DIGEST
  std::map<uint64_t, rdb::DbCounts> keyspace;
  long long dbsize = 0;                       // DBSIZE of database 0
  std::string functions;                      // FUNCTION LIST, printed
  std::map<std::string, std::string> config;  // CONFIG GET *
};

NodeState ReadState(RedisServer& server) {
  NodeState s;
  Reply digest = server.Command("DEBUG", "DIGEST");
  if (digest.is_error()) throw std::runtime_error("DEBUG DIGEST: " + digest.ToString());
  s.digest = digest.str;
  s.keyspace = server.Keyspace();
  Reply dbsize = server.Command("DBSIZE");
  s.dbsize = dbsize.integer;
  // FUNCTION LIST is in hash-table order, libraries and the functions in each: sort both.
  std::vector<std::string> libraries;
  for (const Reply& lib : server.Command("FUNCTION", "LIST", "WITHCODE").elements) {
    std::string text;
    for (size_t i = 0; i + 1 < lib.elements.size(); i += 2) {
      const Reply& value = lib.elements[i + 1];
      std::vector<std::string> parts;
      if (lib.elements[i].str == "functions") {
        for (const Reply& f : value.elements) parts.push_back(f.ToString());
        std::sort(parts.begin(), parts.end());
      } else {
        parts.push_back(value.ToString());
      }
      text += lib.elements[i].str + "=";
      for (const std::string& p : parts) text += p + ";";
      text += " ";
    }
    libraries.push_back(text);
  }
  std::sort(libraries.begin(), libraries.end());
  for (const std::string& lib : libraries) s.functions += lib + "\n";
  Reply config = server.Command("CONFIG", "GET", "*");
  for (size_t i = 0; i + 1 < config.elements.size(); i += 2) {
    s.config[config.elements[i].str] = config.elements[i + 1].str;
  }
  return s;
}

// The config entries that differ, "name: before -> after".
std::string ConfigDiff(const std::map<std::string, std::string>& before,
                       const std::map<std::string, std::string>& after) {
  std::string diff;
  for (const auto& [name, value] : before) {
    auto it = after.find(name);
    const std::string now = it == after.end() ? "(absent)" : it->second;
    if (now != value) diff += "  " + name + ": '" + value + "' -> '" + now + "'\n";
  }
  for (const auto& [name, value] : after) {
    if (!before.count(name)) diff += "  " + name + ": (absent) -> '" + value + "'\n";
  }
  return diff;
}

// A SET on a fresh connection answers within a second: no CLIENT PAUSE holds writes.
void ExpectWritableWithinOneSecond(RedisServer& server) {
  try {
    RedisContextPtr c = server.Connect(milliseconds(1000));
    const auto start = Clock::now();
    Reply r = Execute(c.get(), {"SET", "engine-test:probe", "1"});
    EXPECT_TRUE(r.ok()) << r.ToString();
    EXPECT_LT(Clock::now() - start, milliseconds(1000));
    Execute(c.get(), {"DEL", "engine-test:probe"});
  } catch (const std::runtime_error& e) {
    ADD_FAILURE() << "the node did not take a write within 1 s (still paused?): " << e.what();
  }
}

// The node is as it was: running, same data, same config, writable at once.
void ExpectNodeUntouched(RedisServer& server, const NodeState& before) {
  ASSERT_TRUE(server.Running()) << "the node is gone\n" << server.LogTail();
  NodeState after;
  try {
    after = ReadState(server);
  } catch (const std::runtime_error& e) {
    FAIL() << "the node does not answer: " << e.what() << "\n" << server.LogTail();
  }
  EXPECT_EQ(after.digest, before.digest);
  EXPECT_EQ(after.keyspace, before.keyspace);
  EXPECT_EQ(after.dbsize, before.dbsize);
  EXPECT_EQ(after.functions, before.functions);
  EXPECT_EQ(ConfigDiff(before.config, after.config), "") << "config left changed";
  ExpectWritableWithinOneSecond(server);
}

// Fills the server with FillMixed's data set.
DatasetStats Fill(RedisServer& server, uint64_t seed, uint64_t keys, uint64_t bytes = 0) {
  RedisContextPtr c = server.Connect(milliseconds(60'000));
  DatasetOptions options;
  options.seed = seed;
  options.key_count = keys;
  options.target_bytes = bytes;
  return FillMixed(c.get(), options);
}

// A few small keys and one `size`-byte incompressible string "big": a dataset in which a fixed
// stream offset past the first few KB lands inside that one value.
void FillBigValue(RedisServer& server, size_t size) {
  SetRandomValue(server, "big", size);
  Reply r;
  for (int i = 0; i < 20; ++i) {
    r = server.Command("SET", "small:" + std::to_string(i), std::to_string(i));
    if (!r.ok()) throw std::runtime_error("SET small: " + r.ToString());
  }
}

// The node is gone: its process exited and its port refuses connections.
void ExpectNodeGone(RedisServer& server) {
  EXPECT_TRUE(server.WaitForExit(milliseconds(10'000)).has_value())
      << "the node still runs after the operation\n"
      << server.LogTail();
  EXPECT_THROW(ConnectTo(server.host(), server.port(), milliseconds(1000)), std::runtime_error)
      << "the node's port still accepts connections";
}

// Waits until `server` is busy (a PING on a new connection gets no answer within 100 ms).
bool WaitUntilBusy(RedisServer& server, milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    try {
      RedisContextPtr c = ConnectTo(server.host(), server.port(), milliseconds(100));
      Execute(c.get(), {"PING"});
    } catch (const std::runtime_error&) {
      return true;
    }
  }
  return false;
}

struct FleetSpec {
  int port = 0;
  std::string compression = "zstd";
  std::string capture = "sync";
  std::optional<fs::path> storage;  // default: the fixture's storage dir
  // Bounds every capture, so that an engine that waits forever fails the test instead of hanging
  // the suite; 0 is the engine's default (no limit).
  int transfer_timeout_ms = 20'000;
  std::string cluster_extra;  // more lines for [cache_clusters.c1]
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/finalsnap-engine-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    storage_ = dir_ / "snapshots";
  }
  void TearDown() override {
    const char* keep = std::getenv("FINALSNAP_KEEP_TMP");
    if (keep != nullptr && std::string(keep) == "1") {
      std::cerr << "kept " << dir_ << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Fleet MakeFleet(const FleetSpec& spec) {
    std::string text = "[storage]\npath = \"" + spec.storage.value_or(storage_).string() +
                       "\"\ncompression = \"" + spec.compression + "\"\n\n[cache_clusters." +
                       kClusterId + "]\nendpoint = \"127.0.0.1:" + std::to_string(spec.port) +
                       "\"\ncapture = \"" + spec.capture +
                       "\"\ntransfer_timeout_ms = " + std::to_string(spec.transfer_timeout_ms) +
                       "\n" + spec.cluster_extra;
    auto parsed = ParseFleet(text, dir_ / "finalsnap.toml");
    if (!parsed.ok()) {
      throw std::runtime_error("fleet refused: " + parsed.error().ToString() + "\n" + text);
    }
    return std::move(parsed).value();
  }

  // Names in the storage root (snapshots, partials, deletions, journals left), but its lock.
  std::vector<std::string> StorageEntries() const { return testing::StorageEntries(storage_); }

  // Checks snapshot `name` end to end: committed and available, its file decompressed by the
  // real CLI is an RDB that redis-check-rdb accepts, and RestoreSnapshot's dump.rdb (the same
  // bytes) loads into a fresh redis-server with `source`'s digest, keyspace and DBSIZE.
  void VerifySnapshot(const std::string& name, const std::string& compression,
                      const NodeState& source) {
    auto opened = SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    const SnapshotStore& store = *opened;
    const std::optional<Snapshot> snap = store.Describe(name);
    ASSERT_TRUE(snap.has_value()) << "no snapshot " << name;
    EXPECT_EQ(snap->snapshot_status, "available");
    ASSERT_EQ(snap->node_snapshots.size(), 1u);
    const NodeSnapshot& node = snap->node_snapshots[0];
    EXPECT_EQ(node.keyspace, source.keyspace);
    const std::optional<fs::path> snap_dir = store.SnapshotDir(name);
    ASSERT_TRUE(snap_dir.has_value());
    const fs::path stored = *snap_dir / node.file;
    ASSERT_TRUE(fs::is_regular_file(stored)) << stored;

    // Decompress with the real tools.
    const fs::path cli_rdb = dir_ / (name + "-cli.rdb");
    if (compression == "zstd") {
      EXPECT_EQ(stored.string().substr(stored.string().size() - 8), ".rdb.zst");
      ProcessResult r = RunCommand({"zstd", "-d", "-q", "-f", "-o", cli_rdb.string(), stored});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
    } else if (compression == "lz4") {
      EXPECT_EQ(stored.string().substr(stored.string().size() - 8), ".rdb.lz4");
      ProcessResult r = RunCommand({"lz4", "-d", "-q", "-f", stored, cli_rdb.string()});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
    } else {
      EXPECT_EQ(stored.extension(), ".rdb");
      fs::copy_file(stored, cli_rdb);
    }
    ProcessResult check = RunCommand({"redis-check-rdb", cli_rdb.string()});
    EXPECT_EQ(check.exit_code, 0) << check.Describe();
    const std::string cli_bytes = ReadFile(cli_rdb);
    EXPECT_EQ(cli_bytes.size(), node.rdb_bytes);

    // Restore and load.
    const fs::path target = dir_ / (name + "-restore");
    RestoreResult restored = RestoreSnapshot(store, name, target);
    ASSERT_TRUE(restored.status.ok()) << restored.status.message();
    ASSERT_EQ(restored.files, std::vector<fs::path>{target / "dump.rdb"});
    EXPECT_EQ(restored.rdb_bytes, node.rdb_bytes);
    EXPECT_TRUE(ReadFile(target / "dump.rdb") == cli_bytes)
        << "RestoreSnapshot and the CLI decompressor disagree";
    RedisServer loaded({{"dir", target.string()}, {"dbfilename", "dump.rdb"}});
    loaded.Start();
    const NodeState state = ReadState(loaded);
    EXPECT_EQ(state.digest, source.digest);
    EXPECT_EQ(state.keyspace, source.keyspace);
    EXPECT_EQ(state.dbsize, source.dbsize);
    EXPECT_EQ(state.functions, source.functions);
  }

  fs::path dir_;
  fs::path storage_;
};

// --- Success paths -------------------------------------------------------------------------

enum class Capture { kSyncDiskless, kSyncDisk, kBgsaveFile };

std::string CaptureName(Capture c) {
  switch (c) {
    case Capture::kSyncDiskless:
      return "SyncDiskless";
    case Capture::kSyncDisk:
      return "SyncDisk";
    case Capture::kBgsaveFile:
      return "BgsaveFile";
  }
  return "?";
}

void PrintTo(Capture c, std::ostream* os) { *os << CaptureName(c); }

// The source server's directives for a capture: the framing follows repl-diskless-sync. Debian's
// diskless delay (5 s) and LZF on, so that the tests see the engine change and restore them.
std::vector<std::pair<std::string, std::string>> ServerConfig(Capture c) {
  return {{"repl-diskless-sync", c == Capture::kSyncDisk ? "no" : "yes"},
          {"repl-diskless-sync-delay", "5"},
          {"rdbcompression", "yes"}};
}

std::string FleetCapture(Capture c) { return c == Capture::kBgsaveFile ? "bgsave-file" : "sync"; }

class EngineDeleteTest : public EngineTest,
                         public ::testing::WithParamInterface<std::tuple<std::string, Capture>> {};

TEST_P(EngineDeleteTest, FinalSnapshotRestoresAndNodeIsGone) {
  const auto& [compression, capture] = GetParam();
  RedisServer server(ServerConfig(capture));
  server.Start();
  Fill(server, 11, kKeys);
  const NodeState before = ReadState(server);

  FleetSpec spec;
  spec.port = server.port();
  spec.compression = compression;
  spec.capture = FleetCapture(capture);
  const Fleet fleet = MakeFleet(spec);
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("final-1"));

  std::vector<std::string> gates = kSnapshotGates;
  gates.push_back("nodes-shutdown");
  ExpectAllPassed(r, gates);
  EXPECT_EQ(r.cluster.status, "deleted");
  ASSERT_TRUE(r.snapshot.has_value()) << Describe(r);
  EXPECT_EQ(r.snapshot->snapshot_name, "final-1");
  EXPECT_EQ(r.snapshot->final_snapshot_of, "delete-cache-cluster");
  if (capture != Capture::kBgsaveFile) {
    const std::string framing = capture == Capture::kSyncDiskless ? "eof-mark" : "length";
    const auto complete = std::find_if(r.gates.begin(), r.gates.end(),
                                       [](const auto& g) { return g.gate == "rdb-complete"; });
    ASSERT_NE(complete, r.gates.end()) << Describe(r);
    EXPECT_NE(complete->evidence.find(framing), std::string::npos)
        << "rdb-complete evidence does not name " << framing << " framing\n"
        << Describe(r);
  }
  ExpectNodeGone(server);
  VerifySnapshot("final-1", compression, before);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{"final-1"});
}

INSTANTIATE_TEST_SUITE_P(
    EngineMatrix, EngineDeleteTest,
    ::testing::Combine(::testing::Values("zstd", "lz4", "none"),
                       ::testing::Values(Capture::kSyncDiskless, Capture::kSyncDisk,
                                         Capture::kBgsaveFile)),
    [](const ::testing::TestParamInfo<std::tuple<std::string, Capture>>& info) {
      return std::get<0>(info.param) + "_" + CaptureName(std::get<1>(info.param));
    });

class EngineCreateSnapshotTest : public EngineTest,
                                 public ::testing::WithParamInterface<Capture> {};

TEST_P(EngineCreateSnapshotTest, NodeKeepsRunningWithConfigRestored) {
  RedisServer server(ServerConfig(GetParam()));
  server.Start();
  Fill(server, 12, kKeys);
  const NodeState before = ReadState(server);

  FleetSpec spec;
  spec.port = server.port();
  spec.capture = FleetCapture(GetParam());
  const Fleet fleet = MakeFleet(spec);
  std::vector<OperationEvent> events;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) { events.push_back(e); };
  const OperationResult r = CreateSnapshot(fleet, kClusterId, "snap-1", options);

  ExpectAllPassed(r, kSnapshotGates);
  // The observer saw the same verdicts as they happened, each after its phase began, the
  // phases in order, and the transfer's progress during the capture.
  std::vector<std::string> phases;
  std::vector<std::string> gates;
  std::vector<TransferProgress> progress;
  for (const OperationEvent& e : events) {
    switch (e.kind) {
      case OperationEvent::Kind::kPhase:
        phases.push_back(e.phase);
        break;
      case OperationEvent::Kind::kGate:
        ASSERT_FALSE(phases.empty());
        EXPECT_EQ(e.gate.phase, phases.back()) << e.gate.gate;
        gates.push_back(e.gate.gate);
        break;
      case OperationEvent::Kind::kProgress:
        EXPECT_EQ(phases.back(), "capture");
        progress.push_back(e.progress);
        break;
      case OperationEvent::Kind::kRecovery:
        ADD_FAILURE() << "nothing to recover, yet: " << e.message;
        break;
    }
  }
  EXPECT_EQ(phases, std::vector<std::string>({"preflight", "quiesce", "capture", "store"}));
  EXPECT_EQ(gates, GateNames(r));
  EXPECT_EQ(r.cluster.status, "available");
  ASSERT_TRUE(r.snapshot.has_value()) << Describe(r);
  // Progress per shard: the last event is the finished transfer at exactly 100 %, with every
  // stored byte read back. The size is exact from the first event when the server sends
  // `$<length>` (disk-based sync) or the node's RDB file is read; a diskless stream's size is an
  // estimate until it ends.
  ASSERT_GE(progress.size(), 2u);
  const NodeSnapshot& stored = r.snapshot->node_snapshots.at(0);
  const TransferProgress& last = progress.back();
  ASSERT_EQ(last.shards.size(), 1u);
  const ShardProgress& shard = last.shards[0];
  EXPECT_EQ(shard.node_group_id, "0001");
  EXPECT_TRUE(shard.done);
  EXPECT_TRUE(shard.exact);
  EXPECT_TRUE(last.exact);
  EXPECT_EQ(shard.received, stored.rdb_bytes);
  EXPECT_EQ(shard.expected, stored.rdb_bytes);
  EXPECT_EQ(last.bytes, last.expected);
  EXPECT_EQ(shard.stored, stored.stored_bytes);
  EXPECT_EQ(shard.read_back, stored.stored_bytes);
  for (size_t i = 0; i + 1 < progress.size(); ++i) {
    ASSERT_EQ(progress[i].shards.size(), 1u);
    const ShardProgress& p = progress[i].shards[0];
    EXPECT_FALSE(p.done) << "event " << i;
    EXPECT_LE(p.received, stored.rdb_bytes) << "event " << i;
    EXPECT_LE(p.read_back, p.stored) << "event " << i;
    // (A disk-based sync reports keepalives, with nothing received yet, before its `$` line.)
    if (p.received > 0 || GetParam() != Capture::kSyncDisk) {
      EXPECT_EQ(p.exact, GetParam() != Capture::kSyncDiskless) << "event " << i;
    }
    if (p.exact) {
      EXPECT_EQ(p.expected, stored.rdb_bytes) << "event " << i;
    }
  }
  EXPECT_EQ(r.snapshot->final_snapshot_of, "");
  // The node is exactly as before (data, config) and takes writes at once.
  ExpectNodeUntouched(server, before);
  const NodeState after = ReadState(server);
  EXPECT_EQ(after.config.at("repl-diskless-sync-delay"), "5");
  EXPECT_EQ(after.config.at("rdbcompression"), "yes");
  VerifySnapshot("snap-1", "zstd", before);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{"snap-1"});
}

INSTANTIATE_TEST_SUITE_P(EngineCaptures, EngineCreateSnapshotTest,
                         ::testing::Values(Capture::kSyncDiskless, Capture::kSyncDisk,
                                           Capture::kBgsaveFile),
                         [](const ::testing::TestParamInfo<Capture>& info) {
                           return CaptureName(info.param);
                         });

TEST_F(EngineTest, DeleteWithoutFinalSnapshotStoresNothing) {
  RedisServer server;
  server.Start();
  Fill(server, 13, 500);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::nullopt);
  EXPECT_TRUE(r.ok) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  EXPECT_TRUE(InDesignOrder(GateNames(r))) << Describe(r);
  ASSERT_FALSE(r.gates.empty()) << Describe(r);
  EXPECT_EQ(r.gates.front().gate, "target-resolved") << Describe(r);
  EXPECT_EQ(r.gates.back().gate, "nodes-shutdown") << Describe(r);
  for (const GateVerdict& g : r.gates) {
    EXPECT_TRUE(g.passed) << g.gate << "\n" << Describe(r);
    EXPECT_TRUE(kCaptureGates.count(g.gate) == 0 && g.gate != "durable" && g.gate != "readback" &&
                g.gate != "snapshot-name-free")
        << "a snapshot gate ran without a snapshot\n"
        << Describe(r);
  }
  ExpectNodeGone(server);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

// Two bgsave-file snapshots of one node back to back, both within one wall-clock second (LASTSAVE
// has one-second resolution): the second must not mistake its own finished BGSAVE for "not
// finished yet". transfer_timeout_ms bounds the wait.
TEST_F(EngineTest, BgsaveFileTwiceWithinOneSecond) {
  RedisServer server(ServerConfig(Capture::kBgsaveFile));
  server.Start();
  Fill(server, 17, 300);
  const NodeState before = ReadState(server);
  FleetSpec spec;
  spec.port = server.port();
  spec.capture = "bgsave-file";
  spec.transfer_timeout_ms = 5000;
  const Fleet fleet = MakeFleet(spec);
  // Start right after the second changes, so that both operations (a few tens of ms each) fall
  // in the same second.
  const std::time_t start = std::time(nullptr);
  const auto give_up = Clock::now() + milliseconds(2000);
  while (std::time(nullptr) == start && Clock::now() < give_up) std::this_thread::yield();
  const OperationResult first = CreateSnapshot(fleet, kClusterId, "first");
  const OperationResult second = CreateSnapshot(fleet, kClusterId, "second");
  RecordProperty("seconds", std::to_string(first.seconds) + " + " + std::to_string(second.seconds));
  ExpectAllPassed(first, kSnapshotGates);
  ExpectAllPassed(second, kSnapshotGates);
  ExpectNodeUntouched(server, before);
  if (second.ok) VerifySnapshot("second", "zstd", before);
}

// AUTH as an ACL user, with the default user's password on or off.
class EngineAclTest : public EngineTest, public ::testing::WithParamInterface<bool> {};

TEST_P(EngineAclTest, SnapshotThenDeleteAsAclUser) {
  const bool requirepass = GetParam();
  std::vector<std::pair<std::string, std::string>> config;
  if (requirepass) config.emplace_back("requirepass", "default-secret");
  RedisServer server(config);
  server.Start();
  Reply acl = server.Command("ACL", "SETUSER", "snap", "on", ">pw", "~*", "&*", "+@all");
  ASSERT_TRUE(acl.ok()) << acl.ToString();
  Fill(server, 14, 1000);
  const NodeState before = ReadState(server);
  ASSERT_EQ(::setenv("FINALSNAP_ENGINE_TEST_PW", "pw", 1), 0);

  FleetSpec spec;
  spec.port = server.port();
  spec.cluster_extra = "username = \"snap\"\npassword_env = \"FINALSNAP_ENGINE_TEST_PW\"\n";
  const Fleet fleet = MakeFleet(spec);
  const OperationResult created = CreateSnapshot(fleet, kClusterId, "acl-snap");
  ExpectAllPassed(created, kSnapshotGates);
  ASSERT_FALSE(created.gates.empty());
  EXPECT_NE(created.gates[0].evidence.find("snap"), std::string::npos) << Describe(created);
  ExpectNodeUntouched(server, before);
  VerifySnapshot("acl-snap", "zstd", before);

  const OperationResult deleted = DeleteCacheCluster(fleet, kClusterId, std::string("acl-final"));
  std::vector<std::string> gates = kSnapshotGates;
  gates.push_back("nodes-shutdown");
  ExpectAllPassed(deleted, gates);
  ExpectNodeGone(server);
  VerifySnapshot("acl-final", "zstd", before);
  ::unsetenv("FINALSNAP_ENGINE_TEST_PW");
}

INSTANTIATE_TEST_SUITE_P(EngineDefaultUser, EngineAclTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("RequirePass") : std::string("NoPass");
                         });

// A dry run runs the preflight gates, returns a plan and changes nothing.
TEST_F(EngineTest, DryRunChangesNothing) {
  RedisServer server(ServerConfig(Capture::kSyncDiskless));
  server.Start();
  Fill(server, 18, 300);
  const NodeState before = ReadState(server);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);
  OperationOptions options;
  options.dry_run = true;
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("dry"), options);
  ExpectAllPassed(r, {"target-resolved", "topology-consistent", "permissions", "target-claimed",
                      "snapshot-name-free", "storage-ready"});
  EXPECT_FALSE(r.plan.empty()) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  ExpectNodeUntouched(server, before);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

// --- Writers during the operation ----------------------------------------------------------

TEST_F(EngineTest, DeleteKeepsEveryAcknowledgedWrite) {
  RedisServer server;
  server.Start();
  Fill(server, 15, 1000);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);

  Writer writer(server, "w:");
  ASSERT_TRUE(writer.WaitForAcks(200, milliseconds(10'000))) << writer.error();
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("final-w"));
  // The writer ends when the node goes (its paused SET never gets an answer).
  EXPECT_TRUE(writer.WaitFinished(milliseconds(20'000)));
  writer.Stop();
  const uint64_t acked = writer.acked();
  RecordProperty("acked_writes", std::to_string(acked));
  std::vector<std::string> gates = kSnapshotGates;
  gates.push_back("nodes-shutdown");
  ExpectAllPassed(r, gates);
  ExpectNodeGone(server);

  auto opened = SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  const fs::path target = dir_ / "restore-w";
  RestoreResult restored = RestoreSnapshot(*opened, "final-w", target);
  ASSERT_TRUE(restored.status.ok()) << restored.status.message();
  RedisServer loaded({{"dir", target.string()}, {"dbfilename", "dump.rdb"}});
  loaded.Start();
  const std::set<uint64_t> present = WriterKeys(loaded, "w:");
  uint64_t missing = 0;
  for (uint64_t i = 0; i < acked; ++i) {
    if (!present.count(i)) {
      if (++missing <= 10)
        ADD_FAILURE() << "acknowledged write w:" << i << " is not in the snapshot";
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acked << " acknowledged writes";
  // At most the one write in flight when the node went can be there without an acknowledgement.
  EXPECT_LE(present.size(), acked + 1);
}

TEST_F(EngineTest, CreateSnapshotWithWriterIsPrefixClosed) {
  RedisServer server;
  server.Start();
  Fill(server, 16, 1000);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);

  Writer writer(server, "w:");
  ASSERT_TRUE(writer.WaitForAcks(200, milliseconds(10'000))) << writer.error();
  const uint64_t acked_before = writer.acked();
  const OperationResult r = CreateSnapshot(fleet, kClusterId, "snap-w");
  const uint64_t acked_after = writer.acked();
  // The writer goes on after the operation: the node is writable.
  EXPECT_TRUE(writer.WaitForAcks(acked_after + 100, milliseconds(5'000))) << writer.error();
  writer.Stop();
  EXPECT_EQ(writer.error(), "");
  RecordProperty("max_ack_gap_ms", std::to_string(writer.max_gap_ms()));
  RecordProperty("acked_during_operation", std::to_string(acked_after - acked_before));
  ExpectAllPassed(r, kSnapshotGates);
  ASSERT_TRUE(server.Running());

  auto opened = SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  const fs::path target = dir_ / "restore-w";
  RestoreResult restored = RestoreSnapshot(*opened, "snap-w", target);
  ASSERT_TRUE(restored.status.ok()) << restored.status.message();
  RedisServer loaded({{"dir", target.string()}, {"dbfilename", "dump.rdb"}});
  loaded.Start();
  const std::set<uint64_t> present = WriterKeys(loaded, "w:");
  // A point-in-time image of a sequential writer: w:0 .. w:(m-1) for some m, with every write
  // acknowledged before the operation began, and nothing acknowledged after it returned.
  const uint64_t m = present.size();
  EXPECT_TRUE(present.empty() || *present.rbegin() == m - 1)
      << "the snapshot's writes are not prefix-closed: " << m
      << " keys, highest w:" << *present.rbegin();
  EXPECT_GE(m, acked_before);
  EXPECT_LE(m, acked_after + 1);
}

// Two create-snapshots of two nodes under one name at the same moment: one wins; the other is
// refused as a name collision (SnapshotAlreadyExistsFault at snapshot-name-free), however the
// two interleave, and its node is left as it was. Several rounds, to meet the interleaving in
// which both pass the name check before either has created its partial directory.
TEST_F(EngineTest, ConcurrentSnapshotsOfOneName) {
  RedisServer a;
  RedisServer b;
  a.Start();
  b.Start();
  Fill(a, 41, 200);
  Fill(b, 42, 200);
  const NodeState before_a = ReadState(a);
  const NodeState before_b = ReadState(b);
  const std::string text =
      "[storage]\npath = \"" + storage_.string() +
      "\"\n[cache_clusters.a]\nendpoint = \"127.0.0.1:" + std::to_string(a.port()) +
      "\"\ntransfer_timeout_ms = 20000\n[cache_clusters.b]\nendpoint = "
      "\"127.0.0.1:" +
      std::to_string(b.port()) + "\"\ntransfer_timeout_ms = 20000\n";
  auto parsed = ParseFleet(text, dir_ / "finalsnap.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  const Fleet& fleet = *parsed;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "race-" + std::to_string(round);
    std::mutex mu;
    std::condition_variable cv;
    int ready = 0;
    OperationResult ra, rb;
    auto run = [&](const char* id, OperationResult* out) {
      {
        std::unique_lock<std::mutex> lock(mu);
        ++ready;
        cv.notify_all();
        cv.wait(lock, [&] { return ready == 2; });
      }
      *out = CreateSnapshot(fleet, id, name);
    };
    std::thread ta(run, "a", &ra);
    std::thread tb(run, "b", &rb);
    ta.join();
    tb.join();
    ASSERT_NE(ra.ok, rb.ok) << "exactly one must win\n" << Describe(ra) << Describe(rb);
    const OperationResult& lost = ra.ok ? rb : ra;
    ExpectRefused(lost, "SnapshotAlreadyExistsFault", "snapshot-name-free");
    ExpectNodeUntouched(a, before_a);
    ExpectNodeUntouched(b, before_b);
    auto opened = SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    const std::optional<Snapshot> snap = opened->Describe(name);
    ASSERT_TRUE(snap.has_value());
    EXPECT_EQ(snap->cache_cluster_id, ra.ok ? "a" : "b");
    EXPECT_EQ(snap->node_snapshots.at(0).keyspace, ra.ok ? before_a.keyspace : before_b.keyspace);
  }
  EXPECT_EQ(StorageEntries().size(), 8u);
}

// --- Refusals: the node stays as it was ----------------------------------------------------

class EngineRefusalTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    server_ = std::make_unique<RedisServer>(ServerConfig(Capture::kSyncDiskless));
    server_->Start();
    Fill(*server_, 21, 1000);
    before_ = ReadState(*server_);
  }

  FleetSpec Spec() const {
    FleetSpec spec;
    spec.port = server_->port();
    return spec;
  }

  std::unique_ptr<RedisServer> server_;
  NodeState before_;
};

TEST_F(EngineRefusalTest, SnapshotNameTaken) {
  const Fleet fleet = MakeFleet(Spec());
  const OperationResult first = CreateSnapshot(fleet, kClusterId, "taken");
  ASSERT_TRUE(first.ok) << Describe(first);
  ExpectNodeUntouched(*server_, before_);

  // Ids are case-insensitive, as in ElastiCache.
  for (const std::string name : {"taken", "TAKEN"}) {
    SCOPED_TRACE(name);
    const OperationResult r = DeleteCacheCluster(fleet, kClusterId, name);
    ExpectRefused(r, "SnapshotAlreadyExistsFault", "snapshot-name-free");
    ExpectNodeUntouched(*server_, before_);
    const OperationResult r2 = CreateSnapshot(fleet, kClusterId, name);
    ExpectRefused(r2, "SnapshotAlreadyExistsFault", "snapshot-name-free");
    ExpectNodeUntouched(*server_, before_);
  }
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{"taken"});
  auto opened = SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  std::string evidence;
  Status s = Readback(*opened, "taken", &evidence);
  EXPECT_TRUE(s.ok()) << "the existing snapshot was damaged: " << s.message();
}

TEST_F(EngineRefusalTest, BadSnapshotName) {
  const Fleet fleet = MakeFleet(Spec());
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("bad_name!"));
  ExpectRefused(r, "InvalidParameterValue", "snapshot-name-free");
  ExpectNodeUntouched(*server_, before_);
  const OperationResult r2 = CreateSnapshot(fleet, kClusterId, "bad_name!");
  ExpectRefused(r2, "InvalidParameterValue", "snapshot-name-free");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

TEST_F(EngineRefusalTest, StorageNotWritable) {
  // The storage path lies under a regular file: it can be neither created nor written.
  const fs::path blocker = dir_ / "blocker";
  std::ofstream(blocker) << "a file, not a directory\n";
  FleetSpec spec = Spec();
  spec.storage = blocker / "snapshots";
  const Fleet fleet = MakeFleet(spec);
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("snap-s"));
  ExpectRefused(r, "", "storage-ready");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_TRUE(fs::is_regular_file(blocker));
  EXPECT_FALSE(fs::exists(storage_));
}

TEST_F(EngineRefusalTest, WrongPassword) {
  // The node wants a password for an ACL user; the fleet gives the wrong one.
  Reply acl = server_->Command("ACL", "SETUSER", "snap", "on", ">right", "~*", "&*", "+@all");
  ASSERT_TRUE(acl.ok()) << acl.ToString();
  before_ = ReadState(*server_);
  ASSERT_EQ(::setenv("FINALSNAP_ENGINE_TEST_WRONG_PW", "wrong", 1), 0);
  FleetSpec spec = Spec();
  spec.cluster_extra = "username = \"snap\"\npassword_env = \"FINALSNAP_ENGINE_TEST_WRONG_PW\"\n";
  const Fleet fleet = MakeFleet(spec);
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("snap-pw"));
  ExpectRefused(r, "", "target-resolved");
  ExpectNodeUntouched(*server_, before_);
  const OperationResult r2 = DeleteCacheCluster(fleet, kClusterId, std::nullopt);
  ExpectRefused(r2, "", "target-resolved");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});

  // The variable unset: refused before connecting, naming the fleet file's key (not the
  // variable's name, which could be a secret pasted into the wrong place).
  ASSERT_EQ(::unsetenv("FINALSNAP_ENGINE_TEST_WRONG_PW"), 0);
  const OperationResult r3 = DeleteCacheCluster(fleet, kClusterId, std::string("snap-pw"));
  ExpectRefused(r3, "", "target-resolved");
  EXPECT_NE(r3.message.find("cache_clusters." + std::string(kClusterId) + ".password_env"),
            std::string::npos)
      << Describe(r3);
  EXPECT_NE(r3.message.find("not set"), std::string::npos) << Describe(r3);
  EXPECT_EQ(r3.message.find("FINALSNAP_ENGINE_TEST_WRONG_PW"), std::string::npos) << Describe(r3);
  ExpectNodeUntouched(*server_, before_);
}

TEST_F(EngineRefusalTest, UnknownCacheCluster) {
  const Fleet fleet = MakeFleet(Spec());
  const OperationResult r = DeleteCacheCluster(fleet, "no-such-cluster", std::string("snap-u"));
  ExpectRefused(r, "CacheClusterNotFound", "");
  const OperationResult r2 = CreateSnapshot(fleet, "no-such-cluster", "snap-u");
  ExpectRefused(r2, "CacheClusterNotFound", "");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

// command_timeout_ms below the time the node takes to answer: DEBUG SLEEP on another
// connection keeps it busy while the operation starts.
TEST_F(EngineRefusalTest, CommandTimeoutOnSlowNode) {
  FleetSpec spec = Spec();
  spec.cluster_extra = "command_timeout_ms = 300\n";
  const Fleet fleet = MakeFleet(spec);
  for (bool destroy : {true, false}) {
    SCOPED_TRACE(destroy ? "delete-cache-cluster" : "create-snapshot");
    RedisContextPtr sleeper_conn = server_->Connect(milliseconds(10'000));
    std::thread sleeper([&] { Execute(sleeper_conn.get(), {"DEBUG", "SLEEP", "2"}); });
    ASSERT_TRUE(WaitUntilBusy(*server_, milliseconds(5'000)));
    const auto start = Clock::now();
    const OperationResult r = destroy ? DeleteCacheCluster(fleet, kClusterId, std::string("slow"))
                                      : CreateSnapshot(fleet, kClusterId, "slow");
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    sleeper.join();
    ExpectRefused(r, "", "target-resolved");
    EXPECT_LT(seconds, 1.9) << "the operation waited for the node instead of timing out";
    ExpectNodeUntouched(*server_, before_);
    EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
  }
}

// --- The node killed while the RDB streams -------------------------------------------------

class EngineKillTest : public EngineTest, public ::testing::WithParamInterface<Capture> {};

// SIGKILL from the progress callback once 1 MiB has arrived, with ~32 MB still to come: far more
// than the socket buffers hold, so the transfer cannot finish.
TEST_P(EngineKillTest, NodeKilledMidTransfer) {
  RedisServer server(ServerConfig(GetParam()));
  server.Start();
  Fill(server, 31, 0, 32u << 20);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);
  bool killed = false;
  uint64_t killed_at = 0;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind == OperationEvent::Kind::kProgress && !killed && e.progress.bytes >= (1u << 20)) {
      server.Kill(SIGKILL);
      killed = true;
      killed_at = e.progress.bytes;
    }
  };
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("killed"), options);
  ASSERT_TRUE(killed) << "no progress report reached 1 MiB\n" << Describe(r);
  RecordProperty("killed_at_bytes", std::to_string(killed_at));
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_TRUE(kCaptureGates.count(r.failed_gate)) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  ASSERT_FALSE(r.gates.empty());
  EXPECT_EQ(r.gates.back().gate, r.failed_gate) << Describe(r);
  EXPECT_TRUE(InDesignOrder(GateNames(r))) << Describe(r);
  EXPECT_TRUE(server.WaitForExit(milliseconds(5'000)).has_value());
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(EngineFraming, EngineKillTest,
                         ::testing::Values(Capture::kSyncDiskless, Capture::kSyncDisk),
                         [](const ::testing::TestParamInfo<Capture>& info) {
                           return CaptureName(info.param);
                         });

// --- Faults injected by the proxy on the replication connection ----------------------------

// The proxy's connection numbers: the engine's command connection, then its replication one.
constexpr int kCommandConnection = 0;
constexpr int kReplicationConnection = 1;
constexpr size_t kBigValue = 2u << 20;       // the "big" value; the payload is a little larger
constexpr uint64_t kFaultOffset = 1u << 20;  // inside "big", whatever the framing

class EngineProxyTest : public EngineTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    server_ = std::make_unique<RedisServer>(ServerConfig(Capture::kSyncDiskless));
    server_->Start();
    FillBigValue(*server_, kBigValue);
    before_ = ReadState(*server_);
    proxy_ = std::make_unique<TcpProxy>(server_->host(), server_->port());
  }
  void TearDown() override {
    proxy_.reset();
    server_.reset();
    EngineTest::TearDown();
  }

  bool destroy() const { return GetParam(); }

  OperationResult Run(const std::string& cluster_extra, const std::string& name,
                      int transfer_timeout_ms = FleetSpec().transfer_timeout_ms) {
    FleetSpec spec;
    spec.port = proxy_->port();
    spec.cluster_extra = cluster_extra;
    spec.transfer_timeout_ms = transfer_timeout_ms;
    const Fleet fleet = MakeFleet(spec);
    return destroy() ? DeleteCacheCluster(fleet, kClusterId, name)
                     : CreateSnapshot(fleet, kClusterId, name);
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<TcpProxy> proxy_;
  NodeState before_;
};

TEST_P(EngineProxyTest, TransparentProxySucceeds) {
  // nodes-shutdown waits for the endpoint to refuse connections: the proxy mirrors that.
  proxy_->set_mirror_refusal(true);
  const OperationResult r = Run("", "via-proxy");
  std::vector<std::string> gates = kSnapshotGates;
  if (destroy()) gates.push_back("nodes-shutdown");
  ExpectAllPassed(r, gates);
  EXPECT_GE(proxy_->connections(), 2);
  EXPECT_GT(proxy_->server_to_client_bytes(kReplicationConnection), kBigValue);
  if (destroy()) {
    ExpectNodeGone(*server_);
  } else {
    ExpectNodeUntouched(*server_, before_);
  }
  VerifySnapshot("via-proxy", "zstd", before_);
}

TEST_P(EngineProxyTest, ReplicationConnectionCut) {
  proxy_->CutAt(kFaultOffset, kReplicationConnection);
  const OperationResult r = Run("", "cut");
  EXPECT_EQ(proxy_->cuts(), 1);
  ExpectRefused(r, "", "rdb-complete");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

TEST_P(EngineProxyTest, PayloadByteFlipped) {
  proxy_->FlipByteAt(kFaultOffset, kReplicationConnection);
  const OperationResult r = Run("", "flipped");
  EXPECT_EQ(proxy_->flips(), 1);
  // The flipped byte is inside a raw string value, so only the checksum can catch it.
  ExpectRefused(r, "", "rdb-checksum");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

TEST_P(EngineProxyTest, StreamStalledPastTransferTimeout) {
  proxy_->StallAt(kFaultOffset, kReplicationConnection);
  const auto start = Clock::now();
  const OperationResult r = Run("", "stalled", /*transfer_timeout_ms=*/1500);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  RecordProperty("seconds", std::to_string(seconds));
  EXPECT_EQ(proxy_->stalls(), 1);
  ExpectRefused(r, "", "rdb-complete");
  EXPECT_LT(seconds, 10.0) << "transfer_timeout_ms was not enforced";
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

// The proxy holds the stream, the node is SIGKILLed, then the proxy lets the rest (and the
// close) through. A 32 MB value more makes the RDB far larger than what the socket buffers
// between the node and the proxy hold, so the node cannot have sent it all before it died.
TEST_P(EngineProxyTest, NodeKilledWhileStreamHeld) {
  SetRandomValue(*server_, "huge", 32u << 20);
  proxy_->StallAt(kFaultOffset, kReplicationConnection);
  // Once the node is dead its address refuses connections, as a dead node's would: the engine
  // then knows there is nothing to put back, and keeps no journal.
  proxy_->set_mirror_refusal(true);
  FleetSpec spec;
  spec.port = proxy_->port();
  const Fleet fleet = MakeFleet(spec);
  std::thread killer([&] {
    if (!proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, milliseconds(20'000))) return;
    server_->Kill(SIGKILL);
    server_->WaitForExit(milliseconds(5'000));
    proxy_->Resume();
  });
  const OperationResult r = destroy() ? DeleteCacheCluster(fleet, kClusterId, std::string("killed"))
                                      : CreateSnapshot(fleet, kClusterId, "killed");
  killer.join();
  EXPECT_EQ(proxy_->stalls(), 1);
  EXPECT_FALSE(server_->Running());
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_TRUE(kCaptureGates.count(r.failed_gate)) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{}) << Describe(r);
}

// The command connection (AUTH, CLIENT PAUSE, CONFIG, SHUTDOWN) is cut while the RDB streams on
// the replication connection. The node itself is fine, so the engine can reconnect. The outcome
// must be all or nothing: success (create: node as before, config put back; delete: node gone)
// with a good snapshot, or a refusal with the node running as before and unpaused.
TEST_P(EngineProxyTest, CommandConnectionLostMidTransfer) {
  proxy_->set_mirror_refusal(true);
  FleetSpec spec;
  spec.port = proxy_->port();
  const Fleet fleet = MakeFleet(spec);
  bool cut = false;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind != OperationEvent::Kind::kProgress) return;
    if (!cut) proxy_->CutNow(kCommandConnection);
    cut = true;
  };
  const OperationResult r =
      destroy() ? DeleteCacheCluster(fleet, kClusterId, std::string("lost"), options)
                : CreateSnapshot(fleet, kClusterId, "lost", options);
  ASSERT_TRUE(cut) << "no progress was reported\n" << Describe(r);
  RecordProperty("outcome", r.ok ? "ok" : "refused at " + r.failed_gate);
  SCOPED_TRACE(Describe(r));
  if (r.ok) {
    if (destroy()) {
      ExpectNodeGone(*server_);
    } else {
      ExpectNodeUntouched(*server_, before_);
    }
    VerifySnapshot("lost", "zstd", before_);
    return;
  }
  EXPECT_FALSE(r.failed_gate.empty());
  ExpectNodeUntouched(*server_, before_);
  // A refusal at nodes-shutdown comes after the snapshot was committed; any other leaves none.
  if (r.failed_gate != "nodes-shutdown") {
    EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
  }
}

// command_timeout_ms = 300, and the node falls asleep (DEBUG SLEEP 3) after it has sent the
// whole RDB but before the engine has seen the end of it: the proxy holds the stream back (while
// reading all of it from the server) until the server has closed the replication connection and
// is busy. The engine then meets a sleeping node at every command after the capture: CONFIG SET
// putting the config back, CLIENT PAUSE renewals, SHUTDOWN. Whatever it does, the outcome must
// be all or nothing: either success (create: node as before, config included; delete: node
// gone) with a good snapshot, or a refusal with the node running as before, unpaused, and no
// snapshot stored.
TEST_P(EngineProxyTest, NodeSlowAfterTransfer) {
  proxy_->HoldAt(kFaultOffset, kReplicationConnection);
  proxy_->set_mirror_refusal(true);
  RedisContextPtr sleeper_conn = server_->Connect(milliseconds(10'000));
  std::atomic<bool> slept{false};
  std::thread sleeper([&] {
    if (!proxy_->WaitFor(
            [&] { return proxy_->stalled() > 0 && proxy_->server_closed(kReplicationConnection); },
            milliseconds(20'000))) {
      proxy_->Resume();
      return;
    }
    std::thread sleep([&] { Execute(sleeper_conn.get(), {"DEBUG", "SLEEP", "3"}); });
    slept = WaitUntilBusy(*server_, milliseconds(5'000));
    proxy_->Resume();
    sleep.join();
  });
  const OperationResult r = Run("command_timeout_ms = 300\n", "slow");
  sleeper.join();
  ASSERT_TRUE(slept) << "the node never became busy\n" << Describe(r);
  RecordProperty("outcome", r.ok ? "ok" : "refused at " + r.failed_gate);
  SCOPED_TRACE(Describe(r));
  if (r.ok) {
    if (destroy()) {
      ExpectNodeGone(*server_);
    } else {
      ExpectNodeUntouched(*server_, before_);
    }
    VerifySnapshot("slow", "zstd", before_);
    return;
  }
  EXPECT_FALSE(r.failed_gate.empty()) << Describe(r);
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{}) << Describe(r);
}

INSTANTIATE_TEST_SUITE_P(EngineOperation, EngineProxyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Delete") : std::string("Create");
                         });

// --- The proxy itself ----------------------------------------------------------------------

TEST(EngineTcpProxyTest, ForwardsAndInjects) {
  RedisServer server;
  server.Start();
  TcpProxy proxy(server.host(), server.port());
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_TRUE(Execute(c.get(), {"SET", "k", "hello"}).ok());
    EXPECT_EQ(Execute(c.get(), {"GET", "k"}).str, "hello");
  }
  // Connection 1: "$5\r\nhello\r\n" with its 'h' (offset 4) flipped to 'H' (0x20).
  proxy.FlipByteAt(4, 1, 0x20);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_EQ(Execute(c.get(), {"GET", "k"}).str, "Hello");
    EXPECT_EQ(proxy.flips(), 1);
  }
  // Connection 2 stalls after 2 bytes, and goes on after Resume().
  proxy.StallAt(2, 2);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(5000));
    std::string got;
    std::thread t([&] { got = Execute(c.get(), {"GET", "k"}).str; });
    EXPECT_TRUE(proxy.WaitFor([&] { return proxy.stalled() == 1; }, milliseconds(5000)));
    EXPECT_EQ(proxy.server_to_client_bytes(2), 2u);
    proxy.Resume();
    t.join();
    EXPECT_EQ(got, "hello");
  }
  // Connection 3 is cut after 3 bytes: the client sees the connection close.
  proxy.CutAt(3, 3);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_THROW(Execute(c.get(), {"GET", "k"}), std::runtime_error);
    EXPECT_EQ(proxy.cuts(), 1);
    EXPECT_EQ(proxy.server_to_client_bytes(3), 3u);
  }
  // Connection 4 is held after 2 bytes: the proxy reads the whole reply and the server's close
  // (QUIT), and forwards them only after Resume().
  proxy.HoldAt(2, 4);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(5000));
    std::string got;
    std::thread t([&] {
      // Pipelined, so that the server has answered both and closed before anything is forwarded.
      redisAppendCommand(c.get(), "GET k");
      redisAppendCommand(c.get(), "QUIT");
      void* reply = nullptr;
      if (redisGetReply(c.get(), &reply) == REDIS_OK && reply != nullptr) {
        got = static_cast<redisReply*>(reply)->str;
        freeReplyObject(reply);
      }
    });
    EXPECT_TRUE(proxy.WaitFor([&] { return proxy.stalled() == 1 && proxy.server_closed(4); },
                              milliseconds(5000)));
    EXPECT_EQ(proxy.server_to_client_bytes(4), 2u);
    EXPECT_EQ(proxy.holds(), 1);
    proxy.Resume();
    t.join();
    EXPECT_EQ(got, "hello");
  }
  EXPECT_EQ(proxy.connections(), 5);
  EXPECT_GT(proxy.client_to_server_bytes(), 0u);
  proxy.Kill();
  EXPECT_THROW(ConnectTo("127.0.0.1", proxy.port(), milliseconds(1000)), std::runtime_error);
}

}  // namespace
}  // namespace finalsnap::testing
