// describe-cache-clusters and describe-replication-groups: every entry of the fleet asked for
// at once on one loop, each node bounded by its own timeouts.
#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap {

using detail::Argv;
using detail::CommandOutcome;
using detail::Loop;
using detail::NodeAddress;
using detail::NodeAuth;
using detail::NodeClient;
using detail::NodeTimeouts;
using detail::ServerFacts;
using detail::Task;
using std::chrono::milliseconds;

namespace ops {

ReplicationGroupInfo GroupInfoOf(const std::string& group_id, const detail::Topology& t) {
  ReplicationGroupInfo g;
  g.replication_group_id = group_id;
  g.cluster_enabled = t.cluster_enabled;
  g.discovered_via = t.discovered_via;
  if (!t.unreachable.empty() || !t.inconsistent.empty()) {
    g.status = t.unreachable.empty() ? "inconsistent" : "unreachable";
    g.error = t.unreachable.empty() ? t.inconsistent : t.unreachable;
  } else {
    g.status = "available";
  }
  for (const detail::GroupShard& s : t.shards) {
    NodeGroupInfo ng;
    ng.node_group_id = s.node_group_id;
    ng.status = "available";
    ng.slot_ranges = s.slots;
    ng.slots = SlotRangesText(s.slots);
    for (const detail::GroupNode* n : s.members) {
      GroupMember m;
      m.cache_cluster_id = n->cache_cluster_id;
      m.endpoint = n->address.ToString();
      m.current_role = n->primary ? "primary" : "replica";
      m.status = n->facts.rdb_bgsave_in_progress ? "snapshotting" : "available";
      m.repl_offset = n->primary ? n->facts.master_repl_offset : n->applied_offset;
      m.used_memory = n->facts.used_memory;
      m.link = n->primary ? "" : (n->link_up ? "up" : "down");
      ng.members.push_back(std::move(m));
    }
    if (g.engine.empty()) {
      g.engine = s.primary->facts.engine;
      g.engine_version = s.primary->facts.version;
    }
    g.node_groups.push_back(std::move(ng));
  }
  if (g.engine.empty() && !t.nodes.empty()) {  // an inconsistent group still says what it runs
    g.engine = t.nodes[0]->facts.engine;
    g.engine_version = t.nodes[0]->facts.version;
  }
  return g;
}

}  // namespace ops

namespace {

detail::DiscoveryRequest RequestFor(const NodeSettings& settings, const ResolvedSecret& password) {
  detail::DiscoveryRequest r;
  r.auth = NodeAuth{settings.username, *password};
  r.timeouts = NodeTimeouts{milliseconds(settings.connect_timeout_ms),
                            milliseconds(settings.command_timeout_ms)};
  return r;
}

Task<std::vector<CacheClusterInfo>> DescribeCluster(Loop& loop, const CacheClusterEntry& entry) {
  CacheClusterInfo info;
  info.cache_cluster_id = entry.id;
  info.endpoint = entry.endpoint.ToString();
  info.capture = std::string(CaptureModeName(entry.settings.capture));
  const ResolvedSecret password = ResolvePassword(entry.settings);
  std::vector<CacheClusterInfo> out;
  if (!password.ok()) {
    info.status = "unreachable";
    info.error = password.error().message();
    out.push_back(info);
    co_return out;
  }
  NodeClient node(loop, NodeAddress{entry.endpoint.host, entry.endpoint.port},
                  NodeAuth{entry.settings.username, *password},
                  NodeTimeouts{milliseconds(entry.settings.connect_timeout_ms),
                               milliseconds(entry.settings.command_timeout_ms)});
  CommandOutcome r;
  if (Status s = co_await node.Connect(); !s.ok()) {
    r.status = s;
  } else {
    r = co_await node.Command(Argv("INFO", "all"));
  }
  if (!r.ok()) {
    info.status = "unreachable";
    info.error = r.Error();
    out.push_back(info);
    co_return out;
  }
  const ServerFacts f = detail::ParseServerFacts(detail::ParseInfo(r.reply.str));
  info.status = f.rdb_bgsave_in_progress ? "snapshotting" : "available";
  info.engine = f.engine;
  info.engine_version = f.version;
  info.role = f.role;
  info.used_memory = f.used_memory;
  out.push_back(info);
  co_return out;
}

Task<std::vector<ReplicationGroupInfo>> DescribeGroup(Loop& loop,
                                                      const ReplicationGroupEntry& entry) {
  std::vector<ReplicationGroupInfo> out;
  const ResolvedSecret password = ResolvePassword(entry.settings);
  if (!password.ok()) {
    ReplicationGroupInfo g;
    g.replication_group_id = entry.id;
    g.status = "unreachable";
    g.error = password.error().message();
    out.push_back(std::move(g));
    co_return out;
  }
  detail::DiscoveryRequest request = RequestFor(entry.settings, password);
  request.group_id = entry.id;
  request.endpoints = entry.endpoints;
  request.sentinels = entry.sentinels;
  request.master_name = entry.master_name;
  detail::Topology t = co_await detail::Discover(loop, request);
  out.push_back(ops::GroupInfoOf(entry.id, t));
  co_return out;
}

// Runs one describe task per entry concurrently and concatenates their results in order.
template <typename T>
Task<std::vector<T>> Gather(std::vector<Task<std::vector<T>>> tasks) {
  detail::WhenAll<std::vector<T>> all(std::move(tasks));
  std::vector<std::vector<T>> parts = co_await all;
  std::vector<T> out;
  for (auto& p : parts) {
    for (auto& x : p) out.push_back(std::move(x));
  }
  co_return out;
}

// What the storage's journals say of the fleet's targets, by lower-case id: "deleting" for a
// delete under way (in any process using this storage) or pending after an interruption,
// "snapshotting" for a create-snapshot under way.
struct JournalStatuses {
  std::map<std::string, std::string> clusters;
  std::map<std::string, std::string> groups;

  explicit JournalStatuses(const Fleet& fleet) {
    for (const ops::FoundJournal& f : ops::ScanJournals(fleet.storage.path)) {
      if (!f.state.ok()) continue;
      const ops::JournalState& j = *f.state;
      std::string status;
      if (f.running) {
        status = j.Destroys() ? "deleting" : "snapshotting";
      } else if (j.PendingDelete()) {
        status = "deleting";
      } else {
        continue;
      }
      (j.target_kind == "group" ? groups : clusters)[Lower(j.target)] = status;
    }
  }
  // The status of a cache cluster (a member: `group` is its group's id), or "".
  std::string Of(const std::string& id, const std::string& group = "") const {
    if (auto it = clusters.find(Lower(id)); it != clusters.end()) return it->second;
    if (auto it = groups.find(Lower(group)); !group.empty() && it != groups.end()) {
      return it->second;
    }
    return "";
  }
};

}  // namespace

std::vector<CacheClusterInfo> DescribeCacheClusters(const Fleet& fleet,
                                                    std::optional<std::string_view> id) {
  Loop loop;
  std::vector<Task<std::vector<CacheClusterInfo>>> clusters;
  for (const CacheClusterEntry& e : fleet.cache_clusters) {
    if (!id || fleet.FindCacheCluster(*id) == &e) clusters.push_back(DescribeCluster(loop, e));
  }
  std::vector<CacheClusterInfo> out = detail::RunToCompletion(loop, Gather(std::move(clusters)));
  // Members of replication groups are cache clusters too.
  std::vector<Task<std::vector<ReplicationGroupInfo>>> groups;
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    std::optional<ops::Target> t = id ? ops::ResolveCacheCluster(fleet, *id) : std::nullopt;
    if (!id || (t && t->group == &g)) groups.push_back(DescribeGroup(loop, g));
  }
  for (const ReplicationGroupInfo& g :
       detail::RunToCompletion(loop, Gather(std::move(groups)))) {
    for (const NodeGroupInfo& ng : g.node_groups) {
      for (const GroupMember& m : ng.members) {
        if (id && !EqualsIgnoreCase(*id, m.cache_cluster_id)) continue;
        CacheClusterInfo info;
        info.cache_cluster_id = m.cache_cluster_id;
        info.replication_group_id = g.replication_group_id;
        info.status = m.status;
        info.engine = g.engine;
        info.engine_version = g.engine_version;
        info.endpoint = m.endpoint;
        info.role = m.current_role == "primary" ? "master" : "slave";
        info.used_memory = m.used_memory;
        if (const ReplicationGroupEntry* e = fleet.FindReplicationGroup(g.replication_group_id)) {
          info.capture = std::string(CaptureModeName(e->settings.capture));
        }
        out.push_back(std::move(info));
      }
    }
  }
  const JournalStatuses journals(fleet);
  for (CacheClusterInfo& info : out) {
    if (std::string s = journals.Of(info.cache_cluster_id, info.replication_group_id); !s.empty()) {
      info.status = s;
    }
  }
  return out;
}

std::vector<ReplicationGroupInfo> DescribeReplicationGroups(const Fleet& fleet,
                                                            std::optional<std::string_view> id) {
  Loop loop;
  std::vector<Task<std::vector<ReplicationGroupInfo>>> groups;
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    if (!id || fleet.FindReplicationGroup(*id) == &g) groups.push_back(DescribeGroup(loop, g));
  }
  std::vector<ReplicationGroupInfo> out = detail::RunToCompletion(loop, Gather(std::move(groups)));
  const JournalStatuses journals(fleet);
  for (ReplicationGroupInfo& g : out) {
    if (std::string s = journals.Of("", g.replication_group_id); !s.empty()) g.status = s;
    for (NodeGroupInfo& ng : g.node_groups) {
      for (GroupMember& m : ng.members) {
        if (std::string s = journals.Of(m.cache_cluster_id, g.replication_group_id); !s.empty()) {
          m.status = s;
        }
      }
    }
  }
  return out;
}

}  // namespace finalsnap


