#include <algorithm>
#include <charconv>
#include <cstdio>

#include "discovery.h"
#include "finalsnap/text.h"

// Topology discovery: which nodes make up the target and what each is, from the fleet file's
// endpoints (a standalone node, a primary with replicas, a Sentinel-managed group or a Redis
// Cluster), and the recheck right before a destroy.
namespace finalsnap::detail {
namespace discovery {

std::optional<uint64_t> ToU64(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string Field(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? std::string() : it->second;
}

// Hosts compared as the nodes announce them: "localhost" is the loopback address.
std::string CanonicalHost(std::string host) {
  if (host == "localhost") return "127.0.0.1";
  return host;
}

bool SameAddress(const NodeAddress& a, const std::string& host, uint16_t port) {
  return a.port == port && CanonicalHost(a.host) == CanonicalHost(host);
}

bool AddressLess(const GroupNode* a, const GroupNode* b) {
  const std::string ha = CanonicalHost(a->address.host), hb = CanonicalHost(b->address.host);
  if (ha != hb) return ha < hb;
  return a->address.port < b->address.port;
}

std::string Pad(size_t n, int width) {
  std::string s = std::to_string(n);
  if (s.size() < static_cast<size_t>(width)) s.insert(0, static_cast<size_t>(width) - s.size(), '0');
  return s;
}

// A sentinel's reply to SENTINEL MASTER / one entry of SENTINEL REPLICAS: a flat field/value
// array (RESP2) as a map.
std::map<std::string, std::string> FlatMap(const Reply& r) {
  std::map<std::string, std::string> m;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    m[r.elements[i].str] = r.elements[i + 1].str;
  }
  return m;
}

bool HasFlag(const std::string& flags, std::string_view flag) {
  size_t start = 0;
  while (start <= flags.size()) {
    size_t end = flags.find(',', start);
    if (end == std::string::npos) end = flags.size();
    if (std::string_view(flags).substr(start, end - start) == flag) return true;
    start = end + 1;
  }
  return false;
}

NodeAddress AddressOf(const Endpoint& e) { return NodeAddress{e.host, e.port}; }

Task<GroupNode*> Discovery::Attach(NodeAddress address) {
  for (auto& n : topology_.nodes) {
    if (SameAddress(n->address, address.host, address.port)) co_return n.get();
  }
  auto node = std::make_unique<GroupNode>();
  node->address = address;
  node->client = std::make_unique<NodeClient>(loop_, address, request_.auth, request_.timeouts);
  if (Status s = co_await node->client->Connect(); !s.ok()) {
    topology_.unreachable = address.ToString() + " is not reachable: " + s.message();
    co_return nullptr;
  }
  const std::vector<std::string> info_argv = Argv("INFO", "all");
  CommandOutcome info = co_await node->client->Command(info_argv);
  if (Denied(info, info_argv, address.ToString())) co_return nullptr;
  if (!info.ok()) {
    topology_.unreachable = "INFO on " + address.ToString() + " failed: " + info.Error();
    co_return nullptr;
  }
  node->info = ParseInfo(info.reply.str);
  node->facts = ParseServerFacts(node->info);
  node->primary = node->facts.role == "master";
  node->master_host = Field(node->info, "master_host");
  node->master_port = static_cast<uint16_t>(ToU64(Field(node->info, "master_port")).value_or(0));
  node->link_up = Field(node->info, "master_link_status") == "up";
  node->applied_offset = ToU64(Field(node->info, "slave_repl_offset")).value_or(0);
  topology_.nodes.push_back(std::move(node));
  co_return topology_.nodes.back().get();
}

Task<Topology> Discovery::Run() {
  topology_.is_group = !request_.group_id.empty();
  if (!topology_.is_group) {
    topology_.discovered_via = "endpoint";
    co_await Standalone();
    co_return std::move(topology_);
  }
  std::optional<NodeAddress> primary;
  if (!request_.sentinels.empty()) {
    topology_.discovered_via = "sentinel";
    primary = co_await AskSentinels();
    if (!primary) co_return std::move(topology_);
  } else {
    topology_.discovered_via = "endpoints";
  }
  // Every endpoint the fleet file lists must answer and belong to the group.
  std::vector<GroupNode*> seeds;
  for (const Endpoint& e : request_.endpoints) {
    const NodeAddress address = AddressOf(e);
    GroupNode* n = co_await Attach(address);
    if (n == nullptr) co_return std::move(topology_);
    seeds.push_back(n);
  }
  if (seeds.empty()) {
    GroupNode* n = co_await Attach(*primary);
    if (n == nullptr) co_return std::move(topology_);
    seeds.push_back(n);
  }
  const bool cluster = seeds.front()->facts.cluster_enabled;
  for (GroupNode* s : seeds) {
    if (s->facts.cluster_enabled != cluster) {
      Inconsistent(s->address.ToString() + " has cluster mode " +
                   (s->facts.cluster_enabled ? "on" : "off") + " but " +
                   seeds.front()->address.ToString() + " has it " + (cluster ? "on" : "off"));
      co_return std::move(topology_);
    }
    if (s->facts.loading) {
      Inconsistent(s->address.ToString() + " is still loading its dataset");
      co_return std::move(topology_);
    }
  }
  if (cluster) {
    topology_.cluster_enabled = true;
    co_await Cluster(seeds.front());
    co_return std::move(topology_);
  }
  // One primary: each seed is it or names it.
  std::optional<NodeAddress> named;
  const GroupNode* named_by = nullptr;
  for (GroupNode* s : seeds) {
    const NodeAddress p = s->primary ? s->address : NodeAddress{s->master_host, s->master_port};
    if (!named) {
      named = p;
      named_by = s;
    } else if (!SameAddress(*named, p.host, p.port)) {
      if (s->primary && named_by->primary) {
        Inconsistent("two primaries: " + named->ToString() + " and " + p.ToString() +
                     " both have role master");
      } else {
        Inconsistent("members disagree about who is primary: " + named_by->address.ToString() +
                     " follows " + named->ToString() + ", " + s->address.ToString() +
                     " follows " + p.ToString());
      }
      co_return std::move(topology_);
    }
  }
  if (primary && !SameAddress(*primary, named->host, named->port)) {
    Inconsistent("the sentinels name " + primary->ToString() + " as primary, but " +
                 named_by->address.ToString() + " follows " + named->ToString());
    co_return std::move(topology_);
  }
  co_await Replicated(*named);
  co_return std::move(topology_);
}

Task<bool> Discovery::Standalone() {
  const NodeAddress address = AddressOf(request_.endpoints.front());
  GroupNode* node = co_await Attach(address);
  if (node == nullptr) co_return false;
  // ROLE lists only replicas that are online, INFO counts every attached one; both must agree
  // the node is alone.
  CommandOutcome role_reply = co_await node->client->Command(Argv("ROLE"));
  if (Denied(role_reply, Argv("ROLE"), address.ToString())) co_return false;
  std::optional<RoleInfo> role;
  if (role_reply.ok()) role = ParseRole(role_reply.reply);
  const ServerFacts& f = node->facts;
  if (role && role->role != f.role) {
    co_return Inconsistent("ROLE says " + role->role + " but INFO says " + f.role);
  }
  if (role && !role->replicas.empty()) {
    co_return Inconsistent("the node is the primary of a replication group with " +
                           std::to_string(role->replicas.size()) +
                           " online replica(s); use delete-replication-group");
  }
  if (f.loading) co_return Inconsistent("the node is still loading its dataset");
  if (f.cluster_enabled) {
    co_return Inconsistent("the node is a Redis Cluster member; use delete-replication-group");
  }
  if (f.role != "master") {
    co_return Inconsistent("the node is a replica (role " + f.role +
                           "); a cache cluster is a standalone primary");
  }
  // INFO counts every replication client, a snapshot connection too (finalsnap's own, redis-cli
  // --rdb): those announce no port and are no replicas. Another operation's capture in flight
  // is met by the target-claimed gate, which names it, not taken for a replica here.
  const size_t replicas = ParseReplicaLines(node->info).size();
  if (replicas > 0) {
    co_return Inconsistent("the node is the primary of a replication group with " +
                           std::to_string(replicas) + " replica(s); use delete-replication-group");
  }
  GroupShard shard;
  shard.node_group_id = "0001";
  shard.primary = node;
  shard.members.push_back(node);
  topology_.shards.push_back(std::move(shard));
  topology_.topology_evidence =
      "standalone primary (INFO and ROLE agree), no replicas attached, cluster mode off";
  co_return true;
}

Task<bool> Discovery::Replicated(NodeAddress primary_address) {
  GroupNode* primary = co_await Attach(primary_address);
  if (primary == nullptr) co_return false;
  if (!primary->primary) {
    co_return Inconsistent(primary_address.ToString() + " is named as the primary but has role " +
                           primary->facts.role);
  }
  GroupShard shard;
  shard.node_group_id = "0001";
  shard.primary = primary;
  const std::vector<ReplicaLine> lines = ParseReplicaLines(primary->info);
  for (const ReplicaLine& line : lines) {
    if (line.state != "online") {
      co_return Inconsistent("replica " + line.ip + ":" + std::to_string(line.port) + " of " +
                             primary_address.ToString() + " is in state " + line.state +
                             ", not online");
    }
  }
  // ROLE lists the online replicas too: both views must agree.
  CommandOutcome role_reply = co_await primary->client->Command(Argv("ROLE"));
  if (Denied(role_reply, Argv("ROLE"), primary_address.ToString())) co_return false;
  std::optional<RoleInfo> role;
  if (role_reply.ok()) role = ParseRole(role_reply.reply);
  if (!role || role->role != "master" || role->replicas.size() != lines.size()) {
    co_return Inconsistent("ROLE on " + primary_address.ToString() + " lists " +
                           (role ? std::to_string(role->replicas.size()) : std::string("no")) +
                           " replica(s), INFO replication " + std::to_string(lines.size()));
  }
  for (const ReplicaLine& line : lines) {
    const NodeAddress address{line.ip, line.port};
    GroupNode* r = co_await Attach(address);
    if (r == nullptr) co_return false;
    if (r->primary || !SameAddress(primary->address, r->master_host, r->master_port)) {
      co_return Inconsistent("members disagree about who is primary: " +
                             primary_address.ToString() + " lists " + r->address.ToString() +
                             " as its replica, but that node " +
                             (r->primary ? std::string("has role master")
                                         : "follows " + r->master_host + ":" +
                                               std::to_string(r->master_port)));
    }
    if (!r->link_up) {
      co_return Inconsistent("replica " + r->address.ToString() + " has its link to the primary down");
    }
    shard.replicas.push_back(r);
  }
  // Every node reached (the fleet file's endpoints) must be in the group just found.
  for (auto& n : topology_.nodes) {
    if (n.get() != primary && std::find(shard.replicas.begin(), shard.replicas.end(), n.get()) ==
                                  shard.replicas.end()) {
      co_return Inconsistent(n->address.ToString() + " follows " + primary_address.ToString() +
                             " but the primary does not list it as an online replica");
    }
  }
  std::sort(shard.replicas.begin(), shard.replicas.end(), AddressLess);
  shard.members = shard.replicas;
  shard.members.push_back(primary);
  std::sort(shard.members.begin(), shard.members.end(), AddressLess);
  if (!request_.sentinels.empty() && !co_await CheckSentinelReplicas(shard)) co_return false;
  topology_.topology_evidence =
      "primary " + primary_address.ToString() + " with " + std::to_string(shard.replicas.size()) +
      " online replica(s) (INFO, ROLE" + (request_.sentinels.empty() ? "" : ", sentinels") +
      " agree; every link up)";
  topology_.shards.push_back(std::move(shard));
  NameMembers();
  co_return true;
}

void Discovery::NameMembers() {
  for (GroupShard& s : topology_.shards) {
    for (size_t i = 0; i < s.members.size(); ++i) {
      s.members[i]->cache_cluster_id =
          request_.group_id + "-" +
          (topology_.cluster_enabled ? s.node_group_id + "-" : std::string()) + Pad(i + 1, 3);
    }
  }
}

}  // namespace discovery

using discovery::Field;
using discovery::SameAddress;
using discovery::ToU64;

GroupNode* Topology::FindMember(std::string_view id) const {
  for (const auto& n : nodes) {
    if (EqualsIgnoreCase(n->cache_cluster_id, id)) return n.get();
  }
  return nullptr;
}

GroupShard* Topology::ShardOf(const GroupNode* node) {
  for (GroupShard& s : shards) {
    if (std::find(s.members.begin(), s.members.end(), node) != s.members.end()) return &s;
  }
  return nullptr;
}

std::string Topology::PrimaryReplId(const GroupShard& shard) const {
  return Field(shard.primary->info, "master_replid");
}

Task<Topology> Discover(Loop& loop, const DiscoveryRequest& request) {
  discovery::Discovery d(loop, request);
  Topology t = co_await d.Run();
  co_return t;
}

Task<std::string> Recheck(Topology& topology) {
  for (GroupShard& shard : topology.shards) {
    for (GroupNode* n : shard.members) {
      if (!n->client->connected()) {
        if (Status s = co_await n->client->Connect(); !s.ok()) {
          co_return n->address.ToString() + " no longer answers: " + s.message();
        }
      }
      CommandOutcome r = co_await n->client->Command(Argv("INFO", "replication"));
      if (r.denied()) {
        co_return NoPermText(n->client->auth().username, Argv("INFO", "replication"),
                             n->address.ToString(), r.reply.str);
      }
      if (!r.ok()) co_return n->address.ToString() + " no longer answers INFO: " + r.Error();
      const auto info = ParseInfo(r.reply.str);
      const bool primary = Field(info, "role") == "master";
      if (primary != (n == shard.primary)) {
        co_return n->address.ToString() + " changed role to " + Field(info, "role") +
                  " (a failover?)";
      }
      if (!primary) {
        const uint16_t port = static_cast<uint16_t>(ToU64(Field(info, "master_port")).value_or(0));
        if (!SameAddress(shard.primary->address, Field(info, "master_host"), port)) {
          co_return n->address.ToString() + " now follows " + Field(info, "master_host") + ":" +
                    std::to_string(port);
        }
        if (Field(info, "master_link_status") != "up") {
          co_return "replica " + n->address.ToString() + " has its link to the primary down";
        }
      } else {
        size_t online = 0;
        for (const ReplicaLine& l : ParseReplicaLines(info)) online += l.state == "online";
        if (online < shard.replicas.size()) {
          co_return "primary " + n->address.ToString() + " has " + std::to_string(online) +
                    " online replica(s), " + std::to_string(shard.replicas.size()) +
                    " at discovery";
        }
      }
    }
  }
  co_return std::string();
}

}  // namespace finalsnap::detail
