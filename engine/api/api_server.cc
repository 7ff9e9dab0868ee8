// The API server (finalsnap/api.h, api_server.h): authentication, the worker pools, and Serve(),
// which runs the HTTP server, the stop watch and the shutdown sequence on one libuv loop.
#include "api_server.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "finalsnap/api.h"
#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "loop.h"

namespace finalsnap {
namespace detail {
namespace {

using Clock = std::chrono::system_clock;

bool IsFormContentType(std::string_view type) {
  const std::string lower = Lower(type);
  return lower.rfind("application/x-www-form-urlencoded", 0) == 0;
}

}  // namespace

Expected<std::pair<QueryParams, Caller>, ApiError> AuthenticateRequest(const HttpRequest& request,
                                                                       const SecretLookup& secrets,
                                                                       Clock::time_point now) {
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
  if (Expected<void, ApiError> e = params.AddForm(request.query); !e.ok()) return e.error();
  if (!request.body.empty()) {
    const std::optional<std::string_view> type = request.Header("content-type");
    if (!type || !IsFormContentType(*type)) {
      return ApiError::Of("InvalidParameterValue",
                          "A request body must be form-encoded (Content-Type: "
                          "application/x-www-form-urlencoded).");
    }
    if (Expected<void, ApiError> e = params.AddForm(request.body); !e.ok()) return e.error();
  }
  return std::make_pair(std::move(params), Caller{verdict.access_key_id, verdict.region});
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
            WorkerPool& node_pool, HttpLimits limits, std::function<void(std::string_view)> log)
      : loop_(loop),
        mailbox_(std::move(mailbox)),
        secrets_(std::move(secrets)),
        service_(service),
        pool_(pool),
        node_pool_(node_pool),
        log_(std::move(log)),
        http_(
            loop, limits,
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
    // The log line names the error's code as the answer carries it, never read back out of
    // the XML it was rendered into.
    auto finish = [this, began, request_id, method = request.method, remote = request.remote](
                      const HttpServer::Reply& reply, ApiService::Answer answer,
                      const std::string& key) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began)
              .count();
      const std::string code = answer.error_code.empty() ? "" : " " + answer.error_code;
      char took[32];
      std::snprintf(took, sizeof(took), "%.1f ms", ms);
      Log(remote + " " + method + " " + answer.action + " " +
          std::to_string(answer.response.status) + code + " " + took +
          " key=" + (key.empty() ? "-" : key) + " request=" + request_id);
      reply(std::move(answer.response));
    };
    auto refuse = [&](const ApiError& error) {
      finish(reply, ApiService::Answer{ErrorResponse(error, request_id), "-", error.code}, "");
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
    if (!authenticated.ok()) return refuse(authenticated.error());
    auto [params, caller] = std::move(authenticated).value();
    ++requests_in_flight_;
    // Requests that talk to nodes wait on them (up to their timeouts); the others (snapshots in
    // storage, events) are answered by threads of their own, so that a node that never answers
    // delays only the requests that ask about it.
    WorkerPool& workers =
        ApiService::TalksToNodes(params.Get("Action").value_or("")) ? node_pool_ : pool_;
    workers.Submit([this, params = std::move(params), caller = caller, request_id, reply,
                    finish]() mutable {
      ApiService::Answer answer = service_.Handle(std::move(params), request_id, caller);
      // Only a request whose signature verified gets here: its connection is no longer one of
      // the unauthenticated ones the server may close to make room (HttpLimits).
      answer.response.authenticated = true;
      Post([this, answer = std::move(answer), key = caller.access_key_id, reply, finish]() mutable {
        --requests_in_flight_;
        finish(reply, std::move(answer), key);
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
    if (!secret.ok()) {
      return Status::Error("api.credentials " + credential.access_key_id + ": " +
                           secret.error().message());
    }
    secrets[credential.access_key_id] = secret->value_or("");
  }
  Expected<std::unique_ptr<ApiState>> opened = ApiState::Open(fleet.api.state);
  if (!opened.ok()) return opened.error();
  std::unique_ptr<ApiState> state = std::move(opened).value();
  for (const std::string& line : state->recovered()) log("recovered: " + line);
  // Operations that died with an earlier server (or any finalsnap process using this storage):
  // repaired from their journals, each repair logged and recorded as an event of its target.
  std::error_code ec;
  if (std::filesystem::exists(fleet.storage.path, ec)) {
    const RecoveryReport report = Recover(fleet);
    for (const Recovery& r : report.recovered) {
      const std::string_view type =
          r.replication_group ? kSourceReplicationGroup : kSourceCacheCluster;
      std::vector<std::string> lines = r.repairs;
      for (const std::string& f : r.failures) lines.push_back("could not repair: " + f);
      if (r.pending_delete) lines.push_back("the delete is unfinished; run it again to finish it");
      for (const std::string& line : lines) {
        log("recovered operation " + r.operation_id + " (" + r.command + " " + r.target +
            "): " + line);
        state->AddEvent(type, r.target, "Recovery of operation " + r.operation_id + ": " + line);
      }
    }
    for (const std::string& e : report.errors) log(e);
  }

  Loop loop;
  auto mailbox = std::make_shared<Mailbox>();
  // Called on an operation's thread when it has ended, so that a stopping server sees it.
  ApiService service(fleet, std::move(state), log, [mailbox] { mailbox->Wake(); });
  Status result;
  {
    WorkerPool pool(2);
    WorkerPool node_pool(options.request_threads);
    HttpLimits limits;
    if (options.request_timeout) limits.request_timeout = *options.request_timeout;
    if (options.write_timeout) limits.write_timeout = *options.write_timeout;
    if (options.idle_timeout) limits.idle_timeout = *options.idle_timeout;
    ServerRun run(loop, mailbox, std::move(secrets), service, pool, node_pool, limits, log);
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
