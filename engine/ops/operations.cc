// The public operations of engine.h: each resolves its target in the fleet file and runs one
// ops::Operation (operation.h) with what it does once the snapshot is proven.
#include <algorithm>

#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap {

namespace ops {

// A cache cluster id: a standalone node of the fleet file, or a member of one of its groups
// ("<group>-002", "<group>-0001-002"); nullopt if it is neither.
std::optional<Target> ResolveCacheCluster(const Fleet& fleet, std::string_view id) {
  Target t;
  t.id = std::string(id);
  if (const CacheClusterEntry* e = fleet.FindCacheCluster(id)) {
    t.kind = Target::Kind::kCacheCluster;
    t.cluster = e;
    return t;
  }
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    if (id.size() <= g.id.size() + 1 || !EqualsIgnoreCase(id.substr(0, g.id.size()), g.id) ||
        id[g.id.size()] != '-') {
      continue;
    }
    const std::string_view rest = id.substr(g.id.size() + 1);
    auto digits = [](std::string_view s) {
      return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    const bool one_shard = rest.size() == 3 && digits(rest);
    const bool sharded = rest.size() == 8 && rest[4] == '-' && digits(rest.substr(0, 4)) &&
                         digits(rest.substr(5));
    if (!one_shard && !sharded) continue;
    t.kind = Target::Kind::kMember;
    t.group = &g;
    return t;
  }
  return std::nullopt;
}

}  // namespace ops

namespace {

using ops::Finish;
using ops::Operation;
using ops::ResolveCacheCluster;
using ops::Target;

OperationResult Fault(std::string fault, std::string message, std::string_view id) {
  OperationResult r;
  r.fault = std::move(fault);
  r.message = std::move(message);
  r.cluster.cache_cluster_id = std::string(id);
  return r;
}

OperationResult CacheClusterNotFound(std::string_view id) {
  return Fault("CacheClusterNotFound", "CacheCluster " + std::string(id) + " not found.", id);
}

OperationResult ReplicationGroupNotFound(std::string_view id) {
  OperationResult r = Fault("ReplicationGroupNotFoundFault",
                            "ReplicationGroup " + std::string(id) + " not found.", "");
  return r;
}

// Runs the operation on the cache cluster `id` (standalone, or a member of a group).
OperationResult OnCacheCluster(const Fleet& fleet, std::string_view id, Finish finish,
                               std::optional<std::string> snapshot,
                               const OperationOptions& options) {
  std::optional<Target> target = ResolveCacheCluster(fleet, id);
  if (!target) return CacheClusterNotFound(id);
  // Deleting a member removes that replica only.
  if (finish == Finish::kDestroyAll && target->kind == Target::Kind::kMember) {
    finish = Finish::kRemoveMember;
  }
  Operation op(fleet, std::move(*target), options);
  return op.Run(finish, std::move(snapshot));
}

// Runs the operation on the whole replication group `id`.
OperationResult OnReplicationGroup(const Fleet& fleet, std::string_view id, Finish finish,
                                   std::optional<std::string> snapshot,
                                   const OperationOptions& options) {
  const ReplicationGroupEntry* group = fleet.FindReplicationGroup(id);
  if (group == nullptr) return ReplicationGroupNotFound(id);
  Target target;
  target.kind = Target::Kind::kGroup;
  target.id = group->id;
  target.group = group;
  Operation op(fleet, std::move(target), options);
  return op.Run(finish, std::move(snapshot));
}

}  // namespace

std::vector<std::string> ReplicationGroupInfo::MemberClusters() const {
  std::vector<std::string> ids;
  for (const NodeGroupInfo& g : node_groups) {
    for (const GroupMember& m : g.members) ids.push_back(m.cache_cluster_id);
  }
  return ids;
}

OperationResult DeleteCacheCluster(const Fleet& fleet, std::string_view cache_cluster_id,
                                   const std::optional<std::string>& final_snapshot,
                                   const OperationOptions& options) {
  return OnCacheCluster(fleet, cache_cluster_id, Finish::kDestroyAll, final_snapshot, options);
}

OperationResult CreateSnapshot(const Fleet& fleet, std::string_view cache_cluster_id,
                               const std::string& snapshot_name,
                               const OperationOptions& options) {
  return OnCacheCluster(fleet, cache_cluster_id, Finish::kKeep, snapshot_name, options);
}

OperationResult DeleteReplicationGroup(const Fleet& fleet, std::string_view replication_group_id,
                                       const std::optional<std::string>& final_snapshot,
                                       bool retain_primary_cluster,
                                       const OperationOptions& options) {
  return OnReplicationGroup(fleet, replication_group_id,
                            retain_primary_cluster ? Finish::kRetainPrimary : Finish::kDestroyAll,
                            final_snapshot, options);
}

OperationResult CreateReplicationGroupSnapshot(const Fleet& fleet,
                                               std::string_view replication_group_id,
                                               const std::string& snapshot_name,
                                               const OperationOptions& options) {
  return OnReplicationGroup(fleet, replication_group_id, Finish::kKeep, snapshot_name, options);
}

}  // namespace finalsnap
