// ApiService (api_service.h): the action table, the one dispatcher over it, and the operation
// threads. The handlers are in api_operations.cc and api_describes.cc.
#include "api_service.h"

#include <exception>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"

namespace finalsnap::detail {
namespace {

using Kind = ParamRule::Kind;

// Each action's parameters, in the order they are read (so the first problem reported is the
// same whatever else is wrong), from the ElastiCache API reference.
constexpr ParamRule kDeleteCacheClusterParams[] = {
    {.name = "CacheClusterId", .required = true},
    {.name = "FinalSnapshotIdentifier"},
};
constexpr ParamRule kDeleteReplicationGroupParams[] = {
    {.name = "ReplicationGroupId", .required = true},
    {.name = "RetainPrimaryCluster", .kind = Kind::kBool},
    {.name = "FinalSnapshotIdentifier"},
};
constexpr ParamRule kCreateSnapshotParams[] = {
    {.name = "SnapshotName", .required = true},
    {.name = "CacheClusterId"},
    {.name = "ReplicationGroupId"},
    {.name = "KmsKeyId",
     .kind = Kind::kUnsupported,
     .refusal = "KmsKeyId is not supported: snapshots are stored under the fleet's "
                "storage.path, not encrypted with KMS."},
    {.name = "Tags.",
     .kind = Kind::kUnsupported,
     .refusal = "Tags are not supported on snapshots."},
};
constexpr ParamRule kDescribeSnapshotsParams[] = {
    {.name = "SnapshotName"},
    {.name = "CacheClusterId"},
    {.name = "ReplicationGroupId"},
    {.name = "SnapshotSource"},
    {.name = "MaxRecords", .kind = Kind::kInt, .min = kMinRecords, .max = kMaxSnapshotRecords},
    {.name = "Marker"},
    {.name = "ShowNodeGroupConfig", .kind = Kind::kBool},
};
constexpr ParamRule kDeleteSnapshotParams[] = {
    {.name = "SnapshotName", .required = true},
};
constexpr ParamRule kDescribeCacheClustersParams[] = {
    {.name = "CacheClusterId"},
    {.name = "MaxRecords", .kind = Kind::kInt, .min = kMinRecords, .max = kMaxRecordsDefault},
    {.name = "Marker"},
    {.name = "ShowCacheNodeInfo", .kind = Kind::kBool},
    {.name = "ShowCacheClustersNotInReplicationGroups", .kind = Kind::kBool},
};
constexpr ParamRule kDescribeReplicationGroupsParams[] = {
    {.name = "ReplicationGroupId"},
    {.name = "MaxRecords", .kind = Kind::kInt, .min = kMinRecords, .max = kMaxRecordsDefault},
    {.name = "Marker"},
};
constexpr ParamRule kDescribeEventsParams[] = {
    {.name = "SourceIdentifier"},
    {.name = "SourceType"},
    {.name = "StartTime", .kind = Kind::kTime},
    {.name = "EndTime", .kind = Kind::kTime},
    {.name = "Duration", .kind = Kind::kInt, .min = 0, .max = 20160},  // 14 days in minutes
    {.name = "MaxRecords", .kind = Kind::kInt, .min = kMinRecords, .max = kMaxRecordsDefault},
    {.name = "Marker"},
};

std::optional<std::string> FinalSnapshot(const ApiOperation& op) {
  if (op.snapshot_name.empty()) return std::nullopt;
  return op.snapshot_name;
}

}  // namespace

std::span<const ApiService::Action> ApiService::Actions() {
  // The order is the one the InvalidAction message lists them in.
  static const Action kActions[] = {
      {"DeleteCacheCluster", &ApiService::DeleteCacheCluster, kDeleteCacheClusterParams, true,
       [](const Fleet& fleet, const ApiOperation& op, const OperationOptions& options) {
         return finalsnap::DeleteCacheCluster(fleet, op.target_id, FinalSnapshot(op), options);
       }},
      {"DeleteReplicationGroup", &ApiService::DeleteReplicationGroup, kDeleteReplicationGroupParams,
       true,
       [](const Fleet& fleet, const ApiOperation& op, const OperationOptions& options) {
         return finalsnap::DeleteReplicationGroup(fleet, op.target_id, FinalSnapshot(op),
                                                  op.retain_primary_cluster, options);
       }},
      {"CreateSnapshot", &ApiService::CreateSnapshot, kCreateSnapshotParams, true,
       [](const Fleet& fleet, const ApiOperation& op, const OperationOptions& options) {
         return op.source_type == kSourceCacheCluster
                    ? finalsnap::CreateSnapshot(fleet, op.target_id, op.snapshot_name, options)
                    : CreateReplicationGroupSnapshot(fleet, op.target_id, op.snapshot_name,
                                                     options);
       }},
      // Answered from storage and state: never waits on a node.
      {"DescribeSnapshots", &ApiService::DescribeSnapshots, kDescribeSnapshotsParams, false},
      {"DeleteSnapshot", &ApiService::DeleteSnapshot, kDeleteSnapshotParams, false},
      {"DescribeCacheClusters", &ApiService::DescribeCacheClusters, kDescribeCacheClustersParams,
       true},
      {"DescribeReplicationGroups", &ApiService::DescribeReplicationGroups,
       kDescribeReplicationGroupsParams, true},
      {"DescribeEvents", &ApiService::DescribeEvents, kDescribeEventsParams, false},
  };
  return kActions;
}

const ApiService::Action* ApiService::FindAction(std::string_view action) {
  for (const Action& a : Actions()) {
    if (a.name == action) return &a;
  }
  return nullptr;
}

bool ApiService::TalksToNodes(std::string_view action) {
  const Action* a = FindAction(action);
  return a != nullptr && a->talks_to_nodes;
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

ApiService::Answer ApiService::Handle(QueryParams params, const std::string& request_id,
                                      const Caller& caller) {
  AcceptProtocolParams(params);
  Answer answer;
  auto fail = [&](const ApiError& error) {
    answer.response = ErrorResponse(error, request_id);
    answer.error_code = error.code;
    return answer;
  };
  const std::optional<std::string> name = params.Get("Action");
  answer.action = name.value_or("-");
  if (!name || name->empty()) {
    return fail(ApiError::Of("MissingAction", "The request must contain the parameter Action."));
  }
  const Action* action = FindAction(*name);
  if (action == nullptr) {
    std::string served;
    const std::span<const Action> actions = Actions();
    for (size_t i = 0; i < actions.size(); ++i) {
      served += (i == 0 ? "" : i + 1 == actions.size() ? " and " : ", ");
      served += actions[i].name;
    }
    return fail(ApiError::Of("InvalidAction", "The action " + *name +
                                                  " is not valid for this web service "
                                                  "(finalsnap serves " +
                                                  served + ")."));
  }
  const std::optional<std::string> version = params.Get("Version");
  if (!version) {
    return fail(
        ApiError::Of("MissingParameter", "The request must contain the parameter Version."));
  }
  if (*version != kApiVersion) {
    return fail(ApiError::Of("NoSuchVersion", "The requested version (" + *version +
                                                  ") of service ElastiCache does not exist; "
                                                  "this server speaks " +
                                                  std::string(kApiVersion) + "."));
  }
  try {
    Expected<ActionArgs, ApiError> args = ActionArgs::Read(params, action->params);
    if (!args.ok()) return fail(args.error());
    Result result = (this->*action->handler)(*args, RequestContext{request_id, caller});
    if (!result.ok()) return fail(result.error());
    answer.response.body = RenderResponse(action->name, *result, request_id);
    answer.response.headers.emplace_back("x-amzn-RequestId", request_id);
    return answer;
  } catch (const std::exception& e) {
    return fail(ApiError::Of("InternalFailure", std::string("internal error: ") + e.what()));
  }
}

Expected<void, ApiError> ApiService::CheckNewSnapshotName(const std::string& name) const {
  if (Status s = CheckSnapshotName(name); !s.ok()) {
    return ApiError::Of("InvalidParameterValue",
                        "Invalid snapshot name " + name + ": " + s.message());
  }
  std::error_code ec;
  if (std::filesystem::exists(fleet_.storage.path, ec)) {
    Expected<SnapshotStore> opened =
        SnapshotStore::Open(fleet_.storage.path, SnapshotStore::Access::kReadOnly);
    if (opened.ok() && opened->Exists(name)) {
      return ApiError::Of("SnapshotAlreadyExistsFault", "Snapshot " + name + " already exists.");
    }
  }
  return {};
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

Expected<void, ApiError> ApiService::Start(ApiOperation op, const std::string& event) {
  Expected<ApiOperation, ApiError> begun = state_->Begin(std::move(op), event);
  if (!begun.ok()) return begun.error();
  const ApiOperation& started = *begun;
  std::lock_guard<std::mutex> lock(threads_mu_);
  ++running_;
  threads_[started.id] = std::thread([this, copy = started] { RunOperation(copy); });
  Log("operation " + started.id + " started: " + started.action + " " + started.target_id +
      (started.snapshot_name.empty() ? "" : " snapshot " + started.snapshot_name));
  return {};
}

void ApiService::RunOperation(ApiOperation op) {
  OperationResult result;
  try {
    const Action* action = FindAction(op.action);
    if (action == nullptr || action->run == nullptr) {
      throw std::logic_error("no operation for action " + op.action);
    }
    OperationOptions options;
    options.cancel = cancel_;
    // Gate verdicts become events as they happen: DescribeEvents shows a delete in progress.
    options.observer = [this, &op](const OperationEvent& e) {
      if (e.kind == OperationEvent::Kind::kGate) state_->RecordGate(op.id, e.gate);
      if (e.kind == OperationEvent::Kind::kRecovery) {
        state_->AddEvent(op.source_type, op.target_id, "Recovery: " + e.message);
      }
    };
    result = action->run(fleet_, op, options);
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

}  // namespace finalsnap::detail
