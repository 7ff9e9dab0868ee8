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
#include <gtest/gtest.h>

#include "engine_fixture.h"

namespace finalsnap::testing {
namespace {

// The fixture's helpers, as if defined here (fs, Clock and milliseconds too).
using namespace engine_fixture;  // NOLINT

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

}  // namespace
}  // namespace finalsnap::testing
