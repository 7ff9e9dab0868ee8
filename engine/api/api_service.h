// ApiService: the ElastiCache actions behind `finalsnap serve` (finalsnap/api.h), answered from a
// request's parameters. Usable without the HTTP server (the unit tests call Handle directly);
// api_server.h has the request path in front of it.
//
// Every action is one row of one table (Actions() in api_service.cc): its name in the Query
// protocol, the parameters it takes (ParamRule: type, bounds, required or refused), the member
// function that answers it, whether answering may wait on nodes, and, for the three that start
// an operation, the engine call that runs it. Handle finds the row, checks Version, reads the
// parameters by the row's rules and calls the handler; the server asks the same row which
// threads answer the request, and an operation's thread asks it which engine call to make.
// Nothing else compares action names.
//
//   api_service.cc     the table, Handle, the operation threads
//   api_operations.cc  DeleteCacheCluster, DeleteReplicationGroup, CreateSnapshot, DeleteSnapshot
//   api_describes.cc   DescribeSnapshots, DescribeCacheClusters, DescribeReplicationGroups,
//                      DescribeEvents
//
//   worker thread ── Handle: Action, Version, the parameters (unknown ones refused), the
//        │           handler, the answer as Query-protocol XML
//        ▼
//   operation thread (one per delete or snapshot) ── the engine's synchronous operation on its
//        own libuv loop; ApiState::Finish records gates, outcome and events when it returns
#ifndef FINALSNAP_ENGINE_API_SERVICE_H_
#define FINALSNAP_ENGINE_API_SERVICE_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api_state.h"
#include "finalsnap/cancel.h"
#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/status.h"
#include "http_server.h"
#include "query_api.h"

namespace finalsnap::detail {

// MaxRecords bounds, per action, from the ElastiCache API reference.
inline constexpr int kMinRecords = 20;
inline constexpr int kMaxRecordsDefault = 100;
inline constexpr int kMaxSnapshotRecords = 50;

// Who signed a request that passed SigV4.
struct Caller {
  std::string access_key_id;
  std::string region;
};

// What a handler knows of its request besides the parameters.
struct RequestContext {
  const std::string& request_id;
  const Caller& caller;
};

// The HTTP response for an error.
HttpResponse ErrorResponse(const ApiError& error, const std::string& request_id);

class ApiService {
 public:
  // A handler's answer: the result shape's members, or the error to answer with.
  using Result = Expected<ModelJson, ApiError>;

  // One row of the action table.
  struct Action {
    std::string_view name;  // the Action parameter, compared exactly
    Result (ApiService::*handler)(const ActionArgs& args, const RequestContext& request);
    std::span<const ParamRule> params;  // read in this order
    // Answering may wait on nodes, up to their timeouts (describes, and the checks before an
    // operation starts): the server answers it on threads apart from the others.
    bool talks_to_nodes = false;
    // For an action that starts an operation: the engine call that runs it, on its own thread.
    OperationResult (*run)(const Fleet& fleet, const ApiOperation& op,
                           const OperationOptions& options) = nullptr;
  };

  // The row for `action`, or null when finalsnap does not serve it.
  static const Action* FindAction(std::string_view action);
  // Whether answering `action` may wait on nodes (its row's talks_to_nodes).
  static bool TalksToNodes(std::string_view action);

  // `on_operation_end` is called on the operation's thread after each operation has ended and
  // been recorded (the server wakes its loop with it).
  ApiService(Fleet fleet, std::unique_ptr<ApiState> state,
             std::function<void(std::string_view)> log, std::function<void()> on_operation_end);
  // Waits for every running operation to end.
  ~ApiService();
  ApiService(const ApiService&) = delete;
  ApiService& operator=(const ApiService&) = delete;

  struct Answer {
    HttpResponse response;
    std::string action;      // the Action parameter ("-" when there was none), for the log
    std::string error_code;  // the error's code, empty on success, for the log
  };
  // Answers one authenticated request. Blocking (describes talk to the nodes): call it from a
  // worker thread.
  Answer Handle(QueryParams params, const std::string& request_id, const Caller& caller);

  size_t running_operations() const;
  // Cancels every running operation (and any started after), with `reason`: each stops at its
  // next step, puts its nodes back and ends as Interrupted.
  void CancelOperations(const std::string& reason) { cancel_.Cancel(reason); }
  // Joins the threads of operations that have ended.
  void JoinFinished();
  ApiState& state() { return *state_; }

 private:
  static std::span<const Action> Actions();

  // The handlers (api_operations.cc and api_describes.cc), one per row.
  Result DeleteCacheCluster(const ActionArgs& args, const RequestContext& request);
  Result DeleteReplicationGroup(const ActionArgs& args, const RequestContext& request);
  Result CreateSnapshot(const ActionArgs& args, const RequestContext& request);
  Result DeleteSnapshot(const ActionArgs& args, const RequestContext& request);
  Result DescribeSnapshots(const ActionArgs& args, const RequestContext& request);
  Result DescribeCacheClusters(const ActionArgs& args, const RequestContext& request);
  Result DescribeReplicationGroups(const ActionArgs& args, const RequestContext& request);
  Result DescribeEvents(const ActionArgs& args, const RequestContext& request);

  // Refuses a snapshot name ElastiCache would refuse, or one that is taken.
  Expected<void, ApiError> CheckNewSnapshotName(const std::string& name) const;
  // Registers and starts an operation on its own thread.
  Expected<void, ApiError> Start(ApiOperation op, const std::string& event);
  void RunOperation(ApiOperation op);
  std::string GroupIdentity(const ReplicationGroupEntry& entry) const;
  // The fleet's view of a group with what the engine discovered, or a stub when it has nothing.
  ReplicationGroupInfo DescribeGroup(const ReplicationGroupEntry& entry);
  void Log(std::string_view line);

  const Fleet fleet_;
  std::unique_ptr<ApiState> state_;
  std::function<void(std::string_view)> log_;
  std::function<void()> on_operation_end_;

  mutable std::mutex threads_mu_;
  std::condition_variable threads_cv_;
  std::map<std::string, std::thread> threads_;  // by operation id
  std::vector<std::string> finished_;           // ended, not yet joined
  size_t running_ = 0;
  CancelToken cancel_;  // given to every operation
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_API_SERVICE_H_
