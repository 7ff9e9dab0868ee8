// ElastiCache vocabulary shared by the CLI and the API server (finalsnap/elasticache.h).
#include "finalsnap/elasticache.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <system_error>
#include <utility>

#include "finalsnap/fleet.h"

namespace finalsnap {

namespace {

struct FaultEntry {
  std::string_view code;
  std::string_view shape;  // the model's shape name, when it differs from the code
  int http_status;
  bool sender;
};

// The `error` blocks of botocore's elasticache/2015-02-02/service-2.json for the faults of the
// served actions, then the common errors of every AWS Query API.
constexpr std::array<FaultEntry, 25> kFaults = {{
    {"CacheClusterNotFound", "CacheClusterNotFoundFault", 404, true},
    {"InvalidCacheClusterState", "InvalidCacheClusterStateFault", 400, true},
    {"InvalidParameterCombination", "InvalidParameterCombinationException", 400, true},
    {"InvalidParameterValue", "InvalidParameterValueException", 400, true},
    {"InvalidReplicationGroupState", "InvalidReplicationGroupStateFault", 400, true},
    {"InvalidSnapshotState", "InvalidSnapshotStateFault", 400, true},
    {"ReplicationGroupNotFoundFault", "", 404, true},
    {"SnapshotAlreadyExistsFault", "", 400, true},
    {"SnapshotFeatureNotSupportedFault", "", 400, true},
    {"SnapshotNotFoundFault", "", 404, true},
    {"SnapshotQuotaExceededFault", "", 400, true},
    {"TagQuotaPerResourceExceeded", "", 400, true},
    // Common errors of the Query protocol.
    {"MissingAuthenticationToken", "", 403, true},
    {"InvalidClientTokenId", "", 403, true},
    {"SignatureDoesNotMatch", "", 403, true},
    {"IncompleteSignature", "", 400, true},
    {"RequestExpired", "", 400, true},
    {"InvalidAction", "", 400, true},
    {"MissingAction", "", 400, true},
    {"MissingParameter", "", 400, true},
    {"NoSuchVersion", "", 400, true},
    {"MalformedQueryString", "", 404, true},
    {"InvalidQueryParameter", "", 400, true},
    {"InternalFailure", "", 500, false},
    {"ServiceUnavailable", "", 503, false},
}};

}  // namespace

FaultInfo LookupFault(std::string_view name) {
  for (const FaultEntry& f : kFaults) {
    if (name == f.code || (!f.shape.empty() && name == f.shape)) {
      return FaultInfo{std::string(f.code), f.http_status, f.sender};
    }
  }
  return FaultInfo{std::string(name), 400, true};
}

bool SnapshotFilter::Matches(const Snapshot& snapshot) const {
  if (!snapshot_name.empty() && !IdEquals(snapshot.snapshot_name, snapshot_name)) return false;
  if (!cache_cluster_id.empty() && !IdEquals(snapshot.cache_cluster_id, cache_cluster_id)) {
    return false;
  }
  if (!replication_group_id.empty() &&
      !IdEquals(snapshot.replication_group_id, replication_group_id)) {
    return false;
  }
  // ElastiCache names the filter values "user" and "system" and the field values "manual" and
  // "automated".
  if (snapshot_source == "user" && snapshot.snapshot_source != "manual") return false;
  if (snapshot_source == "system" && snapshot.snapshot_source != "automated") return false;
  return true;
}

Expected<std::vector<Snapshot>> ListSnapshots(const std::filesystem::path& storage_root,
                                              const SnapshotFilter& filter) {
  std::vector<Snapshot> snapshots;
  std::error_code ec;
  if (!std::filesystem::exists(storage_root, ec)) return snapshots;
  Expected<SnapshotStore> opened =
      SnapshotStore::Open(storage_root, SnapshotStore::Access::kReadOnly);
  if (!opened.ok()) return opened.error();
  for (Snapshot& s : opened->List()) {
    if (filter.Matches(s)) snapshots.push_back(std::move(s));
  }
  return snapshots;
}

SnapshotDeletion DeleteStoredSnapshot(const std::filesystem::path& storage_root,
                                      std::string_view name,
                                      const std::function<bool(const Snapshot&)>& confirm) {
  SnapshotDeletion result;
  auto not_found = [&] {
    result.fault = "SnapshotNotFoundFault";
    result.message = "Snapshot " + std::string(name) + " not found.";
    return result;
  };
  // Checked first so that deleting from a fleet that never took a snapshot does not create the
  // storage directory (a read-write open would).
  std::error_code ec;
  if (!std::filesystem::exists(storage_root, ec)) return not_found();
  Expected<SnapshotStore> opened =
      SnapshotStore::Open(storage_root, SnapshotStore::Access::kReadWrite);
  if (!opened.ok()) {
    result.fault = "InvalidParameterValue";
    result.message = opened.error().message();
    return result;
  }
  SnapshotStore& store = *opened;
  result.snapshot = store.Describe(name);
  if (!result.snapshot) return not_found();
  // A snapshot being written belongs to a running operation; ElastiCache refuses the same way.
  // A "failed" one (unreadable manifest) may go: deleting it is how it gets cleaned up.
  if (result.snapshot->snapshot_status == "creating") {
    result.fault = "InvalidSnapshotState";
    result.message =
        "Snapshot " + result.snapshot->snapshot_name + " is not in available state (creating).";
    return result;
  }
  if (confirm && !confirm(*result.snapshot)) {
    result.declined = true;
    return result;
  }
  if (Status s = store.Delete(name); !s.ok()) {
    // Someone else may have deleted it between Describe and Delete.
    if (!store.Describe(name)) return not_found();
    result.fault = "InvalidSnapshotState";
    result.message = s.message();
    return result;
  }
  result.snapshot->snapshot_status = "deleting";
  return result;
}

ModelJson EndpointShape(std::string_view host_port) {
  if (Expected<Endpoint> e = ParseEndpoint(host_port); e.ok()) {
    return ModelJson{{"Address", e->host}, {"Port", e->port}};
  }
  // Not expected (the fleet loader validated it), but never drop what we were given.
  return ModelJson{{"Address", std::string(host_port)}, {"Port", nullptr}};
}

namespace {

// A member the engine may have no value for: written when it has one; otherwise left out (kApi)
// or written as null (kCli).
void SetOptional(ModelJson& j, const char* key, const std::string& value, ShapeStyle style) {
  if (!value.empty()) {
    j[key] = value;
  } else if (style == ShapeStyle::kCli) {
    j[key] = nullptr;
  }
}

void SetEndpoint(ModelJson& j, const char* key, const std::string& host_port, ShapeStyle style) {
  if (!host_port.empty()) {
    j[key] = EndpointShape(host_port);
  } else if (style == ShapeStyle::kCli) {
    j[key] = nullptr;
  }
}

// A list: left out when empty (kApi), written as [] (kCli).
void SetList(ModelJson& j, const char* key, ModelJson list, ShapeStyle style) {
  if (!list.empty() || style == ShapeStyle::kCli) j[key] = std::move(list);
}

// Members the model makes conditional: written only when they apply, in both styles.
void SetIfNotEmpty(ModelJson& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

}  // namespace

ModelJson CacheClusterShape(const CacheClusterInfo& info, std::string_view status,
                            bool show_cache_nodes, ShapeStyle style) {
  const std::string effective = status.empty() ? info.status : std::string(status);
  ModelJson j;
  j["CacheClusterId"] = info.cache_cluster_id;
  if (style == ShapeStyle::kCli) SetEndpoint(j, "ConfigurationEndpoint", info.endpoint, style);
  SetOptional(j, "Engine", info.engine, style);
  SetOptional(j, "EngineVersion", info.engine_version, style);
  j["CacheClusterStatus"] = effective;
  j["NumCacheNodes"] = 1;
  if (show_cache_nodes) {
    ModelJson node;
    node["CacheNodeId"] = "0001";
    node["CacheNodeStatus"] = effective;
    SetEndpoint(node, "Endpoint", info.endpoint, style);
    j["CacheNodes"] = ModelJson::array({std::move(node)});
  }
  SetIfNotEmpty(j, "ReplicationGroupId", info.replication_group_id);
  return j;
}

ModelJson SnapshotShape(const Snapshot& snapshot, bool show_node_group_config) {
  ModelJson j;
  j["SnapshotName"] = snapshot.snapshot_name;
  SetIfNotEmpty(j, "ReplicationGroupId", snapshot.replication_group_id);
  SetIfNotEmpty(j, "CacheClusterId", snapshot.cache_cluster_id);
  j["SnapshotStatus"] = snapshot.snapshot_status;
  j["SnapshotSource"] = snapshot.snapshot_source;
  SetIfNotEmpty(j, "Engine", snapshot.engine);
  SetIfNotEmpty(j, "EngineVersion", snapshot.engine_version);
  if (!snapshot.cache_cluster_id.empty()) j["NumCacheNodes"] = 1;
  if (!snapshot.node_snapshots.empty()) {
    Expected<Endpoint> source = ParseEndpoint(snapshot.node_snapshots.front().source_endpoint);
    if (source.ok()) j["Port"] = source->port;
  }
  if (snapshot.num_node_groups > 0) j["NumNodeGroups"] = snapshot.num_node_groups;
  ModelJson nodes = ModelJson::array();
  for (const NodeSnapshot& n : snapshot.node_snapshots) {
    ModelJson node;
    SetIfNotEmpty(node, "CacheClusterId", n.cache_cluster_id);
    SetIfNotEmpty(node, "NodeGroupId", n.node_group_id);
    SetIfNotEmpty(node, "CacheNodeId", n.cache_node_id);
    if (show_node_group_config && !n.slots.empty()) {
      node["NodeGroupConfiguration"] =
          ModelJson{{"NodeGroupId", n.node_group_id}, {"Slots", SlotRangesText(n.slots)}};
    }
    node["CacheSize"] = CacheSizeString(n.cache_size);
    SetIfNotEmpty(node, "SnapshotCreateTime", n.snapshot_create_time);
    nodes.push_back(std::move(node));
  }
  if (!nodes.empty()) j["NodeSnapshots"] = std::move(nodes);
  return j;
}

ModelJson ReplicationGroupShape(const ReplicationGroupInfo& info, std::string_view status,
                                ShapeStyle style) {
  ModelJson j;
  j["ReplicationGroupId"] = info.replication_group_id;
  j["Description"] =
      "Self-hosted replication group (finalsnap fleet file" +
      (info.discovered_via.empty() ? std::string() : ", discovered via " + info.discovered_via) +
      ")";
  j["Status"] = status.empty() ? info.status : std::string(status);
  ModelJson members = ModelJson::array();
  for (const std::string& id : info.MemberClusters()) members.push_back(id);
  SetList(j, "MemberClusters", std::move(members), style);
  ModelJson groups = ModelJson::array();
  for (const NodeGroupInfo& g : info.node_groups) {
    ModelJson group;
    group["NodeGroupId"] = g.node_group_id;
    SetOptional(group, "Status", g.status, style);
    if (!info.cluster_enabled) {
      for (const GroupMember& m : g.members) {
        if (m.current_role == "primary" && !m.endpoint.empty()) {
          group["PrimaryEndpoint"] = EndpointShape(m.endpoint);
          break;
        }
      }
    }
    SetIfNotEmpty(group, "Slots", g.slots);
    ModelJson group_members = ModelJson::array();
    for (const GroupMember& m : g.members) {
      ModelJson member;
      member["CacheClusterId"] = m.cache_cluster_id;
      SetOptional(member, "CacheNodeId", m.cache_node_id, style);
      SetEndpoint(member, "ReadEndpoint", m.endpoint, style);
      SetOptional(member, "CurrentRole", m.current_role, style);
      group_members.push_back(std::move(member));
    }
    SetList(group, "NodeGroupMembers", std::move(group_members), style);
    groups.push_back(std::move(group));
  }
  SetList(j, "NodeGroups", std::move(groups), style);
  j["AutomaticFailover"] = info.discovered_via == "sentinel" ? "enabled" : "disabled";
  j["MultiAZ"] = "disabled";
  j["ClusterEnabled"] = info.cluster_enabled;
  j["ClusterMode"] = info.cluster_enabled ? "enabled" : "disabled";
  SetOptional(j, "Engine", info.engine, style);
  return j;
}

}  // namespace finalsnap
