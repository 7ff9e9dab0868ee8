// The actions that change something (api_service.h): DeleteCacheCluster, DeleteReplicationGroup
// and CreateSnapshot check their target and start an operation on its own thread, answering at
// once with the target "deleting" (or the snapshot "creating"), as ElastiCache does; DeleteSnapshot
// deletes a stored snapshot before it answers.
#include <string>
#include <utility>

#include "api_service.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"

namespace finalsnap::detail {

ApiService::Result ApiService::DeleteCacheCluster(const ActionArgs& args,
                                                  const RequestContext& request) {
  const std::string& id = args.Required("CacheClusterId");
  const std::optional<std::string> final_snapshot =
      args.Get<std::string>("FinalSnapshotIdentifier");

  const CacheClusterEntry* entry = fleet_.FindCacheCluster(id);
  if (entry == nullptr) {
    // A member of a replication group is a cache cluster too, but it goes with its group.
    for (const CacheClusterInfo& member : finalsnap::DescribeCacheClusters(fleet_, id)) {
      if (!member.replication_group_id.empty() && IdEquals(member.cache_cluster_id, id)) {
        return ApiError::Of("InvalidCacheClusterState",
                            "Cache cluster " + member.cache_cluster_id +
                                " is a member of replication group " + member.replication_group_id +
                                "; delete the replication group instead.");
      }
    }
    return ApiError::Of("CacheClusterNotFound", "CacheCluster " + id + " not found.");
  }
  const std::string identity = entry->endpoint.ToString();
  if (state_->IsDeleted(kSourceCacheCluster, entry->id, identity)) {
    return ApiError::Of("CacheClusterNotFound", "CacheCluster " + id + " not found.");
  }
  if (final_snapshot) {
    if (Expected<void, ApiError> e = CheckNewSnapshotName(*final_snapshot); !e.ok())
      return e.error();
  }
  // What the cluster is now, for the answer (and for describes once the node is gone).
  CacheClusterInfo info;
  info.cache_cluster_id = entry->id;
  info.endpoint = identity;
  for (const CacheClusterInfo& live : finalsnap::DescribeCacheClusters(fleet_, entry->id))
    info = live;

  ApiOperation op;
  op.action = "DeleteCacheCluster";
  op.source_type = kSourceCacheCluster;
  op.target_id = entry->id;
  op.identity = identity;
  op.snapshot_name = final_snapshot.value_or("");
  op.engine = info.engine;
  op.engine_version = info.engine_version;
  op.request_id = request.request_id;
  const std::string event =
      "DeleteCacheCluster accepted for cache cluster " + entry->id + " at " + identity +
      (final_snapshot ? " with final snapshot " + *final_snapshot
                      : std::string(" without a final snapshot")) +
      " (request " + request.request_id + ", key " + request.caller.access_key_id + ")";
  if (Expected<void, ApiError> e = Start(std::move(op), event); !e.ok()) return e.error();
  ModelJson result;
  result["CacheCluster"] = CacheClusterShape(info, "deleting", /*show_cache_nodes=*/false);
  return result;
}

ApiService::Result ApiService::DeleteReplicationGroup(const ActionArgs& args,
                                                      const RequestContext& request) {
  const std::string& id = args.Required("ReplicationGroupId");
  const bool retain = args.Get<bool>("RetainPrimaryCluster").value_or(false);
  const std::optional<std::string> final_snapshot =
      args.Get<std::string>("FinalSnapshotIdentifier");

  const ReplicationGroupEntry* entry = fleet_.FindReplicationGroup(id);
  const std::string not_found = "ReplicationGroup " + id + " not found.";
  if (entry == nullptr) return ApiError::Of("ReplicationGroupNotFoundFault", not_found);
  const std::string identity = GroupIdentity(*entry);
  if (state_->IsDeleted(kSourceReplicationGroup, entry->id, identity)) {
    return ApiError::Of("ReplicationGroupNotFoundFault", not_found);
  }
  if (final_snapshot) {
    if (Expected<void, ApiError> e = CheckNewSnapshotName(*final_snapshot); !e.ok())
      return e.error();
  }
  const ReplicationGroupInfo info = DescribeGroup(*entry);
  if (retain && info.node_groups.size() > 1) {
    return ApiError::Of("InvalidParameterCombination",
                        "RetainPrimaryCluster is not allowed for a replication group with more "
                        "than one node group (" +
                            std::to_string(info.node_groups.size()) + ").");
  }
  ApiOperation op;
  op.action = "DeleteReplicationGroup";
  op.source_type = kSourceReplicationGroup;
  op.target_id = entry->id;
  op.identity = identity;
  op.snapshot_name = final_snapshot.value_or("");
  op.retain_primary_cluster = retain;
  op.engine = info.engine;
  op.engine_version = info.engine_version;
  op.request_id = request.request_id;
  const std::string event = "DeleteReplicationGroup accepted for replication group " + entry->id +
                            (final_snapshot ? " with final snapshot " + *final_snapshot
                                            : std::string(" without a final snapshot")) +
                            (retain ? ", retaining the primary cluster" : "") + " (request " +
                            request.request_id + ", key " + request.caller.access_key_id + ")";
  if (Expected<void, ApiError> e = Start(std::move(op), event); !e.ok()) return e.error();
  ModelJson result;
  result["ReplicationGroup"] = ReplicationGroupShape(info, "deleting");
  return result;
}

ApiService::Result ApiService::CreateSnapshot(const ActionArgs& args,
                                              const RequestContext& request) {
  const std::string& name = args.Required("SnapshotName");
  const std::optional<std::string> cluster_id = args.Get<std::string>("CacheClusterId");
  const std::optional<std::string> group_id = args.Get<std::string>("ReplicationGroupId");
  if (cluster_id.has_value() == group_id.has_value()) {
    return ApiError::Of("InvalidParameterCombination",
                        "Exactly one of CacheClusterId and ReplicationGroupId must be given.");
  }
  if (Expected<void, ApiError> e = CheckNewSnapshotName(name); !e.ok()) return e.error();

  ApiOperation op;
  op.action = "CreateSnapshot";
  op.snapshot_name = name;
  op.request_id = request.request_id;
  Snapshot placeholder;
  placeholder.snapshot_name = name;
  placeholder.snapshot_status = "creating";
  if (cluster_id) {
    const CacheClusterEntry* entry = fleet_.FindCacheCluster(*cluster_id);
    if (entry == nullptr ||
        state_->IsDeleted(kSourceCacheCluster, entry->id, entry->endpoint.ToString())) {
      return ApiError::Of("CacheClusterNotFound", "CacheCluster " + *cluster_id + " not found.");
    }
    CacheClusterInfo info;
    for (const CacheClusterInfo& live : finalsnap::DescribeCacheClusters(fleet_, entry->id)) {
      info = live;
    }
    op.source_type = kSourceCacheCluster;
    op.target_id = entry->id;
    op.identity = entry->endpoint.ToString();
    op.engine = info.engine;
    op.engine_version = info.engine_version;
    placeholder.cache_cluster_id = entry->id;
  } else {
    const ReplicationGroupEntry* entry = fleet_.FindReplicationGroup(*group_id);
    if (entry == nullptr ||
        state_->IsDeleted(kSourceReplicationGroup, entry->id, GroupIdentity(*entry))) {
      return ApiError::Of("ReplicationGroupNotFoundFault",
                          "ReplicationGroup " + *group_id + " not found.");
    }
    const ReplicationGroupInfo info = DescribeGroup(*entry);
    op.source_type = kSourceReplicationGroup;
    op.target_id = entry->id;
    op.identity = GroupIdentity(*entry);
    op.engine = info.engine;
    op.engine_version = info.engine_version;
    placeholder.replication_group_id = entry->id;
    placeholder.num_node_groups = static_cast<int>(info.node_groups.size());
  }
  placeholder.engine = op.engine;
  placeholder.engine_version = op.engine_version;
  const std::string event = "CreateSnapshot " + name + " accepted for " +
                            (cluster_id ? "cache cluster " : "replication group ") + op.target_id +
                            " (request " + request.request_id + ", key " +
                            request.caller.access_key_id + ")";
  if (Expected<void, ApiError> e = Start(std::move(op), event); !e.ok()) return e.error();
  ModelJson result;
  result["Snapshot"] = SnapshotShape(placeholder, false);
  return result;
}

ApiService::Result ApiService::DeleteSnapshot(const ActionArgs& args,
                                              const RequestContext& request) {
  const std::string& name = args.Required("SnapshotName");
  if (std::optional<ApiOperation> op = state_->RunningForSnapshot(name)) {
    return ApiError::Of("InvalidSnapshotState",
                        "Snapshot " + op->snapshot_name + " is not in available state (creating).");
  }
  SnapshotDeletion deletion = DeleteStoredSnapshot(fleet_.storage.path, name);
  if (!deletion.ok()) return ApiError::Of(deletion.fault, deletion.message);
  const Snapshot& s = *deletion.snapshot;
  const bool of_cluster = !s.cache_cluster_id.empty();
  if (of_cluster || !s.replication_group_id.empty()) {
    state_->AddEvent(
        of_cluster ? kSourceCacheCluster : kSourceReplicationGroup,
        of_cluster ? s.cache_cluster_id : s.replication_group_id,
        "Snapshot " + s.snapshot_name + " deleted (key " + request.caller.access_key_id + ").");
  }
  ModelJson result;
  result["Snapshot"] = SnapshotShape(s, false);
  return result;
}

}  // namespace finalsnap::detail
