// HttpClient: HTTP requests from coroutines on the engine's libuv loop, through libcurl's multi
// interface. libcurl does HTTP, TLS and connection reuse; this file gives it the loop's sockets
// and timer (curl_multi_socket_action), so any number of requests run on the one loop thread,
// beside the capture, with no thread per request.
//
//   HttpClient http(loop);
//   HttpRequest request;
//   request.method = "PUT";
//   request.url = "http://127.0.0.1:7480/bucket/key";
//   request.headers = {{"content-md5", md5}};
//   request.body = bytes;                       // must outlive the request
//   HttpResponse response = co_await http.Send(std::move(request));
//   if (!response.error.empty()) ...            // no answer: refused, reset, timed out
//   else if (response.status != 200) ...        // an answer, and what it said
//
// A response body is either collected (up to max_body bytes; more is an error, never a silent
// cut) or handed piece by piece to on_body as it arrives, for bodies of any size. A stalled
// peer is given up on after `stall` without progress; nothing waits forever. No redirect is
// followed and only http and https are spoken.
//
// The client must outlive every request sent through it: destroying it while a Send coroutine
// still waits is a programming error (it aborts). Destroying a waiting Send task instead (its
// owner gave up) takes the request out of curl cleanly. Everything runs on the loop's thread.
#ifndef FINALSNAP_AWS_HTTP_CLIENT_H_
#define FINALSNAP_AWS_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "async.h"
#include "loop.h"

namespace finalsnap::detail {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::span<const char> body;  // sent as is; must stay alive until the response
  // Called with each piece of the body of a 2xx response as it arrives; return false to abort
  // the transfer (the response then says so in `error`). Unset: the body is collected.
  std::function<bool(std::string_view piece)> on_body;
  size_t max_body = size_t{1} << 20;  // for a collected body
  std::chrono::milliseconds connect_timeout{10'000};
  // Given up when fewer than 1 KiB/s moved for this long (a peer that stopped answering).
  std::chrono::milliseconds stall{30'000};
};

struct HttpResponse {
  int status = 0;  // the HTTP status; 0 when no response came
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                                          // collected, unless on_body took it
  std::string error;        // why there is no (complete) response; "" when there is one
  uint64_t body_bytes = 0;  // body bytes received, collected or not

  // The value of the header `lower_name`, trimmed; nullopt if absent.
  std::optional<std::string> Header(std::string_view lower_name) const;
};

class HttpClient {
 public:
  explicit HttpClient(Loop& loop);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Task<HttpResponse> Send(HttpRequest request);

  // Requests started and not yet answered.
  size_t in_flight() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_AWS_HTTP_CLIENT_H_
