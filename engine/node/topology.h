// Topology: what an operation's target is made of, found out from the live nodes.
//
// A cache cluster is one standalone primary. A replication group is one primary with replicas,
// or a sharded Redis Cluster; it is discovered from any of its members (or through its Redis
// Sentinels) and laid out as ElastiCache lays out a group:
//
//   node groups (shards)   "0001", "0002", ... in slot order (one, "0001", without Cluster)
//   member cache clusters  "<group>-001", "<group>-002", ...           (one shard)
//                          "<group>-0001-001", "<group>-0001-002", ... (Redis Cluster)
//
// Members are numbered in address order within their node group, not by role, so an id names
// the same node before and after a failover.
//
//   Topology t = co_await Discover(loop, request);
//   if (!t.unreachable.empty()) ...   // the target-resolved gate refuses
//   if (!t.inconsistent.empty()) ...  // the topology-consistent gate refuses
//
// Discovery connects to every member (those clients stay open for the operation) and checks
// what the gates need: every node answers; exactly one primary per shard; every replica names
// that primary and its link is up; ROLE, INFO, CLUSTER NODES and the sentinels agree; in Cluster
// mode all 16384 slots are served, none migrating, and no node is failing.
//
// The parsers below are pure and tested on their own.
#ifndef FINALSNAP_ENGINE_TOPOLOGY_H_
#define FINALSNAP_ENGINE_TOPOLOGY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "async.h"
#include "finalsnap/fleet.h"
#include "finalsnap/text.h"
#include "loop.h"
#include "node_client.h"

namespace finalsnap::detail {

// A member of the target, with its open command connection.
struct GroupNode {
  NodeAddress address;
  std::string cache_cluster_id;
  std::unique_ptr<NodeClient> client;
  std::map<std::string, std::string> info;  // INFO all at discovery
  ServerFacts facts;
  bool primary = false;
  std::string cluster_node_id;  // Redis Cluster's node id, else empty
  // A replica's view of its primary.
  std::string master_host;
  uint16_t master_port = 0;
  bool link_up = false;
  uint64_t applied_offset = 0;  // slave_repl_offset
};

struct GroupShard {
  std::string node_group_id;
  std::vector<std::pair<int, int>> slots;  // Cluster only
  GroupNode* primary = nullptr;
  std::vector<GroupNode*> replicas;  // in member-id order
  // Every member, in member-id (address) order.
  std::vector<GroupNode*> members;
};

struct DiscoveryRequest {
  // A cache cluster: exactly one endpoint and no group id. A replication group: its id, the
  // fleet file's endpoints and, optionally, its sentinels and master name.
  std::string group_id;
  std::vector<Endpoint> endpoints;
  std::vector<Endpoint> sentinels;
  std::string master_name;
  NodeAuth auth;
  NodeTimeouts timeouts;
};

struct Topology {
  bool is_group = false;
  bool cluster_enabled = false;
  std::string discovered_via;  // "endpoint", "endpoints", "sentinel"
  std::vector<std::unique_ptr<GroupNode>> nodes;
  std::vector<GroupShard> shards;
  std::vector<NodeAddress> sentinels;  // that answered, for SENTINEL REMOVE / RESET later
  // Why the target-resolved gate refuses (a node or sentinel that does not answer), else empty.
  std::string unreachable;
  // Why the topology-consistent gate refuses, else empty.
  std::string inconsistent;
  // A NOPERM met on the way (NoPermText: the user, the command, the node), else empty. It stops
  // discovery and is reported as itself, never as what the missing reply would have shown (a
  // ROLE refused is not "no replicas"); for describe it is also the `inconsistent` reason.
  std::string denied;
  // What was found, in one line each, for the gates' evidence.
  std::string resolved_evidence;
  std::string topology_evidence;

  GroupNode* FindMember(std::string_view cache_cluster_id) const;
  GroupShard* ShardOf(const GroupNode* node);
  // The primary's master_replid, for checking that a replica follows it.
  std::string PrimaryReplId(const GroupShard& shard) const;
};

Task<Topology> Discover(Loop& loop, const DiscoveryRequest& request);

// Re-reads every node's role and link (no new connections) and says what changed since
// discovery, or "" if nothing did: for the check right before anything is shut down.
Task<std::string> Recheck(Topology& topology);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_TOPOLOGY_H_
