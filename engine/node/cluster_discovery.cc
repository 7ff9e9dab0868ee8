// Redis Cluster discovery: CLUSTER NODES from a seed, every node attached, shards by slot ranges.
#include <algorithm>

#include "discovery.h"
#include "finalsnap/text.h"

namespace finalsnap::detail::discovery {

Task<bool> Discovery::Cluster(GroupNode* seed) {
  const std::string seed_address = seed->address.ToString();
  CommandOutcome nodes_reply = co_await seed->client->Command(Argv("CLUSTER", "NODES"));
  if (Denied(nodes_reply, Argv("CLUSTER", "NODES"), seed_address)) co_return false;
  if (!nodes_reply.ok()) {
    co_return Inconsistent("CLUSTER NODES on " + seed->address.ToString() +
                           " failed: " + nodes_reply.Error());
  }
  Expected<std::vector<ClusterNodeLine>> lines = ParseClusterNodes(nodes_reply.reply.str);
  if (!lines.ok()) {
    co_return Inconsistent("CLUSTER NODES on " + seed->address.ToString() + ": " +
                           lines.error().message());
  }
  CommandOutcome cinfo = co_await seed->client->Command(Argv("CLUSTER", "INFO"));
  if (Denied(cinfo, Argv("CLUSTER", "INFO"), seed_address)) co_return false;
  if (cinfo.ok()) {
    const std::string state = Field(ParseInfo(cinfo.reply.str), "cluster_state");
    if (state != "ok") co_return Inconsistent("cluster_state is " + state + ", not ok");
  }
  int covered = 0;
  std::vector<const ClusterNodeLine*> masters;
  for (const ClusterNodeLine& l : *lines) {
    for (const char* bad : {"fail", "fail?", "handshake", "noaddr"}) {
      if (l.flags.count(bad)) {
        co_return Inconsistent("cluster node " + l.host + ":" + std::to_string(l.port) +
                               " is flagged " + bad);
      }
    }
    if (l.migrating) {
      co_return Inconsistent("slots are migrating on " + l.host + ":" + std::to_string(l.port));
    }
    if (l.flags.count("master")) {
      if (l.slots.empty()) {
        co_return Inconsistent("primary " + l.host + ":" + std::to_string(l.port) +
                               " serves no slots");
      }
      for (auto [a, b] : l.slots) covered += b - a + 1;
      masters.push_back(&l);
    }
  }
  if (covered != 16384) {
    co_return Inconsistent("only " + std::to_string(covered) + " of 16384 slots are served");
  }
  std::sort(masters.begin(), masters.end(), [](const ClusterNodeLine* a, const ClusterNodeLine* b) {
    return a->slots.front().first < b->slots.front().first;
  });
  // The view every node must share: who is primary, which slots each primary serves, and whose
  // replica each node is. (A slot a node gave up with CLUSTER DELSLOTS stays assigned in the
  // other nodes' views, so only comparing every view finds it.)
  auto signature = [](const std::vector<ClusterNodeLine>& ls) {
    std::vector<std::string> parts;
    for (const ClusterNodeLine& l : ls) {
      parts.push_back(l.id + (l.flags.count("master") ? " master " + SlotRangesText(l.slots)
                                                      : " of " + l.master_id));
    }
    std::sort(parts.begin(), parts.end());
    std::string s;
    for (const std::string& p : parts) s += p + ";";
    return s;
  };
  const std::string view = signature(*lines);
  for (size_t i = 0; i < masters.size(); ++i) {
    const ClusterNodeLine* m = masters[i];
    GroupShard shard;
    shard.node_group_id = Pad(i + 1, 4);
    shard.slots = m->slots;
    const NodeAddress primary_address{m->host, m->port};
    shard.primary = co_await Attach(primary_address);
    if (shard.primary == nullptr) co_return false;
    shard.primary->cluster_node_id = m->id;
    for (const ClusterNodeLine& l : *lines) {
      if (l.master_id != m->id) continue;
      const NodeAddress address{l.host, l.port};
      GroupNode* r = co_await Attach(address);
      if (r == nullptr) co_return false;
      r->cluster_node_id = l.id;
      if (r->primary || !SameAddress(shard.primary->address, r->master_host, r->master_port)) {
        co_return Inconsistent(
            "members disagree about who is primary: CLUSTER NODES makes " + r->address.ToString() +
            " a replica of " + shard.primary->address.ToString() + ", but its INFO says " +
            (r->primary ? std::string("role master")
                        : "it follows " + r->master_host + ":" + std::to_string(r->master_port)));
      }
      if (!r->link_up) {
        co_return Inconsistent("replica " + r->address.ToString() +
                               " has its link to the primary down");
      }
      shard.replicas.push_back(r);
    }
    if (!shard.primary->primary) {
      co_return Inconsistent("CLUSTER NODES makes " + shard.primary->address.ToString() +
                             " a primary, but its INFO says role " + shard.primary->facts.role);
    }
    std::sort(shard.replicas.begin(), shard.replicas.end(), AddressLess);
    shard.members = shard.replicas;
    shard.members.push_back(shard.primary);
    std::sort(shard.members.begin(), shard.members.end(), AddressLess);
    topology_.shards.push_back(std::move(shard));
  }
  for (const ClusterNodeLine& l : *lines) {
    if (l.flags.count("slave") &&
        std::none_of(masters.begin(), masters.end(),
                     [&](const ClusterNodeLine* m) { return m->id == l.master_id; })) {
      co_return Inconsistent("replica " + l.host + ":" + std::to_string(l.port) + " follows " +
                             l.master_id + ", which is not a primary");
    }
  }
  // Every member must see the same cluster, and see it healthy.
  for (auto& n : topology_.nodes) {
    if (n.get() == seed) continue;
    CommandOutcome r = co_await n->client->Command(Argv("CLUSTER", "NODES"));
    if (Denied(r, Argv("CLUSTER", "NODES"), n->address.ToString())) co_return false;
    const bool same = r.ok() && [&] {
      Expected<std::vector<ClusterNodeLine>> other = ParseClusterNodes(r.reply.str);
      return other.ok() && signature(*other) == view;
    }();
    if (!same) {
      co_return Inconsistent("members disagree about the cluster: " + n->address.ToString() +
                             " and " + seed->address.ToString() +
                             " have different CLUSTER NODES views (primaries, slots, replicas)");
    }
    CommandOutcome info = co_await n->client->Command(Argv("CLUSTER", "INFO"));
    if (Denied(info, Argv("CLUSTER", "INFO"), n->address.ToString())) co_return false;
    const std::string state = info.ok() ? Field(ParseInfo(info.reply.str), "cluster_state") : "";
    if (state != "ok") {
      co_return Inconsistent("cluster_state on " + n->address.ToString() + " is " +
                             (info.ok() ? state : info.Error()) + ", not ok");
    }
  }
  size_t replicas = 0;
  for (const GroupShard& s : topology_.shards) replicas += s.replicas.size();
  topology_.topology_evidence = "Redis Cluster: " + std::to_string(topology_.shards.size()) +
                                " shard(s), " + std::to_string(replicas) +
                                " replica(s), all 16384 slots served, cluster_state ok, " +
                                "every node's CLUSTER NODES and INFO agree, every link up";
  NameMembers();
  co_return true;
}

}  // namespace finalsnap::detail::discovery
