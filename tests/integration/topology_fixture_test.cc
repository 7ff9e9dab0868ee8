// Tests of the topology fixtures (support/redis_topology.h) and the writer (support/writer.h):
// that a ReplicationGroupFixture, a ClusterFixture and a SentinelFixture really are what they
// claim, as the real redis-server and redis-sentinel processes see it (ROLE, CLUSTER INFO,
// CLUSTER NODES, SENTINEL ...), and that KeySlot agrees with CLUSTER KEYSLOT. The engine's
// replication-group and cluster tests build on these fixtures, so a fixture that only seems to
// work would make those tests prove nothing.
//
// The whole file takes well under 30 s on 2 cores; most of it is cluster gossip converging and
// sentinels discovering each other (their hello messages go out every 2 s).
//
// A missing redis-server or redis-sentinel fails these tests; it never skips them.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/writer.h"

namespace finalsnap::testing {
namespace {

using std::chrono::milliseconds;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// --- KeySlot and slot ranges (no server) --------------------------------------------------------

TEST(TopologyKeySlotTest, KnownSlots) {
  // CRC16/XMODEM's check value: crc("123456789") = 0x31C3.
  EXPECT_EQ(KeySlot("123456789"), 0x31C3 & 16383);
  // From the Redis Cluster specification and redis-cli.
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot(""), 0);
  // Hash tags: the first '{', the next '}', and only when something is between them.
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot(std::string("foo{}{bar}")));
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
}

TEST(TopologyKeySlotTest, EvenRangesAndHashTags) {
  const std::vector<SlotRange> three = EvenSlotRanges(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0], (SlotRange{0, 5461}));
  EXPECT_EQ(three[1], (SlotRange{5462, 10922}));
  EXPECT_EQ(three[2], (SlotRange{10923, 16383}));
  for (size_t n : {1u, 2u, 5u, 7u, 16u}) {
    const std::vector<SlotRange> ranges = EvenSlotRanges(n);
    int next = 0;
    for (const SlotRange& r : ranges) {
      EXPECT_EQ(r.first, next);
      EXPECT_GE(r.size(), 16384 / static_cast<int>(n));
      EXPECT_LE(r.size(), 16384 / static_cast<int>(n) + 1);
      next = r.last + 1;
    }
    EXPECT_EQ(next, 16384) << n << " shards";
    const std::vector<std::string> tags = HashTagsFor(ranges);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(ranges[i].Contains(KeySlot(tags[i] + "some:key"))) << tags[i];
      EXPECT_EQ(tags[i].front(), '{');
      EXPECT_EQ(tags[i].back(), '}');
    }
  }
  // Even a single slot gets a tag.
  EXPECT_EQ(KeySlot(HashTagFor({4242, 4242})), 4242);
  EXPECT_THROW(HashTagFor({10, 9}), std::invalid_argument);
}

// --- Sentinel mode of RedisServer ---------------------------------------------------------------

TEST(TopologySentinelServerTest, MissingBinaryFailsWithInstallHint) {
  RedisServerOptions options;
  options.mode = RedisServerOptions::Mode::kSentinel;
  options.binary = "/nonexistent/redis-sentinel";
  RedisServer sentinel(options);
  try {
    sentinel.Start();
    FAIL() << "Start() with a missing binary did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install redis-sentinel"), std::string::npos)
        << e.what();
  }
}

// --- Replication group --------------------------------------------------------------------------

TEST(TopologyFixtureTest, ReplicationGroupHasLinkedReplicas) {
  ReplicationGroupFixture group({.replicas = 2});
  group.Start();
  ASSERT_EQ(group.replica_count(), 2u);

  // ROLE on the primary: ["master", <offset>, [[ip, port, offset], ...]].
  Reply role = group.primary().Command("ROLE");
  ASSERT_EQ(role.type, Reply::Type::kArray) << role.ToString();
  ASSERT_EQ(role.elements.size(), 3u) << role.ToString();
  EXPECT_EQ(role.elements[0].str, "master");
  std::set<std::string> listed;
  for (const Reply& r : role.elements[2].elements) {
    ASSERT_EQ(r.elements.size(), 3u) << role.ToString();
    listed.insert(r.elements[1].str);
  }
  EXPECT_EQ(listed, (std::set<std::string>{std::to_string(group.replica(0).port()),
                                           std::to_string(group.replica(1).port())}));
  for (RedisServer* replica : group.replicas()) {
    Reply r = replica->Command("ROLE");
    ASSERT_EQ(r.type, Reply::Type::kArray) << r.ToString();
    EXPECT_EQ(r.elements[0].str, "slave");
    EXPECT_EQ(r.elements[2].integer, group.primary().port()) << r.ToString();
  }

  ASSERT_TRUE(group.primary().Command("SET", "replicated", "yes").ok());
  ASSERT_TRUE(group.primary().Command("RPUSH", "list", "a", "b", "c").type ==
              Reply::Type::kInteger);
  group.WaitForReplicasCaughtUp();
  const std::string digest = group.primary().Command("DEBUG", "DIGEST").str;
  for (RedisServer* replica : group.replicas()) {
    EXPECT_EQ(replica->Command("GET", "replicated").str, "yes");
    EXPECT_EQ(replica->Command("LLEN", "list").integer, 3);
    EXPECT_EQ(replica->Command("DEBUG", "DIGEST").str, digest);
    // Replicas are read-only, as the engine's topology checks expect.
    EXPECT_TRUE(replica->Command("SET", "x", "1").is_error());
  }
}

TEST(TopologyFixtureTest, ReplicationGroupWithPasswordWritesThroughWriter) {
  ReplicationGroupFixture group(
      {.replicas = 1, .config = {{"requirepass", "s3cret"}, {"masterauth", "s3cret"}}});
  group.Start();
  // A bare connection is refused; the fixture's own connections authenticate.
  RedisContextPtr bare = ConnectTo(group.primary().host(), group.primary().port());
  EXPECT_TRUE(Execute(bare.get(), {"GET", "x"}).is_error());

  Writer writer(group.primary().host(), group.primary().port(), "w:", "s3cret");
  ASSERT_TRUE(writer.WaitForAcks(300, milliseconds(10'000))) << writer.error();
  writer.Stop();
  EXPECT_EQ(writer.error(), "");
  group.WaitForReplicasCaughtUp();
  for (RedisServer* node : group.nodes()) {
    const WriteCheck check = CheckWrites(*node, writer);
    EXPECT_TRUE(check.all_acked_present()) << check.Describe();
    EXPECT_TRUE(check.prefix_closed) << check.Describe();
    EXPECT_LE(check.unacknowledged, 1u) << check.Describe();
  }
  // And a check that finds something wrong says so.
  ASSERT_EQ(group.primary().Command("DEL", "w:7").integer, 1);
  ASSERT_TRUE(group.primary().Command("SET", "w:9", "nine").ok());
  const WriteCheck broken = CheckWrites(group.primary(), writer);
  EXPECT_EQ(broken.missing, 1u) << broken.Describe();
  EXPECT_EQ(broken.missing_keys, std::vector<std::string>{"w:7"});
  EXPECT_EQ(broken.wrong_value, 1u) << broken.Describe();
  EXPECT_FALSE(broken.prefix_closed) << broken.Describe();
  EXPECT_FALSE(broken.all_acked_present());
}

// --- Redis Cluster ------------------------------------------------------------------------------

TEST(TopologyFixtureTest, ClusterOfThreeShardsWithReplicas) {
  const auto started = std::chrono::steady_clock::now();
  ClusterFixture cluster({.shards = 3, .replicas_per_shard = 1});
  cluster.Start();
  RecordProperty("formation_ms", std::to_string(std::chrono::duration_cast<milliseconds>(
                                                    std::chrono::steady_clock::now() - started)
                                                    .count()));
  ASSERT_EQ(cluster.shard_count(), 3u);
  ASSERT_EQ(cluster.nodes().size(), 6u);

  for (RedisServer* node : cluster.nodes()) {
    Reply info = node->Command("CLUSTER", "INFO");
    ASSERT_EQ(info.type, Reply::Type::kString) << info.ToString();
    const auto fields = ParseInfo(info.str);
    EXPECT_EQ(fields.at("cluster_state"), "ok");
    EXPECT_EQ(fields.at("cluster_slots_assigned"), "16384");
    EXPECT_EQ(fields.at("cluster_slots_ok"), "16384");
    EXPECT_EQ(fields.at("cluster_known_nodes"), "6");
    EXPECT_EQ(fields.at("cluster_size"), "3");

    // CLUSTER NODES: 3 masters with the fixture's ranges, 3 slaves, each under a different
    // master.
    Reply nodes = node->Command("CLUSTER", "NODES");
    ASSERT_EQ(nodes.type, Reply::Type::kString);
    int masters = 0, slaves = 0;
    std::set<std::string> slot_texts, masters_of_slaves;
    std::istringstream lines(nodes.str);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
      ASSERT_GE(w.size(), 8u) << line;
      if (w[2].find("master") != std::string::npos) {
        ++masters;
        ASSERT_EQ(w.size(), 9u) << line;
        slot_texts.insert(w[8]);
      } else if (w[2].find("slave") != std::string::npos) {
        ++slaves;
        masters_of_slaves.insert(w[3]);
      }
    }
    EXPECT_EQ(masters, 3) << nodes.str;
    EXPECT_EQ(slaves, 3) << nodes.str;
    EXPECT_EQ(slot_texts, (std::set<std::string>{"0-5461", "5462-10922", "10923-16383"}));
    std::set<std::string> primary_ids;
    for (RedisServer* p : cluster.primaries()) primary_ids.insert(cluster.node_id(*p));
    EXPECT_EQ(masters_of_slaves, primary_ids);
  }
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(cluster.slots(s), EvenSlotRanges(3)[s]);
    ASSERT_EQ(cluster.replicas(s).size(), 1u);
    Reply role = cluster.replicas(s)[0]->Command("ROLE");
    EXPECT_EQ(role.elements[0].str, "slave");
    EXPECT_EQ(role.elements[2].integer, cluster.primary(s).port());
  }

  // KeySlot agrees with the server on random keys, hash tags and the tag edge cases.
  std::mt19937_64 rng(20240611);
  std::vector<std::string> keys = {"",
                                   "{",
                                   "}",
                                   "{}",
                                   "}{",
                                   "{}{a}",
                                   "a{b}c",
                                   "{{a}}",
                                   "foo{",
                                   "}{x}",
                                   "{a}{b}",
                                   "x{}y{z}",
                                   "\\{a}",
                                   "{\x01}",
                                   "{a",
                                   "123456789",
                                   "{user1000}.following"};
  for (int i = 0; i < 300; ++i) {
    std::string key(1 + rng() % 24, '\0');
    for (char& ch : key) ch = static_cast<char>(rng() % 4 == 0 ? "{}"[rng() % 2] : rng() % 256);
    keys.push_back(key);
  }
  for (const std::string& key : keys) {
    Reply slot = cluster.primary(0).Command("CLUSTER", "KEYSLOT", key);
    ASSERT_EQ(slot.type, Reply::Type::kInteger) << slot.ToString();
    EXPECT_EQ(KeySlot(key), slot.integer) << "key of " << key.size() << " bytes";
  }

  // A key with shard s's hash tag is accepted by shard s's primary and by no other.
  for (size_t s = 0; s < 3; ++s) {
    const std::string key = cluster.hash_tag(s) + "probe";
    EXPECT_EQ(cluster.ShardOfSlot(KeySlot(key)), s);
    EXPECT_TRUE(cluster.primary(s).Command("SET", key, "v").ok());
    for (size_t other = 0; other < 3; ++other) {
      if (other == s) continue;
      Reply moved = cluster.primary(other).Command("SET", key, "v");
      EXPECT_TRUE(moved.is_error() && moved.str.rfind("MOVED", 0) == 0) << moved.ToString();
    }
  }

  // One writer per shard, each on its own connection to its shard's primary.
  std::vector<std::unique_ptr<Writer>> writers;
  for (size_t s = 0; s < 3; ++s) {
    writers.push_back(std::make_unique<Writer>(cluster.primary(s), cluster.hash_tag(s) + "w:"));
  }
  // A writer on the wrong shard gets -MOVED at once: nothing acknowledged.
  Writer misrouted(cluster.primary(0), cluster.hash_tag(1) + "w:");
  for (auto& w : writers) ASSERT_TRUE(w->WaitForAcks(300, milliseconds(10'000))) << w->error();
  for (auto& w : writers) w->Stop();
  ASSERT_TRUE(misrouted.WaitFinished(milliseconds(10'000)));
  EXPECT_EQ(misrouted.acked(), 0u);
  EXPECT_NE(misrouted.error().find("MOVED"), std::string::npos) << misrouted.error();

  cluster.WaitForReplicasCaughtUp();
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(writers[s]->error(), "");
    for (RedisServer* node : {&cluster.primary(s), cluster.replicas(s)[0]}) {
      const WriteCheck check = CheckWrites(*node, *writers[s]);
      EXPECT_TRUE(check.all_acked_present()) << check.Describe();
      EXPECT_TRUE(check.prefix_closed) << check.Describe();
      EXPECT_LE(check.unacknowledged, 1u) << check.Describe();
      // Every writer key of this shard is there, and no other shard's.
      EXPECT_EQ(node->Command("DBSIZE").integer, static_cast<long long>(check.present) + 1);
    }
  }
}

// --- Sentinel -----------------------------------------------------------------------------------

TEST(TopologyFixtureTest, SentinelsWatchAReplicationGroup) {
  ReplicationGroupFixture group(
      {.replicas = 1, .config = {{"requirepass", "pw"}, {"masterauth", "pw"}}});
  group.Start();
  SentinelFixture sentinels(group, {.sentinels = 3, .master_name = "mymaster"});
  const auto started = std::chrono::steady_clock::now();
  sentinels.Start();
  RecordProperty("discovery_ms", std::to_string(std::chrono::duration_cast<milliseconds>(
                                                    std::chrono::steady_clock::now() - started)
                                                    .count()));
  ASSERT_EQ(sentinels.size(), 3u);
  const std::vector<int> ports = sentinels.ports();
  EXPECT_EQ(std::set<int>(ports.begin(), ports.end()).size(), 3u);

  for (size_t i = 0; i < sentinels.size(); ++i) {
    SCOPED_TRACE("sentinel " + std::to_string(i));
    auto addr = sentinels.MasterAddr(i);
    ASSERT_TRUE(addr.has_value());
    EXPECT_EQ(addr->first, "127.0.0.1");
    EXPECT_EQ(addr->second, group.primary().port());

    Reply replicas = sentinels.Command(i, "SENTINEL", "replicas", "mymaster");
    ASSERT_EQ(replicas.type, Reply::Type::kArray) << replicas.ToString();
    ASSERT_EQ(replicas.elements.size(), 1u) << replicas.ToString();
    EXPECT_EQ(ReplyField(replicas.elements[0], "port"), std::to_string(group.replica(0).port()));
    EXPECT_EQ(ReplyField(replicas.elements[0], "flags"), "slave");

    Reply others = sentinels.Command(i, "SENTINEL", "sentinels", "mymaster");
    ASSERT_EQ(others.type, Reply::Type::kArray);
    EXPECT_EQ(others.elements.size(), 2u) << others.ToString();

    Reply master = sentinels.Command(i, "SENTINEL", "master", "mymaster");
    EXPECT_EQ(ReplyField(master, "quorum"), "2");
    EXPECT_EQ(ReplyField(master, "down-after-milliseconds"), "3000");
    EXPECT_EQ(ReplyField(master, "flags"), "master");

    // Sentinel rewrote its own configuration file with what it discovered.
    const std::string conf = ReadFile(sentinels.sentinel(i).sentinel_config_path());
    EXPECT_NE(conf.find("sentinel myid"), std::string::npos) << conf;
    EXPECT_NE(conf.find("sentinel known-replica mymaster"), std::string::npos) << conf;
  }

  // A stopped sentinel is left out of the waits; the others still agree on the primary.
  sentinels.Kill(2, SIGKILL);
  ASSERT_TRUE(sentinels.sentinel(2).WaitForExit().has_value());
  sentinels.WaitForMasterAddr("127.0.0.1", group.primary().port(), milliseconds(5000));
}

}  // namespace
}  // namespace finalsnap::testing
