// preflight: target-resolved -> topology-consistent -> (permissions.cc, claim.cc) ->
// snapshot-name-free -> storage-ready.
// Nothing on a node changes here; the partial snapshot directory is created (the name claimed)
// so that its fsyncs never lengthen the pause.
#include "operation.h"

namespace finalsnap::ops {

using std::chrono::milliseconds;

// target-resolved: every node (and sentinel) answers, with AUTH if configured.
Task<Verdict> Operation::ResolveTarget() {
  const NodeSettings& settings = target_.settings();
  const ResolvedSecret password = ResolvePassword(settings);
  if (!password.ok()) co_return Refuse("InvalidParameterValue", password.error().message());
  detail::DiscoveryRequest request;
  if (target_.kind == Target::Kind::kCacheCluster) {
    request.endpoints.push_back(target_.cluster->endpoint);
  } else {
    request.group_id = target_.group->id;
    request.endpoints = target_.group->endpoints;
    request.sentinels = target_.group->sentinels;
    request.master_name = target_.group->master_name;
  }
  request.auth = detail::NodeAuth{settings.username, *password};
  request.timeouts = detail::NodeTimeouts{milliseconds(settings.connect_timeout_ms),
                                          milliseconds(settings.command_timeout_ms)};
  topology_ = co_await detail::Discover(loop_, request);
  if (!topology_.denied.empty()) {
    // A command discovery needs was refused by the ACL: that is the cause, said as such (not
    // "no replicas" for a ROLE that was refused). The permissions gate owns every NOPERM.
    co_return RefuseGate("permissions", target_.StateFault(),
                         topology_.denied + ", needed to discover the " +
                             (topology_.is_group ? "group" : "node") +
                             "; nothing was changed on any node");
  }
  if (!topology_.unreachable.empty()) {
    co_return Refuse(target_.StateFault(),
                     target_.Noun() + " is not reachable: " + topology_.unreachable,
                     topology_.unreachable);
  }
  std::string evidence;
  for (const auto& n : topology_.nodes) {
    if (!evidence.empty()) evidence += "; ";
    evidence +=
        n->facts.engine + " " + n->facts.version + " at " + n->address.ToString() + " answered";
  }
  if (request.auth.password) {
    evidence +=
        " (AUTH" + (request.auth.username.empty() ? "" : " as " + request.auth.username) + ")";
  }
  if (!topology_.sentinels.empty()) {
    evidence += "; discovered through " + std::to_string(topology_.sentinels.size()) +
                " sentinel(s) for " + target_.group->master_name;
  }
  if (topology_.nodes.size() == 1) {
    evidence += "; used_memory " + std::to_string(topology_.nodes[0]->facts.used_memory);
  }
  Pass(evidence);
  co_return std::nullopt;
}

// topology-consistent: roles agree, and the operation fits what was found.
Task<Verdict> Operation::CheckTopology() {
  if (!topology_.inconsistent.empty()) {
    co_return Refuse(target_.StateFault(), topology_.inconsistent);
  }
  if (Verdict r = ChooseSources()) co_return r;
  std::string evidence = topology_.topology_evidence;
  if (member_ != nullptr) {
    evidence += "; " + member_->cache_cluster_id + " is " + member_->address.ToString() + " (" +
                (member_->primary ? "primary" : "replica") + ")";
  }
  if (options_.snapshot_from_replica && snapshot_name_ && member_ == nullptr) {
    evidence += "; snapshots from replicas";
    for (const auto& run : runs_) evidence += " " + run->source->address.ToString();
  }
  Pass(evidence);
  co_return std::nullopt;
}

// The second half of topology-consistent: the operation fits the topology found. Chooses each
// shard's source and the nodes a destroy shuts down.
Verdict Operation::ChooseSources() {
  if (target_.kind == Target::Kind::kMember) {
    member_ = topology_.FindMember(target_.id);
    if (member_ == nullptr) {
      std::string ids;
      for (const auto& n : topology_.nodes) ids += (ids.empty() ? "" : ", ") + n->cache_cluster_id;
      return Refuse("CacheClusterNotFound", "CacheCluster " + target_.id + " not found.",
                    "replication group " + target_.group->id + " has no member " + target_.id +
                        " (members: " + ids + ")");
    }
    result_.cluster.cache_cluster_id = member_->cache_cluster_id;
    if (Destroys()) {
      const GroupShard* shard = topology_.ShardOf(member_);
      if (topology_.cluster_enabled) {
        return Refuse("InvalidCacheClusterState",
                      member_->cache_cluster_id + " is a member of a Redis Cluster replication "
                      "group; delete-replication-group removes the group");
      }
      if (member_->primary) {
        return Refuse("InvalidCacheClusterState",
                      member_->cache_cluster_id + " is the primary of replication group " +
                          target_.group->id + "; delete-replication-group removes the group");
      }
      if (shard->replicas.size() <= 1) {
        return Refuse("InvalidCacheClusterState", member_->cache_cluster_id +
                                                      " is the last replica of replication group " +
                                                      target_.group->id);
      }
    }
  }
  if (finish_ == Finish::kRetainPrimary && topology_.shards.size() > 1) {
    return Refuse("InvalidParameterCombination",
                  "RetainPrimaryCluster applies to a group with one shard; " + target_.group->id +
                      " has " + std::to_string(topology_.shards.size()));
  }
  for (GroupShard& shard : topology_.shards) {
    auto run = std::make_unique<ShardRun>(loop_);
    run->shard = &shard;
    run->source = shard.primary;
    if (member_ != nullptr) {
      if (topology_.ShardOf(member_) != &shard) continue;
      // A member's own snapshot comes from that member; removing a replica snapshots the group.
      if (finish_ == Finish::kKeep) run->source = member_;
    } else if (options_.snapshot_from_replica && snapshot_name_) {
      if (shard.replicas.empty()) {
        return Refuse(target_.StateFault(),
                      "shard " + shard.node_group_id + " has no replica to take the snapshot from");
      }
      run->source = shard.replicas.front();
    }
    runs_.push_back(std::move(run));
  }
  switch (finish_) {
    case Finish::kKeep:
      break;
    case Finish::kRemoveMember:
      destroy_order_.push_back(member_);
      break;
    case Finish::kDestroyAll:
    case Finish::kRetainPrimary:
      for (GroupShard& s : topology_.shards) {
        for (GroupNode* r : s.replicas) destroy_order_.push_back(r);
      }
      if (finish_ == Finish::kDestroyAll) {
        for (GroupShard& s : topology_.shards) destroy_order_.push_back(s.primary);
      }
      break;
  }
  return std::nullopt;
}

// snapshot-name-free: a valid name nobody has taken, claimed for this operation.
Task<Verdict> Operation::ClaimName() {
  const std::string& name = *snapshot_name_;
  if (Status s = CheckSnapshotName(name); !s.ok()) {
    co_return Refuse("InvalidParameterValue", "snapshot name '" + name + "': " + s.message(),
                     s.message());
  }
  if (Status local = CheckLocalStorage(fleet_.storage); !local.ok()) {
    co_return RefuseGate("storage-ready", "InvalidParameterValue", local.message());
  }
  Expected<SnapshotStore> opened = SnapshotStore::Open(fleet_.storage.path);
  if (!opened.ok()) {
    // Without a store no name can be checked: the storage is what refuses.
    co_return RefuseGate("storage-ready", "InvalidParameterValue", opened.error().message());
  }
  store_.emplace(*std::move(opened));
  if (store_->Exists(name)) {
    co_return Refuse("SnapshotAlreadyExistsFault", "Snapshot " + name + " already exists.",
                     "a snapshot named " + name + " exists in " + store_->root().string());
  }
  // The name is free only once it is ours: the partial directory claims it under the store's
  // lock, so two operations racing for one name cannot both pass. (A dry run only looks.)
  if (!options_.dry_run) {
    if (Verdict r = BeginSnapshot()) co_return r;
  }
  Pass("no snapshot named " + name +
       (writer_ ? "; claimed by " + writer_->dir().filename().string() : ""));
  co_return std::nullopt;
}

// Creates the partial snapshot directory and one file per shard, claiming the name.
Verdict Operation::BeginSnapshot() {
  Snapshot initial;
  initial.snapshot_name = *snapshot_name_;
  if (target_.kind == Target::Kind::kCacheCluster) {
    initial.cache_cluster_id = target_.cluster->id;
  } else {
    initial.replication_group_id = target_.group->id;
    if (target_.kind == Target::Kind::kMember && finish_ == Finish::kKeep) {
      initial.cache_cluster_id = member_->cache_cluster_id;
    }
  }
  initial.engine = topology_.shards[0].primary->facts.engine;
  initial.engine_version = topology_.shards[0].primary->facts.version;
  initial.num_node_groups = static_cast<int>(runs_.size());
  switch (finish_) {
    case Finish::kKeep:
      break;
    case Finish::kDestroyAll:
    case Finish::kRetainPrimary:
      initial.final_snapshot_of =
          target_.kind == Target::Kind::kGroup ? "delete-replication-group" : "delete-cache-cluster";
      break;
    case Finish::kRemoveMember:
      initial.final_snapshot_of = "delete-cache-cluster";
      break;
  }
  manifest_ = initial;
  Expected<std::unique_ptr<SnapshotWriter>> begun = store_->Begin(initial);
  if (!begun.ok()) {
    const std::string& error = begun.error().message();
    if (store_->Exists(*snapshot_name_)) {
      // Another operation took the name since the check: the store's lock decided the race.
      return Refuse("SnapshotAlreadyExistsFault",
                    "Snapshot " + *snapshot_name_ + " already exists.", error);
    }
    return RefuseGate("storage-ready", "InvalidParameterValue", error);
  }
  writer_ = *std::move(begun);
  for (auto& run : runs_) {
    run->file = FileFor(*run->shard);
    Expected<int> created = writer_->CreateFile(run->file);
    if (!created.ok()) {
      return RefuseGate("storage-ready", "InvalidSnapshotState", created.error().message());
    }
    run->fd = *created;
  }
  return std::nullopt;
}

// storage-ready: writable, with room for the snapshot (the dataset's size in memory is an upper
// bound for its RDB; a compressed copy is smaller still).
Task<Verdict> Operation::CheckStorage() {
  if (Status s = store_->CheckWritable(); !s.ok()) {
    co_return Refuse("InvalidParameterValue", "snapshot storage is not writable: " + s.message(),
                     s.message());
  }
  uint64_t used = 0;
  for (const auto& run : runs_) used += run->source->facts.used_memory;
  const uint64_t estimate = fleet_.storage.compression == Compression::kNone ? used : used / 2;
  const uint64_t free_bytes = store_->FreeBytes();
  if (free_bytes < estimate) {
    const std::string why = std::to_string(free_bytes) + " bytes free in " +
                            store_->root().string() + ", " + std::to_string(estimate) +
                            " estimated for the snapshot";
    co_return Refuse("InvalidParameterValue", "not enough room: " + why, why);
  }
  Pass(store_->root().string() + " writable, " + std::to_string(free_bytes) +
       " bytes free for an estimated " + std::to_string(estimate));
  co_return std::nullopt;
}

}  // namespace finalsnap::ops
