// The ElastiCache actions behind `finalsnap serve` (finalsnap/api.h) and the request path in
// front of them:
//
//   HttpServer (loop thread) ── AuthenticateRequest: SigV4 over the raw request, then the
//        │                      form and query parameters; a refusal is answered here and
//        │                      nothing else runs
//        ▼
//   worker thread ── ApiService::Handle: Action, Version, the action's parameters (unknown
//        │           ones refused), the answer as Query-protocol XML
//        ▼
//   operation thread (one per delete or snapshot) ── the engine's synchronous operation on its
//        own libuv loop; ApiState::Finish records gates, outcome and events when it returns
//
// ApiService is usable without the HTTP server (the unit tests call Handle directly).
#ifndef FINALSNAP_ENGINE_API_SERVER_H_
#define FINALSNAP_ENGINE_API_SERVER_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "api_state.h"
#include "finalsnap/fleet.h"
#include "http_server.h"
#include "query_api.h"

namespace finalsnap::detail {

// Who signed a request that passed SigV4.
struct Caller {
  std::string access_key_id;
  std::string region;
};

// Checks the signature (sigv4.h) and then gathers the parameters: the query string's and, for a
// form-encoded body, the body's. Returns the parameters, or the error to answer with. Nothing
// but this function looks at an unauthenticated request.
std::variant<std::pair<QueryParams, Caller>, ApiError> AuthenticateRequest(
    const HttpRequest& request, const SecretLookup& secrets,
    std::chrono::system_clock::time_point now);

// The HTTP response for an error.
HttpResponse ErrorResponse(const ApiError& error, const std::string& request_id);

class ApiService {
 public:
  // `on_operation_end` is called on the operation's thread after each operation has ended and
  // been recorded (the server wakes its loop with it).
  ApiService(Fleet fleet, std::unique_ptr<ApiState> state,
             std::function<void(std::string_view)> log, std::function<void()> on_operation_end);
  // Waits for every running operation to end.
  ~ApiService();
  ApiService(const ApiService&) = delete;
  ApiService& operator=(const ApiService&) = delete;

  // Answers one authenticated request. Blocking (describes talk to the nodes): call it from a
  // worker thread. `action` is set to the Action parameter (for the log).
  HttpResponse Handle(QueryParams params, const std::string& request_id, const Caller& caller,
                      std::string* action = nullptr);

  // Whether answering `action` may wait on nodes (describes and the actions that check a
  // target's state); the server answers those on threads apart from the others.
  static bool TalksToNodes(std::string_view action);

  size_t running_operations() const;
  // Cancels every running operation (and any started after), with `reason`: each stops at its
  // next step, puts its nodes back and ends as Interrupted.
  void CancelOperations(const std::string& reason) { cancel_.Cancel(reason); }
  // Joins the threads of operations that have ended.
  void JoinFinished();
  ApiState& state() { return *state_; }

 private:
  using Result = std::variant<ModelJson, ApiError>;
  Result DeleteCacheCluster(QueryParams& params, const std::string& request_id,
                            const Caller& caller);
  Result DeleteReplicationGroup(QueryParams& params, const std::string& request_id,
                                const Caller& caller);
  Result CreateSnapshot(QueryParams& params, const std::string& request_id, const Caller& caller);
  Result DescribeSnapshots(QueryParams& params);
  Result DeleteSnapshot(QueryParams& params, const Caller& caller);
  Result DescribeCacheClusters(QueryParams& params);
  Result DescribeReplicationGroups(QueryParams& params);
  Result DescribeEvents(QueryParams& params);

  // Refuses a snapshot name ElastiCache would refuse, or one that is taken.
  std::optional<ApiError> CheckNewSnapshotName(const std::string& name) const;
  // Registers and starts an operation on its own thread.
  std::variant<ApiOperation, ApiError> Start(ApiOperation op, const std::string& event);
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

#endif  // FINALSNAP_ENGINE_API_SERVER_H_
