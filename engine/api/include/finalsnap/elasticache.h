// What the CLI and the API server share about ElastiCache's vocabulary: id comparison, fault
// codes and their HTTP statuses, snapshot filtering and deletion, and the ElastiCache shapes
// (CacheCluster, Snapshot, ReplicationGroup, Endpoint) built from the engine's results.
//
// The shapes hold only members of ElastiCache's API model (botocore's
// data/elasticache/2015-02-02/service-2.json), with its member names, in an ordered JSON value:
// the CLI prints them (adding finalsnap's own fields such as Gates beside them), and the API
// server renders the same values as Query-protocol XML. So a field name is spelled in one place;
// ShapeStyle says how the two front ends differ in writing a member the engine has no value for.
//
// Start with the shape functions at the bottom. Nothing here prints or exits.
#ifndef FINALSNAP_ELASTICACHE_H_
#define FINALSNAP_ELASTICACHE_H_

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "finalsnap/engine.h"
#include "finalsnap/storage.h"
#include "finalsnap/text.h"

namespace finalsnap {

// Ordered, so that members appear in the order ElastiCache documents them.
using ModelJson = nlohmann::ordered_json;

// Ids are case-insensitive, as in ElastiCache: EqualsIgnoreCase under the vocabulary's name.
inline bool IdEquals(std::string_view a, std::string_view b) { return EqualsIgnoreCase(a, b); }

// A fault's wire identity: the error code the Query protocol puts in <Code> (the model's
// `error.code`, which is not always the shape's name: InvalidCacheClusterStateFault is sent as
// InvalidCacheClusterState), its HTTP status, and whether it is the caller's fault ("Sender")
// or the server's ("Receiver").
struct FaultInfo {
  std::string code;
  int http_status = 400;
  bool sender = true;
};

// Looks a fault up by code or by model shape name (both "InvalidReplicationGroupState" and
// "InvalidReplicationGroupStateFault" give code InvalidReplicationGroupState, 400). Covers the
// faults of every action the API serves and the common Query-protocol errors (InvalidAction,
// MissingParameter, MissingAuthenticationToken, SignatureDoesNotMatch, ...). An unknown name is
// returned as its own code with status 400 (500 for "InternalFailure"-like names is not guessed).
FaultInfo LookupFault(std::string_view name);

// DescribeSnapshots' filters. Empty strings match everything; ids compare case-insensitively.
struct SnapshotFilter {
  std::string snapshot_name;
  std::string cache_cluster_id;
  std::string replication_group_id;
  // ElastiCache's SnapshotSource filter: "user" (manual snapshots) or "system" (automated
  // ones); empty for both.
  std::string snapshot_source;

  bool Matches(const Snapshot& snapshot) const;
};

// The snapshots under `storage_root` that match `filter`, as SnapshotStore::List shows them
// (sorted by name). A missing storage directory means no snapshot was ever taken: an empty list,
// and nothing is created.
Expected<std::vector<Snapshot>> ListSnapshots(const std::filesystem::path& storage_root,
                                              const SnapshotFilter& filter);

// DeleteSnapshot, as both front ends do it: SnapshotNotFoundFault for an unknown name,
// InvalidSnapshotState for a snapshot still being written, otherwise the committed snapshot is
// deleted. `confirm` (optional) is asked with the snapshot just before deleting; when it says no,
// nothing is deleted and `declined` is set.
struct SnapshotDeletion {
  std::optional<Snapshot> snapshot;  // as it was, with SnapshotStatus "deleting" on success
  std::string fault;                 // empty on success
  std::string message;
  bool declined = false;

  bool ok() const { return fault.empty() && !declined; }
};
SnapshotDeletion DeleteStoredSnapshot(const std::filesystem::path& storage_root,
                                      std::string_view name,
                                      const std::function<bool(const Snapshot&)>& confirm = {});

// --- Shapes: model members only. -------------------------------------------------------------

// Which front end a shape is for. kApi writes what ElastiCache writes: a member the engine has
// no value for (an unreachable node's Engine, a group without members' MemberClusters) is left
// out. kCli writes such a member as null (a list as []), so that every document the CLI prints
// has one schema: a script can index it without testing first, and --output text keeps its
// columns. Members the model itself makes conditional (ReplicationGroupId of a standalone
// cluster, Slots outside Redis Cluster, PrimaryEndpoint in Cluster mode) are left out by both.
enum class ShapeStyle { kApi, kCli };

// Endpoint {Address, Port} from "host:port" (Port null if the text does not parse).
ModelJson EndpointShape(std::string_view host_port);

// CacheCluster: CacheClusterId, Engine, EngineVersion, CacheClusterStatus, NumCacheNodes,
// CacheNodes (only with show_cache_nodes, as DescribeCacheClusters' ShowCacheNodeInfo), and
// ReplicationGroupId for a member of a group. `status` overrides info.status when not empty.
// kCli also writes ConfigurationEndpoint (the node's endpoint), which the CLI has always shown;
// ElastiCache sends it only for Memcached, so the API leaves it out.
ModelJson CacheClusterShape(const CacheClusterInfo& info, std::string_view status,
                            bool show_cache_nodes, ShapeStyle style = ShapeStyle::kApi);

// Snapshot: SnapshotName, ReplicationGroupId, CacheClusterId, SnapshotStatus, SnapshotSource,
// Engine, EngineVersion, NumCacheNodes, Port, NumNodeGroups, NodeSnapshots {CacheClusterId,
// NodeGroupId, CacheNodeId, NodeGroupConfiguration (with show_node_group_config, Cluster
// snapshots only), CacheSize, SnapshotCreateTime}, one per snapshot.node_snapshots, in order.
// Slots are written as the manifest and describes write them ("0-5460,10923-16383", a single
// slot as "5").
ModelJson SnapshotShape(const Snapshot& snapshot, bool show_node_group_config);

// ReplicationGroup: ReplicationGroupId, Description, Status, MemberClusters, NodeGroups
// {NodeGroupId, Status, PrimaryEndpoint, Slots, NodeGroupMembers {CacheClusterId, CacheNodeId,
// ReadEndpoint, CurrentRole}}, AutomaticFailover, MultiAZ, ClusterEnabled, ClusterMode, Engine.
// `status` overrides info.status when not empty. NodeGroups and NodeGroupMembers follow the
// order of info.node_groups and their members, one element each.
ModelJson ReplicationGroupShape(const ReplicationGroupInfo& info, std::string_view status,
                                ShapeStyle style = ShapeStyle::kApi);

}  // namespace finalsnap

#endif  // FINALSNAP_ELASTICACHE_H_
