// The API server (finalsnap/api.h, api_server.h): authentication, the ElastiCache actions, the
// operation threads, and Serve(), which runs it all on one libuv loop.
#include "api_server.h"
#include "finalsnap/text.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csignal>
#include <deque>
#include <exception>
#include <set>
#include <utility>

#include "finalsnap/api.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/engine.h"
#include "finalsnap/storage.h"
#include "loop.h"
#include "sigv4.h"

namespace finalsnap {
namespace detail {
namespace {

using Clock = std::chrono::system_clock;

bool IsFormContentType(std::string_view type) {
  const std::string lower = Lower(type);
  return lower.rfind("application/x-www-form-urlencoded", 0) == 0;
}

// Reads a value out of a parse result, or returns its error from the enclosing function.
#define FINALSNAP_TRY(var, expr)                                  \
  auto var##_result = (expr);                                     \
  if (auto* var##_error = std::get_if<ApiError>(&var##_result)) { \
    return *var##_error;                                          \
  }                                                               \
  auto var = std::move(std::get<0>(var##_result))

// MaxRecords bounds, per action, from the ElastiCache API reference.
constexpr int kMinRecords = 20;
constexpr int kMaxRecordsDefault = 100;
constexpr int kMaxSnapshotRecords = 50;

std::string EventKey(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

}  // namespace

std::variant<std::pair<QueryParams, Caller>, ApiError> AuthenticateRequest(
    const HttpRequest& request, const SecretLookup& secrets, Clock::time_point now) {
  SigV4Request signed_request;
  signed_request.method = request.method;
  signed_request.target = request.target;
  signed_request.headers = &request.headers;
  signed_request.body = request.body;
  const SigV4Verdict verdict = VerifySigV4(signed_request, secrets, now);
  if (!verdict.ok) {
    ApiError error = ApiError::Of(verdict.code, verdict.message);
    error.http_status = verdict.http_status;
    return error;
  }
  QueryParams params;
  if (std::optional<ApiError> e = params.AddForm(request.query)) return *e;
  if (!request.body.empty()) {
    const std::optional<std::string_view> type = request.Header("content-type");
    if (!type || !IsFormContentType(*type)) {
      return ApiError::Of("InvalidParameterValue",
                          "A request body must be form-encoded (Content-Type: "
                          "application/x-www-form-urlencoded).");
    }
    if (std::optional<ApiError> e = params.AddForm(request.body)) return *e;
  }
  return std::make_pair(std::move(params), Caller{verdict.access_key_id, verdict.region});
}

HttpResponse ErrorResponse(const ApiError& error, const std::string& request_id) {
  HttpResponse response;
  response.status = error.http_status;
  response.body = RenderError(error, request_id);
  response.headers.emplace_back("x-amzn-RequestId", request_id);
  return response;
}

ApiService::ApiService(Fleet fleet, std::unique_ptr<ApiState> state,
                       std::function<void(std::string_view)> log,
                       std::function<void()> on_operation_end)
    : fleet_(std::move(fleet)),
      state_(std::move(state)),
      log_(std::move(log)),
      on_operation_end_(std::move(on_operation_end)) {}

ApiService::~ApiService() {
  std::unique_lock<std::mutex> lock(threads_mu_);
  threads_cv_.wait(lock, [this] { return running_ == 0; });
  std::map<std::string, std::thread> threads;
  threads.swap(threads_);
  lock.unlock();
  for (auto& [id, t] : threads) t.join();
}

void ApiService::Log(std::string_view line) {
  if (log_) log_(line);
}

size_t ApiService::running_operations() const {
  std::lock_guard<std::mutex> lock(threads_mu_);
  return running_;
}

void ApiService::JoinFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    for (const std::string& id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_.clear();
  }
  for (std::thread& t : done) t.join();
}

HttpResponse ApiService::Handle(QueryParams params, const std::string& request_id,
                                const Caller& caller, std::string* action_out) {
  AcceptProtocolParams(params);
  auto respond = [&](const std::string& action, Result result) {
    if (auto* error = std::get_if<ApiError>(&result)) return ErrorResponse(*error, request_id);
    HttpResponse response;
    response.body = RenderResponse(action, std::get<ModelJson>(result), request_id);
    response.headers.emplace_back("x-amzn-RequestId", request_id);
    return response;
  };
  const std::optional<std::string> action = params.Get("Action");
  if (action_out != nullptr) *action_out = action.value_or("-");
  if (!action || action->empty()) {
    return ErrorResponse(ApiError::Of("MissingAction",
                                      "The request must contain the parameter "
                                      "Action."),
                         request_id);
  }
  using Handler = std::function<Result()>;
  const std::map<std::string, Handler, std::less<>> actions = {
      {"DeleteCacheCluster", [&] { return DeleteCacheCluster(params, request_id, caller); }},
      {"DeleteReplicationGroup",
       [&] { return DeleteReplicationGroup(params, request_id, caller); }},
      {"CreateSnapshot", [&] { return CreateSnapshot(params, request_id, caller); }},
      {"DescribeSnapshots", [&] { return DescribeSnapshots(params); }},
      {"DeleteSnapshot", [&] { return DeleteSnapshot(params, caller); }},
      {"DescribeCacheClusters", [&] { return DescribeCacheClusters(params); }},
      {"DescribeReplicationGroups", [&] { return DescribeReplicationGroups(params); }},
      {"DescribeEvents", [&] { return DescribeEvents(params); }},
  };
  auto it = actions.find(*action);
  if (it == actions.end()) {
    return ErrorResponse(
        ApiError::Of("InvalidAction", "The action " + *action +
                                          " is not valid for this web service (finalsnap serves "
                                          "DeleteCacheCluster, DeleteReplicationGroup, "
                                          "CreateSnapshot, DescribeSnapshots, DeleteSnapshot, "
                                          "DescribeCacheClusters, DescribeReplicationGroups and "
                                          "DescribeEvents)."),
        request_id);
  }
  const std::optional<std::string> version = params.Get("Version");
  if (!version) {
    return ErrorResponse(
        ApiError::Of("MissingParameter", "The request must contain the parameter Version."),
        request_id);
  }
  if (*version != kApiVersion) {
    return ErrorResponse(ApiError::Of("NoSuchVersion", "The requested version (" + *version +
                                                           ") of service ElastiCache does not "
                                                           "exist; this server speaks " +
                                                           std::string(kApiVersion) + "."),
                         request_id);
  }
  try {
    return respond(*action, it->second());
  } catch (const std::exception& e) {
    return ErrorResponse(
        ApiError::Of("InternalFailure", std::string("internal error: ") + e.what()), request_id);
  }
}

bool ApiService::TalksToNodes(std::string_view action) {
  return action == "DescribeCacheClusters" || action == "DescribeReplicationGroups" ||
         action == "DeleteCacheCluster" || action == "DeleteReplicationGroup" ||
         action == "CreateSnapshot";
}

std::optional<ApiError> ApiService::CheckNewSnapshotName(const std::string& name) const {
  if (std::string why = CheckSnapshotName(name); !why.empty()) {
    return ApiError::Of("InvalidParameterValue", "Invalid snapshot name " + name + ": " + why);
  }
  std::error_code ec;
  if (std::filesystem::exists(fleet_.storage.path, ec)) {
    auto opened = SnapshotStore::Open(fleet_.storage.path, SnapshotStore::Access::kReadOnly);
    if (auto* store = std::get_if<SnapshotStore>(&opened);
        store != nullptr && store->Exists(name)) {
      return ApiError::Of("SnapshotAlreadyExistsFault", "Snapshot " + name + " already exists.");
    }
  }
  return std::nullopt;
}

std::string ApiService::GroupIdentity(const ReplicationGroupEntry& entry) const {
  std::string identity;
  for (const Endpoint& e : entry.endpoints)
    identity += (identity.empty() ? "" : ",") + e.ToString();
  for (const Endpoint& e : entry.sentinels) {
    identity += (identity.empty() ? "sentinel " : ",sentinel ") + e.ToString();
  }
  if (!entry.master_name.empty()) identity += " " + entry.master_name;
  return identity;
}

ReplicationGroupInfo ApiService::DescribeGroup(const ReplicationGroupEntry& entry) {
  for (ReplicationGroupInfo& info : finalsnap::DescribeReplicationGroups(fleet_, entry.id)) {
    if (IdEquals(info.replication_group_id, entry.id)) return std::move(info);
  }
  // The engine could not (or does not yet) say anything about the group.
  ReplicationGroupInfo stub;
  stub.replication_group_id = entry.id;
  stub.status = "unreachable";
  stub.discovered_via = entry.sentinels.empty() ? "endpoints" : "sentinel";
  return stub;
}

std::variant<ApiOperation, ApiError> ApiService::Start(ApiOperation op, const std::string& event) {
  std::variant<ApiOperation, ApiError> begun = state_->Begin(std::move(op), event);
  if (auto* started = std::get_if<ApiOperation>(&begun)) {
    std::lock_guard<std::mutex> lock(threads_mu_);
    ++running_;
    threads_[started->id] = std::thread([this, copy = *started] { RunOperation(copy); });
    Log("operation " + started->id + " started: " + started->action + " " + started->target_id +
        (started->snapshot_name.empty() ? "" : " snapshot " + started->snapshot_name));
  }
  return begun;
}

void ApiService::RunOperation(ApiOperation op) {
  OperationResult result;
  try {
    const std::optional<std::string> snapshot =
        op.snapshot_name.empty() ? std::nullopt : std::optional<std::string>(op.snapshot_name);
    OperationOptions options;
    options.cancel = cancel_;
    // Gate verdicts become events as they happen: DescribeEvents shows a delete in progress.
    options.observer = [this, &op](const OperationEvent& e) {
      if (e.kind == OperationEvent::Kind::kGate) state_->RecordGate(op.id, e.gate);
    };
    if (op.action == "DeleteCacheCluster") {
      result = finalsnap::DeleteCacheCluster(fleet_, op.target_id, snapshot, options);
    } else if (op.action == "DeleteReplicationGroup") {
      result = finalsnap::DeleteReplicationGroup(fleet_, op.target_id, snapshot,
                                                 op.retain_primary_cluster, options);
    } else if (op.action == "CreateSnapshot" && op.source_type == kSourceCacheCluster) {
      result = finalsnap::CreateSnapshot(fleet_, op.target_id, op.snapshot_name, options);
    } else {
      result = CreateReplicationGroupSnapshot(fleet_, op.target_id, op.snapshot_name, options);
    }
  } catch (const std::exception& e) {
    result = OperationResult();
    result.fault = "InternalFailure";
    result.message = std::string("internal error: ") + e.what();
  }
  state_->Finish(op.id, result);
  Log("operation " + op.id + " " + (result.ok ? "succeeded" : "ended: " + result.fault) + ": " +
      op.action + " " + op.target_id +
      (result.failed_gate.empty() ? "" : " (gate " + result.failed_gate + ")") +
      (result.message.empty() ? "" : ": " + result.message));
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    --running_;
    finished_.push_back(op.id);
  }
  threads_cv_.notify_all();
  if (on_operation_end_) on_operation_end_();
}

ApiService::Result ApiService::DeleteCacheCluster(QueryParams& params,
                                                  const std::string& request_id,
                                                  const Caller& caller) {
  FINALSNAP_TRY(id, params.Required("CacheClusterId"));
  const std::optional<std::string> final_snapshot = params.Optional("FinalSnapshotIdentifier");
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;

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
    if (std::optional<ApiError> e = CheckNewSnapshotName(*final_snapshot)) return *e;
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
  op.request_id = request_id;
  std::string event = "DeleteCacheCluster accepted for cache cluster " + entry->id + " at " +
                      identity +
                      (final_snapshot ? " with final snapshot " + *final_snapshot
                                      : std::string(" without a final snapshot")) +
                      " (request " + request_id + ", key " + caller.access_key_id + ")";
  FINALSNAP_TRY(started, Start(std::move(op), event));
  (void)started;
  ModelJson result;
  result["CacheCluster"] = CacheClusterShape(info, "deleting", /*show_cache_nodes=*/false);
  return result;
}

ApiService::Result ApiService::DeleteReplicationGroup(QueryParams& params,
                                                      const std::string& request_id,
                                                      const Caller& caller) {
  FINALSNAP_TRY(id, params.Required("ReplicationGroupId"));
  FINALSNAP_TRY(retain, params.OptionalBool("RetainPrimaryCluster"));
  const std::optional<std::string> final_snapshot = params.Optional("FinalSnapshotIdentifier");
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;

  const ReplicationGroupEntry* entry = fleet_.FindReplicationGroup(id);
  const std::string not_found = "ReplicationGroup " + id + " not found.";
  if (entry == nullptr) return ApiError::Of("ReplicationGroupNotFoundFault", not_found);
  const std::string identity = GroupIdentity(*entry);
  if (state_->IsDeleted(kSourceReplicationGroup, entry->id, identity)) {
    return ApiError::Of("ReplicationGroupNotFoundFault", not_found);
  }
  if (final_snapshot) {
    if (std::optional<ApiError> e = CheckNewSnapshotName(*final_snapshot)) return *e;
  }
  const ReplicationGroupInfo info = DescribeGroup(*entry);
  if (retain.value_or(false) && info.node_groups.size() > 1) {
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
  op.retain_primary_cluster = retain.value_or(false);
  op.engine = info.engine;
  op.engine_version = info.engine_version;
  op.request_id = request_id;
  std::string event = "DeleteReplicationGroup accepted for replication group " + entry->id +
                      (final_snapshot ? " with final snapshot " + *final_snapshot
                                      : std::string(" without a final snapshot")) +
                      (op.retain_primary_cluster ? ", retaining the primary cluster" : "") +
                      " (request " + request_id + ", key " + caller.access_key_id + ")";
  FINALSNAP_TRY(started, Start(std::move(op), event));
  (void)started;
  ModelJson result;
  result["ReplicationGroup"] = ReplicationGroupShape(info, "deleting");
  return result;
}

ApiService::Result ApiService::CreateSnapshot(QueryParams& params, const std::string& request_id,
                                              const Caller& caller) {
  FINALSNAP_TRY(name, params.Required("SnapshotName"));
  const std::optional<std::string> cluster_id = params.Optional("CacheClusterId");
  const std::optional<std::string> group_id = params.Optional("ReplicationGroupId");
  if (params.Optional("KmsKeyId")) {
    return ApiError::Of("InvalidParameterValue",
                        "KmsKeyId is not supported: snapshots are stored under the fleet's "
                        "storage.path, not encrypted with KMS.");
  }
  for (const auto& [key, value] : params.values()) {
    if (key.rfind("Tags.", 0) == 0) {
      return ApiError::Of("InvalidParameterValue", "Tags are not supported on snapshots.");
    }
  }
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;
  if (cluster_id.has_value() == group_id.has_value()) {
    return ApiError::Of("InvalidParameterCombination",
                        "Exactly one of CacheClusterId and ReplicationGroupId must be given.");
  }
  if (std::optional<ApiError> e = CheckNewSnapshotName(name)) return *e;

  ApiOperation op;
  op.action = "CreateSnapshot";
  op.snapshot_name = name;
  op.request_id = request_id;
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
                            " (request " + request_id + ", key " + caller.access_key_id + ")";
  FINALSNAP_TRY(started, Start(std::move(op), event));
  (void)started;
  ModelJson result;
  result["Snapshot"] = SnapshotShape(placeholder, false);
  return result;
}

ApiService::Result ApiService::DescribeSnapshots(QueryParams& params) {
  SnapshotFilter filter;
  filter.snapshot_name = params.Optional("SnapshotName").value_or("");
  filter.cache_cluster_id = params.Optional("CacheClusterId").value_or("");
  filter.replication_group_id = params.Optional("ReplicationGroupId").value_or("");
  filter.snapshot_source = params.Optional("SnapshotSource").value_or("");
  FINALSNAP_TRY(max_records, params.OptionalInt("MaxRecords", kMinRecords, kMaxSnapshotRecords));
  const std::string marker = params.Optional("Marker").value_or("");
  FINALSNAP_TRY(show_config, params.OptionalBool("ShowNodeGroupConfig"));
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;
  if (!filter.snapshot_source.empty() && filter.snapshot_source != "user" &&
      filter.snapshot_source != "system") {
    return ApiError::Of("InvalidParameterValue", "SnapshotSource must be user or system, not " +
                                                     filter.snapshot_source + ".");
  }

  std::variant<std::vector<Snapshot>, std::string> listed =
      ListSnapshots(fleet_.storage.path, filter);
  if (auto* error = std::get_if<std::string>(&listed)) {
    return ApiError::Of("InternalFailure", *error);
  }
  std::vector<Snapshot> snapshots = std::get<std::vector<Snapshot>>(std::move(listed));
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
      static_cast<size_t>(max_records.value_or(kMaxSnapshotRecords)));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const Snapshot& s : page) list.push_back(SnapshotShape(s, show_config.value_or(false)));
  result["Snapshots"] = std::move(list);
  return result;
}

ApiService::Result ApiService::DeleteSnapshot(QueryParams& params, const Caller& caller) {
  FINALSNAP_TRY(name, params.Required("SnapshotName"));
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;
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
        "Snapshot " + s.snapshot_name + " deleted (key " + caller.access_key_id + ").");
  }
  ModelJson result;
  result["Snapshot"] = SnapshotShape(s, false);
  return result;
}

ApiService::Result ApiService::DescribeCacheClusters(QueryParams& params) {
  const std::optional<std::string> id = params.Optional("CacheClusterId");
  FINALSNAP_TRY(max_records, params.OptionalInt("MaxRecords", kMinRecords, kMaxRecordsDefault));
  const std::string marker = params.Optional("Marker").value_or("");
  FINALSNAP_TRY(show_nodes, params.OptionalBool("ShowCacheNodeInfo"));
  FINALSNAP_TRY(standalone_only, params.OptionalBool("ShowCacheClustersNotInReplicationGroups"));
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;

  std::optional<std::string_view> filter;
  if (id) filter = *id;
  std::vector<CacheClusterInfo> infos;
  for (CacheClusterInfo& info : finalsnap::DescribeCacheClusters(fleet_, filter)) {
    if (standalone_only.value_or(false) && !info.replication_group_id.empty()) continue;
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
      static_cast<size_t>(max_records.value_or(kMaxRecordsDefault)));
  ModelJson result;
  if (!next.empty()) result["Marker"] = next;
  ModelJson list = ModelJson::array();
  for (const CacheClusterInfo& info : page) {
    list.push_back(CacheClusterShape(info, "", show_nodes.value_or(false)));
  }
  result["CacheClusters"] = std::move(list);
  return result;
}

ApiService::Result ApiService::DescribeReplicationGroups(QueryParams& params) {
  const std::optional<std::string> id = params.Optional("ReplicationGroupId");
  FINALSNAP_TRY(max_records, params.OptionalInt("MaxRecords", kMinRecords, kMaxRecordsDefault));
  const std::string marker = params.Optional("Marker").value_or("");
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;

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
      static_cast<size_t>(max_records.value_or(kMaxRecordsDefault)));
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

ApiService::Result ApiService::DescribeEvents(QueryParams& params) {
  const std::optional<std::string> source_id = params.Optional("SourceIdentifier");
  const std::optional<std::string> source_type = params.Optional("SourceType");
  FINALSNAP_TRY(start_time, params.OptionalTime("StartTime"));
  FINALSNAP_TRY(end_time, params.OptionalTime("EndTime"));
  FINALSNAP_TRY(duration, params.OptionalInt("Duration", 0, 20160));  // 14 days in minutes
  FINALSNAP_TRY(max_records, params.OptionalInt("MaxRecords", kMinRecords, kMaxRecordsDefault));
  const std::string marker = params.Optional("Marker").value_or("");
  if (std::optional<ApiError> e = params.RejectUnknown()) return *e;
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
      static_cast<size_t>(max_records.value_or(kMaxRecordsDefault)));
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

namespace {

// A fixed set of threads answering requests off the loop.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  // Runs what is queued, then joins.
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Wakes the loop from other threads. Shared with the operation threads, which may still hold it
// (and Wake() it) after the loop has closed: a wake-up then is dropped, nothing waits for it.
struct Mailbox {
  std::mutex mu;
  std::deque<std::function<void()>> posts;
  bool closed = false;
  uv_async_t* async = nullptr;

  // Runs `fn` (if any) on the loop, followed by a shutdown check.
  void Post(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu);
    if (closed) return;
    if (fn) posts.push_back(std::move(fn));
    uv_async_send(async);
  }
  void Wake() { Post(nullptr); }
};

// Everything Serve runs on its loop: the HTTP server, the signal and wake-up handles, and the
// shutdown sequence. Lives on Serve's stack; every handle is closed before uv_run returns.
class ServerRun {
 public:
  ServerRun(Loop& loop, std::shared_ptr<Mailbox> mailbox,
            std::map<std::string, std::string> secrets, ApiService& service, WorkerPool& pool,
            WorkerPool& node_pool,
            std::function<void(std::string_view)> log)
      : loop_(loop),
        mailbox_(std::move(mailbox)),
        secrets_(std::move(secrets)),
        service_(service),
        pool_(pool),
        node_pool_(node_pool),
        log_(std::move(log)),
        http_(
            loop, HttpLimits{},
            [this](HttpRequest r, HttpServer::Reply reply) {
              OnRequest(std::move(r), std::move(reply));
            },
            [](int status, std::string_view code, std::string_view message) {
              ApiError error{std::string(code), status, true, std::string(message)};
              return ErrorResponse(error, NewRequestId());
            }) {
    uv_async_init(loop_.get(), &async_,
                  [](uv_async_t* a) { static_cast<ServerRun*>(a->data)->RunPosts(); });
    async_.data = this;
    mailbox_->async = &async_;
  }

  HttpServer& http() { return http_; }

  // Cancelling `token` stops the server as request_stop does (ServeOptions::stop).
  void WatchStop(CancelToken token) {
    stop_watch_.emplace(loop_, std::move(token),
                        [this](const std::string& reason) { BeginStop(reason); });
  }

  // Thread-safe: runs `fn` on the loop. Dropped once the loop is closing (nothing then waits).
  void Post(std::function<void()> fn) { mailbox_->Post(std::move(fn)); }

  // Stops taking requests and cancels the running operations, which reach a safe point (their
  // nodes unpaused and put back); the loop ends once they have. `reason` ("SIGTERM received",
  // "stop requested") goes to the log and to each operation's refusal; empty for a server that
  // never listened, which stops quietly.
  void BeginStop(const std::string& reason) {
    if (stopping_) {
      Log("still stopping: waiting for " + std::to_string(service_.running_operations()) +
          " running operation(s) to reach a safe point");
      return;
    }
    stopping_ = true;
    if (!reason.empty()) {
      Log("stopping (" + reason + "): no new requests; waiting for " +
          std::to_string(service_.running_operations()) +
          " running operation(s) to reach a safe point");
      service_.CancelOperations("the server is stopping: " + reason);
    }
    http_.Shutdown([this] {
      http_closed_ = true;
      MaybeFinish();
    });
    MaybeFinish();
  }

  void MaybeFinish() {
    service_.JoinFinished();
    if (!stopping_ || !http_closed_ || requests_in_flight_ > 0 ||
        service_.running_operations() > 0 || handles_closed_) {
      return;
    }
    handles_closed_ = true;
    {
      std::lock_guard<std::mutex> lock(mailbox_->mu);
      mailbox_->closed = true;
      mailbox_->posts.clear();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    stop_watch_.reset();  // closes its handle too
  }

 private:
  void Log(const std::string& line) {
    if (log_) log_(line);
  }

  void RunPosts() {
    std::deque<std::function<void()>> posts;
    {
      std::lock_guard<std::mutex> lock(mailbox_->mu);
      posts.swap(mailbox_->posts);
    }
    for (auto& fn : posts) fn();
    MaybeFinish();
  }

  void OnRequest(HttpRequest request, HttpServer::Reply reply) {
    const auto began = std::chrono::steady_clock::now();
    const std::string request_id = NewRequestId();
    auto finish = [this, began, request_id, method = request.method, remote = request.remote](
                      const HttpServer::Reply& reply, HttpResponse response,
                      const std::string& action, const std::string& key) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began)
              .count();
      std::string code;
      if (response.status >= 400) {
        const size_t start = response.body.find("<Code>");
        const size_t end = response.body.find("</Code>");
        if (start != std::string::npos && end != std::string::npos) {
          code = " " + response.body.substr(start + 6, end - start - 6);
        }
      }
      char took[32];
      std::snprintf(took, sizeof(took), "%.1f ms", ms);
      Log(remote + " " + method + " " + action + " " + std::to_string(response.status) + code +
          " " + took + " key=" + (key.empty() ? "-" : key) + " request=" + request_id);
      reply(std::move(response));
    };
    auto refuse = [&](const ApiError& error, const std::string& key = "") {
      finish(reply, ErrorResponse(error, request_id), "-", key);
    };
    if (stopping_) {
      return refuse(ApiError::Of("ServiceUnavailable", "The server is shutting down."));
    }
    if (request.method != "GET" && request.method != "POST") {
      ApiError error = ApiError::Of(
          "InvalidAction", "Method " + request.method + " is not allowed; use POST or GET.");
      error.code = "MethodNotAllowed";
      error.http_status = 405;
      return refuse(error);
    }
    if (CanonicalUri(request.path) != "/") {
      ApiError error = ApiError::Of(
          "InvalidAction", "No such resource " + request.path + ": the API is served at /.");
      error.code = "NotFound";
      error.http_status = 404;
      return refuse(error);
    }
    SecretLookup lookup = [this](std::string_view key) -> std::optional<std::string> {
      auto it = secrets_.find(std::string(key));
      if (it == secrets_.end()) return std::nullopt;
      return it->second;
    };
    auto authenticated = AuthenticateRequest(request, lookup, Clock::now());
    if (auto* error = std::get_if<ApiError>(&authenticated)) return refuse(*error);
    auto [params, caller] = std::get<std::pair<QueryParams, Caller>>(std::move(authenticated));
    ++requests_in_flight_;
    // Requests that talk to nodes wait on them (up to their timeouts); the others (snapshots in
    // storage, events) are answered by threads of their own, so that a node that never answers
    // delays only the requests that ask about it.
    WorkerPool& workers =
        ApiService::TalksToNodes(params.Get("Action").value_or("")) ? node_pool_ : pool_;
    workers.Submit(
        [this, params = std::move(params), caller = caller, request_id, reply, finish]() mutable {
          std::string action;
          HttpResponse response = service_.Handle(std::move(params), request_id, caller, &action);
          Post([this, response = std::move(response), action, key = caller.access_key_id, reply,
                finish]() mutable {
            --requests_in_flight_;
            finish(reply, std::move(response), action, key);
          });
        });
  }

  Loop& loop_;
  std::shared_ptr<Mailbox> mailbox_;
  std::map<std::string, std::string> secrets_;
  ApiService& service_;
  WorkerPool& pool_;       // requests answered from storage and state
  WorkerPool& node_pool_;  // requests that talk to nodes
  std::function<void(std::string_view)> log_;
  HttpServer http_;
  uv_async_t async_{};
  bool stopping_ = false;
  std::optional<CancelWatch> stop_watch_;
  bool http_closed_ = false;
  bool handles_closed_ = false;
  size_t requests_in_flight_ = 0;
};

}  // namespace
}  // namespace detail

Status Serve(const Fleet& fleet, const ServeOptions& options) {
  using namespace detail;
  // A peer that closes early must not kill the server when a response is written to it.
  std::signal(SIGPIPE, SIG_IGN);
  auto log_mu = std::make_shared<std::mutex>();
  std::function<void(std::string_view)> log = [log_mu, &options](std::string_view line) {
    if (!options.log) return;
    std::lock_guard<std::mutex> lock(*log_mu);
    options.log(line);
  };

  if (fleet.api.credentials.empty()) {
    return Status::Error(
        "the fleet file has no [[api.credentials]]: every request would be "
        "refused (add access_key_id and secret_access_key_env or "
        "secret_access_key_file)");
  }
  std::map<std::string, std::string> secrets;
  for (const ApiCredential& credential : fleet.api.credentials) {
    ResolvedSecret secret = ResolveApiSecret(credential);
    if (!secret.ok() || !secret.value) {
      return Status::Error("api.credentials " + credential.access_key_id + ": " + secret.error);
    }
    secrets[credential.access_key_id] = *secret.value;
  }
  auto opened = ApiState::Open(fleet.api.state);
  if (auto* error = std::get_if<std::string>(&opened)) return Status::Error(*error);
  std::unique_ptr<ApiState> state = std::get<std::unique_ptr<ApiState>>(std::move(opened));
  for (const std::string& line : state->recovered()) log("recovered: " + line);
  // Partial snapshots of operations that died with an earlier server.
  std::error_code ec;
  if (std::filesystem::exists(fleet.storage.path, ec)) {
    auto store = SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadWrite);
    if (auto* s = std::get_if<SnapshotStore>(&store)) {
      auto swept = s->SweepAbandonedPartials();
      if (auto* removed = std::get_if<std::vector<std::string>>(&swept)) {
        for (const std::string& name : *removed) log("removed abandoned " + name);
      }
    }
  }

  Loop loop;
  auto mailbox = std::make_shared<Mailbox>();
  // Called on an operation's thread when it has ended, so that a stopping server sees it.
  ApiService service(fleet, std::move(state), log, [mailbox] { mailbox->Wake(); });
  Status result;
  {
    WorkerPool pool(2);
    WorkerPool node_pool(options.request_threads);
    ServerRun run(loop, mailbox, std::move(secrets), service, pool, node_pool, log);
    const Endpoint listen = options.listen.value_or(fleet.api.listen);
    result = run.http().Listen(listen);
    if (!result.ok()) {
      run.BeginStop("");  // nothing to stop: close the handles quietly
    } else {
      ServerRun* run_ptr = &run;
      run.WatchStop(options.stop);
      log("listening on http://" + run.http().bound().ToString() + "/ (state " +
          fleet.api.state.string() + ", storage " + fleet.storage.path.string() + ")");
      if (options.on_listening) {
        options.on_listening(run.http().bound(), [mailbox, run_ptr] {
          // Runs on the loop only while the run is alive; dropped after it has closed.
          mailbox->Post([run_ptr] { run_ptr->BeginStop("stop requested"); });
        });
      }
    }
    uv_run(loop.get(), UV_RUN_DEFAULT);
  }
  service.JoinFinished();
  if (result.ok()) log("stopped");
  return result;
}

}  // namespace finalsnap
