// The engine integration tests' shared parts (engine_test.cc, engine_fault_test.cc): the gates
// in DESIGN.md's order, assertions on an operation's result and on a node left as it was, data
// fillers, and EngineTest, the fixture that makes a fleet file and a storage directory per test.
#ifndef FINALSNAP_TESTS_INTEGRATION_ENGINE_FIXTURE_H_
#define FINALSNAP_TESTS_INTEGRATION_ENGINE_FIXTURE_H_

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

#include "finalsnap/engine.h"
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

namespace finalsnap::testing::engine_fixture {

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
inline std::string Describe(const OperationResult& r) {
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

inline std::vector<std::string> GateNames(const OperationResult& r) {
  std::vector<std::string> names;
  for (const GateVerdict& g : r.gates) names.push_back(g.gate);
  return names;
}

// True when `names` appear in DESIGN.md's order, each at most once.
inline bool InDesignOrder(const std::vector<std::string>& names) {
  size_t at = 0;
  for (const std::string& n : names) {
    while (at < kDesignOrder.size() && kDesignOrder[at] != n) ++at;
    if (at == kDesignOrder.size()) return false;
    ++at;
  }
  return true;
}

inline void ExpectAllPassed(const OperationResult& r, const std::vector<std::string>& gates) {
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
inline void ExpectRefused(const OperationResult& r, const std::string& fault,
                          const std::string& gate) {
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

inline std::string ReadFile(const fs::path& path) {
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

inline NodeState ReadState(RedisServer& server) {
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
inline std::string ConfigDiff(const std::map<std::string, std::string>& before,
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
inline void ExpectWritableWithinOneSecond(RedisServer& server) {
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
inline void ExpectNodeUntouched(RedisServer& server, const NodeState& before) {
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
inline DatasetStats Fill(RedisServer& server, uint64_t seed, uint64_t keys, uint64_t bytes = 0) {
  RedisContextPtr c = server.Connect(milliseconds(60'000));
  DatasetOptions options;
  options.seed = seed;
  options.key_count = keys;
  options.target_bytes = bytes;
  return FillMixed(c.get(), options);
}

// A few small keys and one `size`-byte incompressible string "big": a dataset in which a fixed
// stream offset past the first few KB lands inside that one value.
inline void FillBigValue(RedisServer& server, size_t size) {
  SetRandomValue(server, "big", size);
  Reply r;
  for (int i = 0; i < 20; ++i) {
    r = server.Command("SET", "small:" + std::to_string(i), std::to_string(i));
    if (!r.ok()) throw std::runtime_error("SET small: " + r.ToString());
  }
}

// The node is gone: its process exited and its port refuses connections.
inline void ExpectNodeGone(RedisServer& server) {
  EXPECT_TRUE(server.WaitForExit(milliseconds(10'000)).has_value())
      << "the node still runs after the operation\n"
      << server.LogTail();
  EXPECT_THROW(ConnectTo(server.host(), server.port(), milliseconds(1000)), std::runtime_error)
      << "the node's port still accepts connections";
}

// Waits until `server` is busy (a PING on a new connection gets no answer within 100 ms).
inline bool WaitUntilBusy(RedisServer& server, milliseconds deadline) {
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

enum class Capture { kSyncDiskless, kSyncDisk, kBgsaveFile };

inline std::string CaptureName(Capture c) {
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

inline void PrintTo(Capture c, std::ostream* os) { *os << CaptureName(c); }

// The source server's directives for a capture: the framing follows repl-diskless-sync. Debian's
// diskless delay (5 s) and LZF on, so that the tests see the engine change and restore them.
inline std::vector<std::pair<std::string, std::string>> ServerConfig(Capture c) {
  return {{"repl-diskless-sync", c == Capture::kSyncDisk ? "no" : "yes"},
          {"repl-diskless-sync-delay", "5"},
          {"rdbcompression", "yes"}};
}

inline std::string FleetCapture(Capture c) {
  return c == Capture::kBgsaveFile ? "bgsave-file" : "sync";
}

}  // namespace finalsnap::testing::engine_fixture

#endif  // FINALSNAP_TESTS_INTEGRATION_ENGINE_FIXTURE_H_
