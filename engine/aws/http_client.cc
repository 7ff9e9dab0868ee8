// HttpClient (http_client.h): libcurl's multi interface driven by the loop. curl tells us which
// sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t each) and when to wake it
// (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we call curl_multi_socket_action when either fires
// and resume the coroutines whose transfers finished.
#include "http_client.h"

#include <curl/curl.h>

#include <cstdlib>
#include <mutex>

#include "finalsnap/text.h"

namespace finalsnap::detail {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// One socket curl asked us to watch.
struct SocketWatch {
  uv_poll_t poll;
  curl_socket_t fd;
  HttpClient::Impl* impl;
};

}  // namespace

// One request on its way: the easy handle, what it sends and what came back. It lives in the
// frame of Send's coroutine; a frame destroyed while its request runs (its owner gave up on it)
// takes the request out of the multi handle first.
struct Transfer {
  HttpRequest request;
  HttpResponse response;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  size_t body_offset = 0;  // bytes of request.body handed to curl so far
  std::string abort_reason;
  std::coroutine_handle<> waiter;
  HttpClient::Impl* running_on = nullptr;  // set while added to the multi handle

  ~Transfer();
};

struct HttpClient::Impl {
  Loop& loop;
  CURLM* multi = nullptr;
  uv_timer_t* timer = nullptr;  // freed in its close callback
  size_t in_flight = 0;

  explicit Impl(Loop& l) : loop(l) {}

  void Act(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi, fd, flags, &running);
    Finish();
  }

  // Collects the finished transfers, then resumes their coroutines: a resumed coroutine may
  // start new requests, so nothing of curl's is being walked while it runs.
  void Finish() {
    std::vector<Transfer*> done;
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      Transfer* transfer = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &transfer);
      const CURLcode code = message->data.result;
      long status = 0;
      curl_easy_getinfo(message->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi, message->easy_handle);
      transfer->running_on = nullptr;
      HttpResponse& response = transfer->response;
      response.status = static_cast<int>(status);
      if (code != CURLE_OK) {
        response.error = !transfer->abort_reason.empty() ? transfer->abort_reason
                                                         : std::string(curl_easy_strerror(code));
        if (code == CURLE_OPERATION_TIMEDOUT) response.error += " (the peer stalled)";
      }
      done.push_back(transfer);
    }
    for (Transfer* transfer : done) {
      --in_flight;
      transfer->waiter.resume();
    }
  }
};

Transfer::~Transfer() {
  if (running_on != nullptr) {
    curl_multi_remove_handle(running_on->multi, easy);
    --running_on->in_flight;
  }
  if (easy != nullptr) curl_easy_cleanup(easy);
  curl_slist_free_all(header_list);
}

namespace {

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* watch = static_cast<SocketWatch*>(handle->data);
  int flags = 0;
  if (status < 0) flags |= CURL_CSELECT_ERR;
  if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
  if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
  watch->impl->Act(watch->fd, flags);
}

int OnSocket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
  auto* impl = static_cast<HttpClient::Impl*>(userp);
  auto* watch = static_cast<SocketWatch*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (watch != nullptr) {
      uv_poll_stop(&watch->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
               [](uv_handle_t* h) { delete static_cast<SocketWatch*>(h->data); });
      curl_multi_assign(impl->multi, fd, nullptr);
    }
    return 0;
  }
  if (watch == nullptr) {
    watch = new SocketWatch{};
    watch->fd = fd;
    watch->impl = impl;
    if (uv_poll_init_socket(impl->loop.get(), &watch->poll, fd) != 0) {
      delete watch;
      return -1;
    }
    watch->poll.data = watch;
    curl_multi_assign(impl->multi, fd, watch);
  }
  int events = 0;
  if ((what & CURL_POLL_IN) != 0) events |= UV_READABLE;
  if ((what & CURL_POLL_OUT) != 0) events |= UV_WRITABLE;
  uv_poll_start(&watch->poll, events, OnPoll);
  return 0;
}

int OnTimer(CURLM*, long timeout_ms, void* userp) {
  auto* impl = static_cast<HttpClient::Impl*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(impl->timer);
  } else {
    // A 0 ms timeout fires on the next loop turn: curl must not be re-entered from here.
    uv_timer_start(
        impl->timer,
        [](uv_timer_t* t) { static_cast<HttpClient::Impl*>(t->data)->Act(CURL_SOCKET_TIMEOUT, 0); },
        static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

size_t OnHeader(char* data, size_t size, size_t count, void* userp) {
  auto* transfer = static_cast<Transfer*>(userp);
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    transfer->response.headers.clear();  // a new response (after 100 Continue)
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    transfer->response.headers.emplace_back(Lower(TrimSpace(line.substr(0, colon))),
                                            std::string(TrimSpace(line.substr(colon + 1))));
  }
  return size * count;
}

size_t OnWrite(char* data, size_t size, size_t count, void* userp) {
  auto* transfer = static_cast<Transfer*>(userp);
  const size_t n = size * count;
  transfer->response.body_bytes += n;
  long status = 0;
  curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
  const bool streamed = transfer->request.on_body && status >= 200 && status < 300;
  if (streamed) {
    if (!transfer->request.on_body(std::string_view(data, n))) {
      transfer->abort_reason = "the response body was refused by its reader";
      return 0;
    }
    return n;
  }
  if (transfer->response.body.size() + n > transfer->request.max_body) {
    transfer->abort_reason =
        "the response body is larger than " + std::to_string(transfer->request.max_body) + " bytes";
    return 0;
  }
  transfer->response.body.append(data, n);
  return n;
}

size_t OnRead(char* buffer, size_t size, size_t count, void* userp) {
  auto* transfer = static_cast<Transfer*>(userp);
  const std::span<const char> body = transfer->request.body;
  const size_t n = std::min(size * count, body.size() - transfer->body_offset);
  std::copy_n(body.data() + transfer->body_offset, n, buffer);
  transfer->body_offset += n;
  return n;
}

// Rewinds the request body when curl must send it again (a reused connection that closed).
int OnSeek(void* userp, curl_off_t offset, int origin) {
  auto* transfer = static_cast<Transfer*>(userp);
  if (origin != SEEK_SET || offset < 0 ||
      static_cast<size_t>(offset) > transfer->request.body.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  transfer->body_offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// Sets up the easy handle of `transfer`; "" or what could not be set.
std::string Prepare(Transfer& transfer) {
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return "curl_easy_init failed";
  transfer.easy = easy;
  const HttpRequest& request = transfer.request;
  for (const auto& [name, value] : request.headers) {
    transfer.header_list = curl_slist_append(transfer.header_list, (name + ": " + value).c_str());
  }
  // No "Expect: 100-continue" round trip before each body, and no Accept header of curl's.
  transfer.header_list = curl_slist_append(transfer.header_list, "Expect:");
  transfer.header_list = curl_slist_append(transfer.header_list, "Accept:");
  bool ok = curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str()) == CURLE_OK;
  ok = ok && curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, &transfer);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer.header_list);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(request.stall.count() / 1000)));
  if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(easy, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, OnSeek);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, &transfer);
    if (request.method == "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  return ok ? "" : "curl refused the URL '" + request.url + "'";
}

// Suspends until the transfer finished (Impl::Finish resumes it).
struct Await {
  HttpClient::Impl* impl;
  Transfer* transfer;
  bool failed = false;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    transfer->waiter = h;
    if (curl_multi_add_handle(impl->multi, transfer->easy) != CURLM_OK) {
      transfer->response.error = "curl_multi_add_handle failed";
      return false;  // resume at once
    }
    ++impl->in_flight;
    transfer->running_on = impl;
    return true;
  }
  void await_resume() const noexcept {}
};

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

HttpClient::HttpClient(Loop& loop) : impl_(std::make_unique<Impl>(loop)) {
  GlobalInit();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) std::abort();
  impl_->timer = new uv_timer_t;
  uv_timer_init(loop.get(), impl_->timer);
  impl_->timer->data = impl_.get();
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETFUNCTION, OnSocket);
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETDATA, impl_.get());
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERFUNCTION, OnTimer);
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERDATA, impl_.get());
}

HttpClient::~HttpClient() {
  if (impl_->in_flight != 0) std::abort();  // a coroutine would never be resumed
  // Closing the cached connections calls OnSocket(REMOVE), which needs impl_ and the loop.
  curl_multi_cleanup(impl_->multi);
  uv_timer_stop(impl_->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(impl_->timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

size_t HttpClient::in_flight() const { return impl_->in_flight; }

Task<HttpResponse> HttpClient::Send(HttpRequest request) {
  Transfer transfer;
  transfer.request = std::move(request);
  if (std::string error = Prepare(transfer); !error.empty()) {
    transfer.response.error = std::move(error);
    co_return std::move(transfer.response);
  }
  co_await Await{impl_.get(), &transfer};
  co_return std::move(transfer.response);
}

}  // namespace finalsnap::detail
