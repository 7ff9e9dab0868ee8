// Integration tests of replication groups (engine.h: DeleteReplicationGroup,
// CreateReplicationGroupSnapshot, DescribeReplicationGroups, and DeleteCacheCluster on a member)
// against real topologies: a primary with two replicas, a 3-shard Redis Cluster with one replica
// per shard, and Debian's redis-sentinel watching a group (tests/support/redis_topology.h).
//
// Success paths check the snapshot for real: each shard's file decompresses with the zstd tool to
// an RDB that redis-check-rdb accepts, and RestoreSnapshot's <dir>/<NodeGroupId>/dump.rdb loads
// into a fresh redis-server with the DEBUG DIGEST the shard's primary had. Under writers on every
// shard, every acknowledged write is found in the restored shard, key by key.
//
// Refusals check that nothing was shut down: every node still runs, primaries take writes within
// a second (the pause was lifted), and their config is as before.
//
// A missing redis-server, redis-sentinel, redis-check-rdb or zstd fails these tests; it never
// skips them.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "support/dataset.h"
#include "support/operation_checks.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/storage_entries.h"
#include "support/temp_dir.h"
#include "support/writer.h"

namespace finalsnap::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kGroupId[] = "myReplGroup";

std::string Address(const RedisServer& s) { return "\"127.0.0.1:" + std::to_string(s.port()) + "\""; }

void ExpectGone(RedisServer& s) {
  EXPECT_TRUE(s.WaitForExit(milliseconds(10'000)).has_value())
      << "port " << s.port() << " still runs\n"
      << s.LogTail();
}

void ExpectGatesPassed(const OperationResult& r) {
  ASSERT_TRUE(r.ok) << Describe(r);
  for (const GateVerdict& g : r.gates) EXPECT_TRUE(g.passed) << g.gate << ": " << g.evidence;
}

std::vector<std::string> GateNames(const OperationResult& r, const std::string& phase) {
  std::vector<std::string> names;
  for (const GateVerdict& g : r.gates) {
    if (g.phase == phase) names.push_back(g.gate + "@" + g.node);
  }
  return names;
}

class GroupTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    storage_ = dir_.path() / "snapshots";
  }

  // A fleet with one replication group; `extra` lines go into its table.
  Fleet MakeFleet(const std::vector<RedisServer*>& endpoints, const std::string& extra = "",
                  const std::string& compression = "zstd") {
    std::string list;
    for (RedisServer* s : endpoints) list += (list.empty() ? "" : ", ") + Address(*s);
    const std::string text = "[storage]\npath = \"" + storage_.string() + "\"\ncompression = \"" +
                             compression + "\"\n[replication_groups." + kGroupId +
                             "]\nendpoints = [" + list + "]\ntransfer_timeout_ms = 60000\n" +
                             extra;
    auto parsed = ParseFleet(text, dir_.path() / "finalsnap.toml");
    if (!parsed.ok()) throw std::runtime_error(parsed.error().ToString());
    return *parsed;
  }

  SnapshotStore Store() {
    Expected<SnapshotStore> opened =
        SnapshotStore::Open(storage_, SnapshotStore::Access::kReadOnly);
    if (!opened.ok()) throw std::runtime_error(opened.error().message());
    return *std::move(opened);
  }

  // The committed snapshots and anything else left in the storage (support/storage_entries.h).
  std::vector<std::string> StorageEntries() { return testing::StorageEntries(storage_); }

  // Restores snapshot `name` and starts one fresh redis-server per shard on its dump.rdb,
  // after checking each stored file with the real zstd and redis-check-rdb tools.
  std::vector<std::unique_ptr<RedisServer>> RestoreShards(const std::string& name) {
    SnapshotStore store = Store();
    const std::optional<Snapshot> snap = store.Describe(name);
    EXPECT_TRUE(snap.has_value());
    std::vector<std::unique_ptr<RedisServer>> servers;
    if (!snap) return servers;
    EXPECT_EQ(snap->snapshot_status, "available");
    const fs::path target = dir_.path() / ("restore-" + name);
    const RestoreResult restored = RestoreSnapshot(store, name, target);
    EXPECT_TRUE(restored.status.ok()) << restored.status.message();
    EXPECT_EQ(restored.files.size(), snap->node_snapshots.size());
    for (const NodeSnapshot& node : snap->node_snapshots) {
      const fs::path stored = *store.SnapshotDir(name) / node.file;
      const fs::path plain = dir_.path() / (name + "-" + node.node_group_id + ".rdb");
      ProcessResult z = RunCommand({"zstd", "-d", "-q", "-f", "-o", plain.string(), stored});
      EXPECT_EQ(z.exit_code, 0) << z.Describe();
      ProcessResult check = RunCommand({"redis-check-rdb", plain.string()});
      EXPECT_EQ(check.exit_code, 0) << check.Describe();
      const fs::path dir = snap->node_snapshots.size() == 1 ? target : target / node.node_group_id;
      EXPECT_EQ(fs::file_size(dir / "dump.rdb"), fs::file_size(plain));
      auto server = std::make_unique<RedisServer>(
          std::vector<std::pair<std::string, std::string>>{{"dir", dir.string()},
                                                           {"dbfilename", "dump.rdb"}});
      server->Start();
      servers.push_back(std::move(server));
    }
    return servers;
  }

  TempDir dir_;
  fs::path storage_;
};

// --- A primary with two replicas ---------------------------------------------------------------

class GroupTest : public GroupTestBase {
 protected:
  void SetUp() override {
    GroupTestBase::SetUp();
    group_ = std::make_unique<ReplicationGroupFixture>(ReplicationGroupOptions{.replicas = 2});
    group_->Start();
    // Debian's diskless delay and LZF on, once the replicas are in sync (the delay would hold
    // their first sync too), so that the tests see the engine change and restore them.
    for (RedisServer* n : group_->nodes()) {
      n->Command("CONFIG", "SET", "repl-diskless-sync-delay", "5");
      n->Command("CONFIG", "SET", "rdbcompression", "yes");
    }
    RedisContextPtr c = group_->primary().Connect();
    DatasetOptions fill;
    fill.seed = 41;
    fill.key_count = 2000;
    FillMixed(c.get(), fill);
    group_->WaitForReplicasCaughtUp();
  }
  std::vector<RedisServer*> Nodes() { return group_->nodes(); }

  std::unique_ptr<ReplicationGroupFixture> group_;
};

TEST_F(GroupTest, DescribeFindsTheGroupFromAReplica) {
  const Fleet fleet = MakeFleet({&group_->replica(1)});
  const std::vector<ReplicationGroupInfo> groups = DescribeReplicationGroups(fleet, "MYREPLGROUP");
  ASSERT_EQ(groups.size(), 1u);
  const ReplicationGroupInfo& g = groups[0];
  EXPECT_EQ(g.status, "available") << g.error.value_or("");
  EXPECT_FALSE(g.cluster_enabled);
  ASSERT_EQ(g.node_groups.size(), 1u);
  EXPECT_EQ(g.node_groups[0].node_group_id, "0001");
  ASSERT_EQ(g.node_groups[0].members.size(), 3u);
  EXPECT_EQ(g.MemberClusters(),
            (std::vector<std::string>{"myReplGroup-001", "myReplGroup-002", "myReplGroup-003"}));
  int primaries = 0;
  for (const GroupMember& m : g.node_groups[0].members) {
    if (m.current_role == "primary") {
      ++primaries;
      EXPECT_EQ(m.endpoint, "127.0.0.1:" + std::to_string(group_->primary().port()));
    } else {
      EXPECT_EQ(m.link, "up");
    }
  }
  EXPECT_EQ(primaries, 1);
  // Members are cache clusters too.
  const auto clusters = DescribeCacheClusters(fleet, "myreplgroup-002");
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].replication_group_id, "myReplGroup");
}

TEST_F(GroupTest, DeleteWithFinalSnapshotShutsReplicasThenPrimary) {
  const NodeState primary = NodeStateOf(group_->primary());
  const Fleet fleet = MakeFleet({&group_->primary()});
  const OperationResult r =
      DeleteReplicationGroup(fleet, kGroupId, std::string("bkup-20150515-final"), false);
  ExpectGatesPassed(r);
  ASSERT_TRUE(r.group.has_value());
  EXPECT_EQ(r.group->status, "deleted");
  // Replicas first, then the primary: the last shutdown is the primary's.
  const std::vector<std::string> shutdowns = GateNames(r, "destroy");
  ASSERT_EQ(shutdowns.size(), 4u) << Describe(r);  // the topology recheck and three shutdowns
  EXPECT_EQ(shutdowns.back(),
            "nodes-shutdown@127.0.0.1:" + std::to_string(group_->primary().port()));
  for (RedisServer* n : Nodes()) ExpectGone(*n);
  ASSERT_TRUE(r.snapshot.has_value());
  EXPECT_EQ(r.snapshot->replication_group_id, "myReplGroup");
  EXPECT_EQ(r.snapshot->final_snapshot_of, "delete-replication-group");
  auto restored = RestoreShards("bkup-20150515-final");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0]->Command("DEBUG", "DIGEST").str, primary.digest);
}

TEST_F(GroupTest, RetainPrimaryClusterShutsDownOnlyTheReplicas) {
  const NodeState primary = NodeStateOf(group_->primary());
  const Fleet fleet = MakeFleet({&group_->primary()});
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("keep-1"), true);
  ExpectGatesPassed(r);
  EXPECT_EQ(r.group->status, "available");
  ExpectGone(group_->replica(0));
  ExpectGone(group_->replica(1));
  ExpectRunning(group_->primary());
  ExpectWritable(group_->primary());
  const NodeState after = NodeStateOf(group_->primary());
  EXPECT_EQ(after.config, primary.config) << "config left changed on the primary";
  auto restored = RestoreShards("keep-1");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0]->Command("DEBUG", "DIGEST").str, primary.digest);
}

TEST_F(GroupTest, SnapshotFromReplicaWaitsForItToCatchUp) {
  const Fleet fleet = MakeFleet({&group_->primary()});
  // Writes right before: the replica must have applied them before it is captured.
  for (int i = 0; i < 200; ++i) group_->primary().Command("SET", "late:" + std::to_string(i), i);
  const NodeState primary = NodeStateOf(group_->primary());
  OperationOptions options;
  options.snapshot_from_replica = true;
  const OperationResult r = CreateReplicationGroupSnapshot(fleet, "myreplgroup", "from-r", options);
  ExpectGatesPassed(r);
  ASSERT_TRUE(r.snapshot && r.snapshot->node_snapshots.size() == 1) << Describe(r);
  const std::string source = r.snapshot->node_snapshots[0].source_endpoint;
  EXPECT_NE(source, "127.0.0.1:" + std::to_string(group_->primary().port()))
      << "taken from the primary";
  for (RedisServer* n : Nodes()) ExpectRunning(*n);
  ExpectWritable(group_->primary());
  auto restored = RestoreShards("from-r");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0]->Command("DEBUG", "DIGEST").str, primary.digest);
}

TEST_F(GroupTest, DeleteCacheClusterOnMembers) {
  const Fleet fleet = MakeFleet({&group_->primary()});
  const auto groups = DescribeReplicationGroups(fleet, kGroupId);
  ASSERT_EQ(groups.size(), 1u);
  std::string primary_id;
  std::vector<std::string> replica_ids;
  for (const GroupMember& m : groups[0].node_groups.at(0).members) {
    (m.current_role == "primary" ? primary_id : replica_ids.emplace_back()) = m.cache_cluster_id;
  }
  ASSERT_EQ(replica_ids.size(), 2u);

  // The primary: refused, nothing shut down.
  OperationResult r = DeleteCacheCluster(fleet, primary_id, std::nullopt);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.fault, "InvalidCacheClusterState") << Describe(r);
  for (RedisServer* n : Nodes()) ExpectRunning(*n);

  // A replica that is not the last: removed alone, with a final snapshot of the group's data.
  r = DeleteCacheCluster(fleet, replica_ids[1], std::string("member-final"));
  ExpectGatesPassed(r);
  EXPECT_EQ(r.snapshot->final_snapshot_of, "delete-cache-cluster");
  int gone = 0;
  for (size_t i = 0; i < 2; ++i) gone += !group_->replica(i).Running() ||
                                         group_->replica(i).WaitForExit(milliseconds(2000)).has_value();
  EXPECT_EQ(gone, 1);
  ExpectRunning(group_->primary());
  ExpectWritable(group_->primary());

  // Now the last replica: refused.
  const auto after = DescribeReplicationGroups(fleet, kGroupId);
  std::string last;
  for (const GroupMember& m : after.at(0).node_groups.at(0).members) {
    if (m.current_role == "replica") last = m.cache_cluster_id;
  }
  ASSERT_FALSE(last.empty());
  r = DeleteCacheCluster(fleet, last, std::nullopt);
  EXPECT_EQ(r.fault, "InvalidCacheClusterState") << Describe(r);
  EXPECT_NE(r.message.find("last replica"), std::string::npos) << r.message;
  ExpectRunning(group_->primary());
  // An id the group does not have.
  r = DeleteCacheCluster(fleet, "myReplGroup-009", std::nullopt);
  EXPECT_EQ(r.fault, "CacheClusterNotFound") << Describe(r);
}

TEST_F(GroupTest, PreflightRefusesTwoPrimaries) {
  RedisServer other;
  other.Start();
  const Fleet fleet = MakeFleet({&group_->primary(), &other});
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("x"), false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  EXPECT_EQ(r.fault, "InvalidReplicationGroupStateFault");
  EXPECT_NE(r.message.find("two primaries"), std::string::npos) << r.message;
  for (RedisServer* n : Nodes()) ExpectRunning(*n);
  ExpectRunning(other);
  EXPECT_TRUE(StorageEntries().empty());
}

TEST_F(GroupTest, PreflightRefusesAReplicaWhoseLinkIsDown) {
  // The replica follows a primary that is not there: its link is down.
  RedisServer gone;
  gone.Start();
  const int dead_port = gone.port();
  gone.Stop();
  group_->replica(1).Command("REPLICAOF", "127.0.0.1", dead_port);
  const NodeState primary = NodeStateOf(group_->primary());
  const Fleet fleet = MakeFleet({&group_->primary(), &group_->replica(1)});
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("x"), false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  for (RedisServer* n : Nodes()) ExpectRunning(*n);
  EXPECT_EQ(NodeStateOf(group_->primary()).config, primary.config);
  EXPECT_TRUE(StorageEntries().empty());
}

TEST_F(GroupTest, ReplicaKilledDuringTheOperationShutsNothingDown) {
  const NodeState primary = NodeStateOf(group_->primary());
  const Fleet fleet = MakeFleet({&group_->primary()});
  OperationOptions options;
  std::atomic<bool> killed{false};
  RedisServer* victim = &group_->replica(0);
  options.observer = [&](const OperationEvent& e) {
    if (e.kind != OperationEvent::Kind::kProgress) return;
    if (!killed.exchange(true)) victim->Kill(SIGKILL);
  };
  const OperationResult r =
      DeleteReplicationGroup(fleet, kGroupId, std::string("during"), false, options);
  ASSERT_TRUE(killed) << "the capture reported no progress";
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  ExpectRunning(group_->primary());
  ExpectRunning(group_->replica(1));
  ExpectWritable(group_->primary());
  EXPECT_EQ(NodeStateOf(group_->primary()).config, primary.config);
}

TEST_F(GroupTest, WritersLoseNothing) {
  Writer writer(group_->primary(), "w:");
  ASSERT_TRUE(writer.WaitForAcks(200, milliseconds(10'000))) << writer.error();
  const Fleet fleet = MakeFleet({&group_->replica(0)});
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("w-final"), false);
  writer.Stop();
  ExpectGatesPassed(r);
  for (RedisServer* n : Nodes()) ExpectGone(*n);
  auto restored = RestoreShards("w-final");
  ASSERT_EQ(restored.size(), 1u);
  const WriteCheck check = CheckWrites(*restored[0], writer);
  EXPECT_TRUE(check.all_acked_present()) << check.Describe();
  EXPECT_GT(check.acked, 200u);
}

// --- Sentinel ----------------------------------------------------------------------------------

class SentinelGroupTest : public GroupTest {
 protected:
  void SetUp() override {
    GroupTest::SetUp();
    sentinels_ = std::make_unique<SentinelFixture>(*group_, SentinelOptions{.sentinels = 3});
    sentinels_->Start();
  }
  std::string SentinelLines() {
    std::string list;
    for (int p : sentinels_->ports()) {
      list += (list.empty() ? "" : ", ") + std::string("\"127.0.0.1:") + std::to_string(p) + "\"";
    }
    return "sentinels = [" + list + "]\nmaster_name = \"" + sentinels_->master_name() + "\"\n";
  }
  std::unique_ptr<SentinelFixture> sentinels_;
};

TEST_F(SentinelGroupTest, DeleteThroughSentinelsAndEverySentinelForgetsTheGroup) {
  const NodeState primary = NodeStateOf(group_->primary());
  // The fleet names a replica only: the sentinels say who the primary is.
  const Fleet fleet = MakeFleet({&group_->replica(0)}, SentinelLines());
  const auto described = DescribeReplicationGroups(fleet, kGroupId);
  ASSERT_EQ(described.size(), 1u);
  EXPECT_EQ(described[0].discovered_via, "sentinel");
  EXPECT_EQ(described[0].status, "available") << described[0].error.value_or("");

  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("s-final"), false);
  ExpectGatesPassed(r);
  for (RedisServer* n : Nodes()) ExpectGone(*n);
  for (size_t i = 0; i < sentinels_->size(); ++i) {
    const Reply masters = sentinels_->Command(i, "SENTINEL", "MASTERS");
    EXPECT_TRUE(masters.elements.empty())
        << "sentinel " << i << " still watches: " << masters.ToString();
  }
  auto restored = RestoreShards("s-final");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0]->Command("DEBUG", "DIGEST").str, primary.digest);
}

TEST_F(SentinelGroupTest, FailoverDuringTheOperationShutsNothingDown) {
  const Fleet fleet = MakeFleet({&group_->primary()}, SentinelLines());
  OperationOptions options;
  std::atomic<bool> asked{false};
  std::string failover_reply;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind != OperationEvent::Kind::kProgress || asked.exchange(true)) return;
    failover_reply = sentinels_->Command(0, "SENTINEL", "FAILOVER", sentinels_->master_name()).ToString();
    // Hold the operation until a replica has taken over, so the destroy meets the new roles.
    const auto until = Clock::now() + milliseconds(20'000);
    while (Clock::now() < until) {
      bool promoted = false;
      // On fresh connections: Sentinel kills the clients of the nodes it reconfigures.
      for (size_t i = 0; i < group_->replica_count(); ++i) {
        try {
          RedisContextPtr c = ConnectTo("127.0.0.1", group_->replica(i).port(), milliseconds(500));
          const Reply info = Execute(c.get(), {"INFO", "replication"});
          promoted = promoted || info.str.find("role:master") != std::string::npos;
        } catch (const std::runtime_error&) {
        }
      }
      if (promoted) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
  };
  const OperationResult r =
      DeleteReplicationGroup(fleet, kGroupId, std::string("f-final"), false, options);
  ASSERT_TRUE(asked) << "the capture reported no progress";
  EXPECT_FALSE(r.ok) << Describe(r) << "\nSENTINEL FAILOVER: " << failover_reply;
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  for (RedisServer* n : Nodes()) ExpectRunning(*n);
  // Sentinels still watch the group: nothing was removed from them.
  for (size_t i = 0; i < sentinels_->size(); ++i) {
    EXPECT_EQ(sentinels_->Command(i, "SENTINEL", "MASTERS").elements.size(), 1u);
  }
}

TEST_F(SentinelGroupTest, RefusesWhileASentinelSeesAReplicaDown) {
  group_->replica(1).Kill(SIGKILL);
  // Wait until the sentinels flag it (down-after is 3 s).
  const auto until = Clock::now() + milliseconds(30'000);
  bool flagged = false;
  while (!flagged && Clock::now() < until) {
    for (const Reply& r : sentinels_->Command(0, "SENTINEL", "REPLICAS", sentinels_->master_name()).elements) {
      flagged = flagged || ReplyField(r, "flags").find("s_down") != std::string::npos;
    }
    if (!flagged) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(flagged);
  const Fleet fleet = MakeFleet({&group_->primary()}, SentinelLines());
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("x"), false);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.failed_gate == "topology-consistent" || r.failed_gate == "target-resolved")
      << Describe(r);
  ExpectRunning(group_->primary());
  ExpectRunning(group_->replica(0));
}

// --- A 3-shard Redis Cluster -------------------------------------------------------------------

class ClusterGroupTest : public GroupTestBase {
 protected:
  void SetUp() override {
    GroupTestBase::SetUp();
    cluster_ = std::make_unique<ClusterFixture>(ClusterOptions{.shards = 3, .replicas_per_shard = 1});
    cluster_->Start();
    for (size_t s = 0; s < cluster_->shard_count(); ++s) {
      RedisContextPtr c = cluster_->primary(s).Connect();
      DatasetOptions fill;
      fill.seed = 50 + s;
      fill.key_count = 800;
      fill.databases = {0};
      fill.with_functions = false;
      fill.key_prefix = cluster_->hash_tag(s);
      FillMixed(c.get(), fill);
    }
    cluster_->WaitForReplicasCaughtUp();
  }
  std::unique_ptr<ClusterFixture> cluster_;
};

TEST_F(ClusterGroupTest, DescribeListsShardsInSlotOrder) {
  const Fleet fleet = MakeFleet({cluster_->replicas(2).at(0)});
  const auto groups = DescribeReplicationGroups(fleet, kGroupId);
  ASSERT_EQ(groups.size(), 1u);
  const ReplicationGroupInfo& g = groups[0];
  EXPECT_EQ(g.status, "available") << g.error.value_or("");
  EXPECT_TRUE(g.cluster_enabled);
  ASSERT_EQ(g.node_groups.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    const NodeGroupInfo& ng = g.node_groups[s];
    EXPECT_EQ(ng.node_group_id, "000" + std::to_string(s + 1));
    const SlotRange range = cluster_->slots(s);
    EXPECT_EQ(ng.slots, std::to_string(range.first) + "-" + std::to_string(range.last));
    ASSERT_EQ(ng.members.size(), 2u);
    EXPECT_EQ(ng.members[0].cache_cluster_id, "myReplGroup-" + ng.node_group_id + "-001");
    EXPECT_EQ(ng.members[1].cache_cluster_id, "myReplGroup-" + ng.node_group_id + "-002");
  }
}

TEST_F(ClusterGroupTest, DeleteWithWritersOnEveryShardLosesNothing) {
  std::vector<std::unique_ptr<Writer>> writers;
  for (size_t s = 0; s < cluster_->shard_count(); ++s) {
    writers.push_back(std::make_unique<Writer>(cluster_->primary(s), cluster_->hash_tag(s) + "w:"));
  }
  for (auto& w : writers) ASSERT_TRUE(w->WaitForAcks(100, milliseconds(10'000))) << w->error();
  const Fleet fleet = MakeFleet({&cluster_->primary(0)});
  const OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::string("c-final"), false);
  for (auto& w : writers) w->Stop();
  ExpectGatesPassed(r);
  // Every replica went before any primary.
  const std::vector<std::string> order = GateNames(r, "destroy");
  ASSERT_EQ(order.size(), 7u) << Describe(r);
  for (size_t i = 1; i <= 3; ++i) {
    bool replica = false;
    for (size_t s = 0; s < 3; ++s) {
      replica = replica || order[i] == "nodes-shutdown@127.0.0.1:" +
                                           std::to_string(cluster_->replicas(s).at(0)->port());
    }
    EXPECT_TRUE(replica) << order[i] << " shut down before a replica";
  }
  for (RedisServer* n : cluster_->nodes()) ExpectGone(*n);
  ASSERT_EQ(r.snapshot->node_snapshots.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    const NodeSnapshot& node = r.snapshot->node_snapshots[s];
    EXPECT_EQ(node.node_group_id, "000" + std::to_string(s + 1));
    ASSERT_EQ(node.slots.size(), 1u);
    EXPECT_EQ(node.slots[0].first, cluster_->slots(s).first);
    EXPECT_EQ(node.slots[0].second, cluster_->slots(s).last);
  }
  auto restored = RestoreShards("c-final");
  ASSERT_EQ(restored.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    const WriteCheck check = CheckWrites(*restored[s], *writers[s]);
    EXPECT_TRUE(check.all_acked_present()) << "shard " << s << ": " << check.Describe();
    EXPECT_GE(check.acked, 100u);
  }
}

TEST_F(ClusterGroupTest, CreateSnapshotCutsEveryShardAndKeepsThemRunning) {
  std::vector<NodeState> before;
  for (size_t s = 0; s < 3; ++s) before.push_back(NodeStateOf(cluster_->primary(s)));
  const Fleet fleet = MakeFleet({&cluster_->primary(1)});
  const OperationResult r = CreateReplicationGroupSnapshot(fleet, kGroupId, "c-snap");
  ExpectGatesPassed(r);
  // Every primary was paused before any capture began.
  double last_pause = 0, first_capture = 1e18;
  for (const GateVerdict& g : r.gates) {
    if (g.gate == "writes-paused") last_pause = std::max(last_pause, g.at_ms);
    if (g.phase == "capture") first_capture = std::min(first_capture, g.at_ms);
  }
  EXPECT_LE(last_pause, first_capture);
  for (RedisServer* n : cluster_->nodes()) ExpectRunning(*n);
  for (size_t s = 0; s < 3; ++s) {
    ExpectWritable(cluster_->primary(s));
    EXPECT_EQ(NodeStateOf(cluster_->primary(s)).config, before[s].config);
  }
  auto restored = RestoreShards("c-snap");
  ASSERT_EQ(restored.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(restored[s]->Command("DEBUG", "DIGEST").str, before[s].digest) << "shard " << s;
  }
}

TEST_F(ClusterGroupTest, RefusalsShutNothingDown) {
  const Fleet fleet = MakeFleet({&cluster_->primary(0)});
  // RetainPrimaryCluster needs a single shard.
  OperationResult r = DeleteReplicationGroup(fleet, kGroupId, std::nullopt, true);
  EXPECT_EQ(r.fault, "InvalidParameterCombination") << Describe(r);
  // A Cluster member cannot be deleted alone.
  r = DeleteCacheCluster(fleet, "myReplGroup-0002-002", std::nullopt);
  EXPECT_EQ(r.fault, "InvalidCacheClusterState") << Describe(r);
  // Slots not all served.
  const SlotRange range = cluster_->slots(2);
  ASSERT_TRUE(cluster_->primary(2)
                  .Command("CLUSTER", "DELSLOTSRANGE", range.last - 9, range.last)
                  .ok());
  r = DeleteReplicationGroup(fleet, kGroupId, std::string("x"), false);
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  for (RedisServer* n : cluster_->nodes()) ExpectRunning(*n);
  EXPECT_TRUE(StorageEntries().empty());
}

TEST_F(ClusterGroupTest, ReplicaKilledDuringTheOperationShutsNothingDown) {
  const Fleet fleet = MakeFleet({&cluster_->primary(0)});
  OperationOptions options;
  std::atomic<bool> killed{false};
  RedisServer* victim = cluster_->replicas(1).at(0);
  options.observer = [&](const OperationEvent& e) {
    if (e.kind != OperationEvent::Kind::kProgress) return;
    if (!killed.exchange(true)) victim->Kill(SIGKILL);
  };
  const OperationResult r =
      DeleteReplicationGroup(fleet, kGroupId, std::string("k-final"), false, options);
  ASSERT_TRUE(killed);
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_EQ(r.failed_gate, "topology-consistent") << Describe(r);
  for (RedisServer* n : cluster_->nodes()) {
    if (n != victim) ExpectRunning(*n);
  }
  for (size_t s = 0; s < 3; ++s) ExpectWritable(cluster_->primary(s));
}

}  // namespace
}  // namespace finalsnap::testing
