// The actions that only look (api_service.h): DescribeSnapshots (storage, plus the snapshots of
// running operations), DescribeCacheClusters and DescribeReplicationGroups (the nodes, as the
// API's state shows them: deleted targets hidden, running operations' status over the live one)
// and DescribeEvents (state). Each sorts by id and pages with Marker and MaxRecords.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api_service.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"

namespace finalsnap::detail {
namespace {

using Clock = std::chrono::system_clock;

std::string EventKey(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

}  // namespace

ApiService::Result ApiService::DescribeSnapshots(const ActionArgs& args, const RequestContext&) {
  SnapshotFilter filter;
  filter.snapshot_name = args.Get<std::string>("SnapshotName").value_or("");
  filter.cache_cluster_id = args.Get<std::string>("CacheClusterId").value_or("");
  filter.replication_group_id = args.Get<std::string>("ReplicationGroupId").value_or("");
  filter.snapshot_source = args.Get<std::string>("SnapshotSource").value_or("");
  const int max_records = args.Get<int>("MaxRecords").value_or(kMaxSnapshotRecords);
  const std::string marker = args.Get<std::string>("Marker").value_or("");
  const bool show_config = args.Get<bool>("ShowNodeGroupConfig").value_or(false);
  if (!filter.snapshot_source.empty() && filter.snapshot_source != "user" &&
      filter.snapshot_source != "system") {
    return ApiError::Of("InvalidParameterValue", "SnapshotSource must be user or system, not " +
                                                     filter.snapshot_source + ".");
  }

  Expected<std::vector<Snapshot>> listed = ListSnapshots(fleet_.storage.path, filter);
  if (!listed.ok()) return ApiError::Of("InternalFailure", listed.error().message());
  std::vector<Snapshot> snapshots = std::move(listed).value();
  // A snapshot of a running operation is "creating" until the operation has proved it (the
  // store shows it committed before the readback gate), and is shown from the moment the
  // request was accepted, before the engine has claimed the name in the store.
  for (const ApiOperation& op : state_->Running()) {
    if (op.snapshot_name.empty()) continue;
    auto it = std::find_if(snapshots.begin(), snapshots.end(), [&](const Snapshot& s) {
      return IdEquals(s.snapshot_name, op.snapshot_name);
    });
    if (it != snapshots.end()) {
      it->snapshot_status = "creating";
      continue;
    }
    Snapshot placeholder;
    placeholder.snapshot_name = op.snapshot_name;
    placeholder.snapshot_status = "creating";
    (op.source_type == kSourceCacheCluster ? placeholder.cache_cluster_id
                                           : placeholder.replication_group_id) = op.target_id;
    placeholder.engine = op.engine;
    placeholder.engine_version = op.engine_version;
    if (filter.Matches(placeholder)) snapshots.push_back(std::move(placeholder));
  }
  if (!filter.snapshot_name.empty() && snapshots.empty()) {
    return ApiError::Of("SnapshotNotFoundFault",
                        "Snapshot " + filter.snapshot_name + " not found.");
  }
  std::sort(snapshots.begin(), snapshots.end(), [](const Snapshot& a, const Snapshot& b) {
    return Lower(a.snapshot_name) < Lower(b.snapshot_name);
  });
  auto [page, next] = Page(
      snapshots, [](const Snapshot& s) { return Lower(s.snapshot_name); }, marker,
      static_cast<size_t>(max_records));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const Snapshot& s : page) list.push_back(SnapshotShape(s, show_config));
  result["Snapshots"] = std::move(list);
  return result;
}

ApiService::Result ApiService::DescribeCacheClusters(const ActionArgs& args,
                                                     const RequestContext&) {
  const std::optional<std::string> id = args.Get<std::string>("CacheClusterId");
  const int max_records = args.Get<int>("MaxRecords").value_or(kMaxRecordsDefault);
  const std::string marker = args.Get<std::string>("Marker").value_or("");
  const bool show_nodes = args.Get<bool>("ShowCacheNodeInfo").value_or(false);
  const bool standalone_only =
      args.Get<bool>("ShowCacheClustersNotInReplicationGroups").value_or(false);

  std::optional<std::string_view> filter;
  if (id) filter = *id;
  std::vector<CacheClusterInfo> infos;
  for (CacheClusterInfo& info : finalsnap::DescribeCacheClusters(fleet_, filter)) {
    if (standalone_only && !info.replication_group_id.empty()) continue;
    std::optional<ApiOperation> op;
    if (info.replication_group_id.empty()) {
      const CacheClusterEntry* entry = fleet_.FindCacheCluster(info.cache_cluster_id);
      const std::string identity = entry != nullptr ? entry->endpoint.ToString() : info.endpoint;
      if (state_->IsDeleted(kSourceCacheCluster, info.cache_cluster_id, identity)) continue;
      op = state_->Running(kSourceCacheCluster, info.cache_cluster_id);
    } else {
      const ReplicationGroupEntry* group = fleet_.FindReplicationGroup(info.replication_group_id);
      if (group != nullptr &&
          state_->IsDeleted(kSourceReplicationGroup, group->id, GroupIdentity(*group))) {
        continue;
      }
      op = state_->Running(kSourceReplicationGroup, info.replication_group_id);
    }
    if (op) {
      info.status = op->target_status();
      if (info.engine.empty()) info.engine = op->engine;
      if (info.engine_version.empty()) info.engine_version = op->engine_version;
    }
    infos.push_back(std::move(info));
  }
  if (id && infos.empty()) {
    return ApiError::Of("CacheClusterNotFound", "CacheCluster " + *id + " not found.");
  }
  std::sort(infos.begin(), infos.end(), [](const CacheClusterInfo& a, const CacheClusterInfo& b) {
    return Lower(a.cache_cluster_id) < Lower(b.cache_cluster_id);
  });
  auto [page, next] = Page(
      infos, [](const CacheClusterInfo& i) { return Lower(i.cache_cluster_id); }, marker,
      static_cast<size_t>(max_records));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const CacheClusterInfo& info : page) {
    list.push_back(CacheClusterShape(info, "", show_nodes));
  }
  result["CacheClusters"] = std::move(list);
  return result;
}

ApiService::Result ApiService::DescribeReplicationGroups(const ActionArgs& args,
                                                         const RequestContext&) {
  const std::optional<std::string> id = args.Get<std::string>("ReplicationGroupId");
  const int max_records = args.Get<int>("MaxRecords").value_or(kMaxRecordsDefault);
  const std::string marker = args.Get<std::string>("Marker").value_or("");

  std::vector<const ReplicationGroupEntry*> entries;
  if (id) {
    const ReplicationGroupEntry* entry = fleet_.FindReplicationGroup(*id);
    if (entry == nullptr ||
        state_->IsDeleted(kSourceReplicationGroup, entry->id, GroupIdentity(*entry))) {
      return ApiError::Of("ReplicationGroupNotFoundFault",
                          "ReplicationGroup " + *id + " not found.");
    }
    entries.push_back(entry);
  } else {
    for (const ReplicationGroupEntry& entry : fleet_.replication_groups) {
      if (!state_->IsDeleted(kSourceReplicationGroup, entry.id, GroupIdentity(entry))) {
        entries.push_back(&entry);
      }
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const ReplicationGroupEntry* a, const ReplicationGroupEntry* b) {
              return Lower(a->id) < Lower(b->id);
            });
  auto [page, next] = Page(
      entries, [](const ReplicationGroupEntry* e) { return Lower(e->id); }, marker,
      static_cast<size_t>(max_records));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const ReplicationGroupEntry* entry : page) {
    ReplicationGroupInfo info = DescribeGroup(*entry);
    std::string status;
    if (std::optional<ApiOperation> op = state_->Running(kSourceReplicationGroup, entry->id)) {
      status = op->target_status();
      if (info.engine.empty()) info.engine = op->engine;
    }
    list.push_back(ReplicationGroupShape(info, status));
  }
  result["ReplicationGroups"] = std::move(list);
  return result;
}

ApiService::Result ApiService::DescribeEvents(const ActionArgs& args, const RequestContext&) {
  const std::optional<std::string> source_id = args.Get<std::string>("SourceIdentifier");
  const std::optional<std::string> source_type = args.Get<std::string>("SourceType");
  const std::optional<Clock::time_point> start_time = args.Get<Clock::time_point>("StartTime");
  const std::optional<Clock::time_point> end_time = args.Get<Clock::time_point>("EndTime");
  const std::optional<int> duration = args.Get<int>("Duration");
  const int max_records = args.Get<int>("MaxRecords").value_or(kMaxRecordsDefault);
  const std::string marker = args.Get<std::string>("Marker").value_or("");
  static const std::set<std::string, std::less<>> kSourceTypes = {"cache-cluster",
                                                                  "cache-parameter-group",
                                                                  "cache-security-group",
                                                                  "cache-subnet-group",
                                                                  "replication-group",
                                                                  "serverless-cache",
                                                                  "serverless-cache-snapshot",
                                                                  "user",
                                                                  "user-group"};
  if (source_type && kSourceTypes.count(*source_type) == 0) {
    return ApiError::Of("InvalidParameterValue", "Invalid SourceType " + *source_type + ".");
  }
  if (!marker.empty() &&
      (marker.size() != 20 || marker.find_first_not_of("0123456789") != std::string::npos)) {
    return ApiError::Of("InvalidParameterValue", "Invalid Marker " + marker + ".");
  }
  const Clock::time_point end = end_time.value_or(Clock::now());
  Clock::time_point start;
  if (start_time) {
    start = *start_time;
  } else {
    // ElastiCache's default window is the last hour.
    start = end - std::chrono::minutes(duration.value_or(60));
  }
  if (start > end) {
    return ApiError::Of("InvalidParameterCombination", "StartTime is after EndTime.");
  }
  std::vector<ApiEvent> events;
  for (ApiEvent& e : state_->Events()) {
    if (e.date < start || e.date > end) continue;
    if (source_type && e.source_type != *source_type) continue;
    if (source_id && !IdEquals(e.source_id, *source_id)) continue;
    events.push_back(std::move(e));
  }
  auto [page, next] = Page(
      events, [](const ApiEvent& e) { return EventKey(e.seq); }, marker,
      static_cast<size_t>(max_records));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const ApiEvent& e : page) {
    list.push_back(ModelJson{{"SourceIdentifier", e.source_id},
                             {"SourceType", e.source_type},
                             {"Message", e.message},
                             {"Date", IsoTimestamp(e.date)}});
  }
  result["Events"] = std::move(list);
  return result;
}

}  // namespace finalsnap::detail
