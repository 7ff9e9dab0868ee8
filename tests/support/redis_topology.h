// Real multi-node Redis topologies for integration tests: a replication group (one primary and
// its replicas), a Redis Cluster (shards of a primary and replicas, slots assigned, every node
// met) and Redis Sentinels watching a primary. Every node is a RedisServer (redis_server.h): its
// own directory, a free loopback port, PR_SET_PDEATHSIG, shut down by the destructor.
//
//   ReplicationGroupFixture group({.replicas = 2});
//   group.Start();                          // returns once every replica is linked and online
//   group.primary().Command("SET", "k", "v");
//   group.WaitForReplicasCaughtUp();        // the replicas have everything written so far
//
//   ClusterFixture cluster({.shards = 3, .replicas_per_shard = 1});
//   cluster.Start();                        // returns once cluster_state:ok everywhere
//   cluster.primary(1).Command("SET", cluster.hash_tag(1) + "k", "v");  // a key of shard 1
//
//   SentinelFixture sentinels(group, {.sentinels = 3});
//   sentinels.Start();                      // returns once each knows the replicas and the others
//   sentinels.Command(0, "SENTINEL", "get-master-addr-by-name", sentinels.master_name());
//
// Replication-group and cluster nodes run with repl-diskless-sync-delay 0 (Redis' default makes
// every full sync, a replica's first one and the engine's captures alike, wait 5 s for more
// replicas); a test can set it back through the options' `config`.
//
// Every wait polls under a deadline and, when the deadline passes, throws std::runtime_error
// with the state it last saw and the nodes' log tails; nothing sleeps for a fixed time. Start
// the fixtures from the test's own thread (PDEATHSIG is tied to the thread that starts a node).
#ifndef FINALSNAP_TESTS_SUPPORT_REDIS_TOPOLOGY_H_
#define FINALSNAP_TESTS_SUPPORT_REDIS_TOPOLOGY_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/redis_server.h"

namespace finalsnap::testing {

// The default deadline for a topology to form: replicas syncing, cluster gossip converging,
// sentinels discovering each other (hello messages go out every 2 s). Generous, because the
// machine running the tests may be busy; a healthy topology forms in a few seconds.
inline constexpr std::chrono::milliseconds kTopologyDeadline{60'000};

// --- Cluster key slots ------------------------------------------------------------------------

inline constexpr int kClusterSlots = 16384;

// The Redis Cluster slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the bytes
// between the first '{' and the next '}', when there are any), modulo 16384.
int KeySlot(std::string_view key);

// An inclusive range of slots.
struct SlotRange {
  int first = 0;
  int last = -1;
  bool Contains(int slot) const { return slot >= first && slot <= last; }
  int size() const { return last - first + 1; }
  bool operator==(const SlotRange&) const = default;
};

// The shortest hash tag "{a}", "{b}", ..., "{aa}", ... whose slot lies in `range`; throws
// std::invalid_argument for an empty range. Keys that start with it all go to that range.
std::string HashTagFor(SlotRange range);

// HashTagFor each range, in order.
std::vector<std::string> HashTagsFor(const std::vector<SlotRange>& ranges);

// `count` ranges of consecutive slots, as even as possible, lowest slots first (what the cluster
// fixture assigns: with 3 shards, 0-5461, 5462-10922, 10923-16383).
std::vector<SlotRange> EvenSlotRanges(size_t count);

// --- Shared waits -----------------------------------------------------------------------------

// Waits until every replica reports master_link_status:up and `primary` lists each (by port) as
// state=online. Throws on the deadline.
void WaitForReplicasLinked(RedisServer& primary, const std::vector<RedisServer*>& replicas,
                           std::chrono::milliseconds deadline = kTopologyDeadline);

// Reads the primary's master_repl_offset once, then waits until every replica's
// slave_repl_offset has reached it: whatever was written before the call is on the replicas.
void WaitForReplicasCaughtUp(RedisServer& primary, const std::vector<RedisServer*>& replicas,
                             std::chrono::milliseconds deadline = kTopologyDeadline);

// --- Replication group ------------------------------------------------------------------------

// (Fields without a default have a "= {}" initializer so that designated initializers may leave
// them out without GCC's -Wmissing-field-initializers.)
struct ReplicationGroupOptions {
  size_t replicas = 2;
  // Directives for every node, e.g. {{"requirepass", "pw"}, {"masterauth", "pw"}}.
  std::vector<std::pair<std::string, std::string>> config = {};
  std::chrono::milliseconds deadline = kTopologyDeadline;
};

class ReplicationGroupFixture {
 public:
  explicit ReplicationGroupFixture(ReplicationGroupOptions options = {});
  ReplicationGroupFixture(const ReplicationGroupFixture&) = delete;
  ReplicationGroupFixture& operator=(const ReplicationGroupFixture&) = delete;
  // Stops the replicas, then the primary (so the replicas do not log a lost link for nothing).
  ~ReplicationGroupFixture();

  // Starts the primary, then each replica with `replicaof` it, one after another, and waits
  // (WaitForReplicasLinked) until all of them are linked and online.
  void Start();
  // WaitForReplicasCaughtUp on this group's nodes.
  void WaitForReplicasCaughtUp(std::optional<std::chrono::milliseconds> deadline = std::nullopt);

  RedisServer& primary() { return *primary_; }
  RedisServer& replica(size_t i) { return *replicas_.at(i); }
  size_t replica_count() const { return replicas_.size(); }
  std::vector<RedisServer*> replicas() const;
  // The primary first, then the replicas.
  std::vector<RedisServer*> nodes() const;

 private:
  ReplicationGroupOptions options_;
  std::unique_ptr<RedisServer> primary_;
  std::vector<std::unique_ptr<RedisServer>> replicas_;
};

// --- Redis Cluster ----------------------------------------------------------------------------

struct ClusterOptions {
  size_t shards = 3;
  size_t replicas_per_shard = 1;
  // cluster-node-timeout: how long a node may be unreachable before it is flagged as failing.
  // Short, so a test that kills a node sees a failover soon; not so short that a busy machine
  // flags healthy nodes.
  std::chrono::milliseconds node_timeout{5000};
  // Directives for every node, e.g. {{"requirepass", "pw"}, {"masterauth", "pw"}}.
  std::vector<std::pair<std::string, std::string>> config = {};
  std::chrono::milliseconds deadline = kTopologyDeadline;
};

class ClusterFixture {
 public:
  explicit ClusterFixture(ClusterOptions options = {});
  ClusterFixture(const ClusterFixture&) = delete;
  ClusterFixture& operator=(const ClusterFixture&) = delete;
  // Stops the replicas, then the primaries.
  ~ClusterFixture();

  // Starts every node with cluster-enabled, gives shard i the i-th of EvenSlotRanges(shards)
  // (CLUSTER ADDSLOTSRANGE, after a distinct CLUSTER SET-CONFIG-EPOCH so no epoch collision has
  // to be resolved), has the first node CLUSTER MEET every other, CLUSTER REPLICATEs each replica
  // once it knows its primary, then waits for WaitForHealthy().
  void Start();
  // Waits until every node reports cluster_state:ok, every node's CLUSTER NODES lists all nodes
  // connected with the roles they started with (no handshake, fail or pfail flags; each shard's
  // primary with its slots, each replica under it) and every replica's link is up and online on
  // its primary. After a failover the roles differ, and this wait times out.
  void WaitForHealthy(std::optional<std::chrono::milliseconds> deadline = std::nullopt);
  // WaitForReplicasCaughtUp for every shard.
  void WaitForReplicasCaughtUp(std::optional<std::chrono::milliseconds> deadline = std::nullopt);

  size_t shard_count() const { return shards_.size(); }
  // Shard `shard`'s primary; shards are in slot order (shard 0 has the lowest slots).
  RedisServer& primary(size_t shard) { return *shards_.at(shard).primary; }
  std::vector<RedisServer*> primaries() const;
  std::vector<RedisServer*> replicas(size_t shard) const;
  // Every node: each shard's primary, then its replicas, shard by shard.
  std::vector<RedisServer*> nodes() const;
  SlotRange slots(size_t shard) const { return shards_.at(shard).slots; }
  std::vector<SlotRange> slot_ranges() const;
  // A hash tag ("{a}") whose keys are in shard `shard`'s slots.
  const std::string& hash_tag(size_t shard) const { return shards_.at(shard).hash_tag; }
  // The shard whose range holds `slot`.
  size_t ShardOfSlot(int slot) const;
  // A node's cluster ID (CLUSTER MYID, read at start).
  const std::string& node_id(const RedisServer& node) const;

 private:
  struct Shard {
    std::unique_ptr<RedisServer> primary;
    std::vector<std::unique_ptr<RedisServer>> replicas;
    SlotRange slots;
    std::string hash_tag;
  };
  // One pass of the WaitForHealthy checks; empty when healthy, else what is not yet.
  std::string HealthProblem();

  ClusterOptions options_;
  std::vector<Shard> shards_;
  std::vector<std::pair<const RedisServer*, std::string>> ids_;
};

// --- Sentinel ---------------------------------------------------------------------------------

struct SentinelOptions {
  size_t sentinels = 3;
  std::string master_name = "mymaster";
  // Sentinels that must agree the primary is down before a failover; 0 means a majority.
  size_t quorum = 0;
  // `sentinel down-after-milliseconds`: Sentinel's default is 30 s; short, so that a test that
  // kills the primary sees a failover soon, but not so short that a busy machine fakes one.
  std::chrono::milliseconds down_after{3000};
  // `sentinel failover-timeout`: Sentinel's default is 3 min.
  std::chrono::milliseconds failover_timeout{10'000};
  // `sentinel auth-pass`, when the monitored nodes have a requirepass. Empty: none.
  std::string auth_pass = {};
  // More directives for each sentinel (as RedisServerOptions::config) and more sentinel.conf
  // lines (after the monitor line), e.g. "sentinel parallel-syncs mymaster 2".
  std::vector<std::pair<std::string, std::string>> config = {};
  std::vector<std::string> extra_lines = {};
  std::chrono::milliseconds deadline = kTopologyDeadline;
};

class SentinelFixture {
 public:
  // Sentinels for the primary at host:port, which is expected to have `replicas` replicas.
  SentinelFixture(std::string host, int port, size_t replicas, SentinelOptions options = {});
  // Sentinels for a replication group's primary and replicas. auth_pass, when not set, is the
  // primary's requirepass.
  explicit SentinelFixture(ReplicationGroupFixture& group, SentinelOptions options = {});
  SentinelFixture(const SentinelFixture&) = delete;
  SentinelFixture& operator=(const SentinelFixture&) = delete;
  ~SentinelFixture();

  // Starts the sentinels one by one, then waits for WaitForDiscovery().
  void Start();
  // Waits until every running sentinel lists the expected replicas and every other running
  // sentinel, none of them flagged down or disconnected.
  void WaitForDiscovery(std::optional<std::chrono::milliseconds> deadline = std::nullopt);
  // Waits until every running sentinel answers get-master-addr-by-name with host:port (after a
  // failover, the new primary's).
  void WaitForMasterAddr(const std::string& host, int port,
                         std::optional<std::chrono::milliseconds> deadline = std::nullopt);

  // Sentinel i's answer to SENTINEL get-master-addr-by-name, or nullopt if it has none.
  std::optional<std::pair<std::string, int>> MasterAddr(size_t i);
  // Runs a command on sentinel i.
  template <typename... Args>
  Reply Command(size_t i, const Args&... args) {
    return sentinel(i).Command(args...);
  }
  // Signals sentinel i (e.g. SIGKILL); Stop shuts it down and waits. A stopped sentinel is left
  // out of the waits above.
  void Kill(size_t i, int signal) { sentinel(i).Kill(signal); }
  void Stop(size_t i) { sentinel(i).Stop(); }
  // Stops every sentinel.
  void Stop();

  RedisServer& sentinel(size_t i) { return *sentinels_.at(i); }
  size_t size() const { return sentinels_.size(); }
  int port(size_t i) const { return sentinels_.at(i)->port(); }
  std::vector<int> ports() const;
  const std::string& master_name() const { return options_.master_name; }
  // The replica count the waits expect; change it after adding or removing replicas.
  void set_expected_replicas(size_t n) { replicas_ = n; }

 private:
  std::string DiscoveryProblem();

  std::string host_;
  int port_;
  size_t replicas_;
  SentinelOptions options_;
  std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

// Field -> value of a flat [field, value, field, value, ...] reply, as SENTINEL master,
// SENTINEL replicas and SENTINEL sentinels give for each entry.
std::vector<std::pair<std::string, std::string>> ReplyFields(const Reply& flat);
std::string ReplyField(const Reply& flat, std::string_view field);

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_REDIS_TOPOLOGY_H_
