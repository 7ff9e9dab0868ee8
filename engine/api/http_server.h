// HttpServer: a small HTTP/1.1 server on a libuv loop, for the API server (`finalsnap serve`).
// Requests are parsed by Debian's http-parser (libhttp-parser); this file does the connection
// handling around it.
//
//   HttpServer server(loop, limits, handler, error_body);
//   server.Listen(endpoint);                       // 127.0.0.1:0 picks a free port: bound()
//   ... the loop runs; handler(request, reply) is called for each complete request ...
//   server.Shutdown([] { /* every connection is closed */ });
//
// One object per connection owns its uv_tcp_t and uv_timer_t and is freed in the last close
// callback. Keep-alive follows HTTP/1.1 (and Connection: close / HTTP/1.0); pipelined requests
// are answered in order, one at a time. Everything a peer sends is bounded (HttpLimits): the
// request line, the header bytes and count, the body, the time a request may take to arrive and
// the time an idle connection is kept, and the number of connections. A request over a limit gets
// 413/414/431/408 (its body from ErrorBody) and the connection is closed.
//
// All of it runs on the loop's thread: the handler is called there and `reply` must be called
// there, exactly once, possibly later (the API server hands requests to worker threads and
// replies when they come back). A reply for a connection that has closed in the meantime, or
// after the server is gone, is dropped.
#ifndef FINALSNAP_ENGINE_HTTP_SERVER_H_
#define FINALSNAP_ENGINE_HTTP_SERVER_H_

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "finalsnap/fleet.h"
#include "finalsnap/status.h"
#include "loop.h"
#include "sigv4.h"

namespace finalsnap::detail {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // the raw request-target, "/?Action=..."
  std::string path;    // the target up to '?'
  std::string query;   // the raw text after '?', or empty
  HeaderList headers;  // in arrival order, names as sent
  std::string body;
  std::string remote;  // the peer, "127.0.0.1:51234"
  bool keep_alive = true;

  // The first header of that name (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/xml";
  std::string body;
  HeaderList headers;  // extra headers
  bool close = false;  // close the connection after this response
};

struct HttpLimits {
  size_t max_url_bytes = 8 * 1024;
  size_t max_header_bytes = 16 * 1024;  // field names and values together
  size_t max_headers = 64;
  size_t max_body_bytes = 1024 * 1024;
  size_t max_connections = 256;
  size_t max_pipelined = 8;  // requests read ahead of the one being answered
  std::chrono::milliseconds request_timeout{30'000};  // from a request's first byte to its last
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive with nothing in flight
};

class HttpServer {
 public:
  using Reply = std::function<void(HttpResponse)>;
  using Handler = std::function<void(HttpRequest, Reply)>;
  // The response for a request the server refuses by itself: `code` is a short error code
  // ("MalformedHttpRequest", "RequestEntityTooLarge", ...).
  using ErrorBody =
      std::function<HttpResponse(int status, std::string_view code, std::string_view message)>;

  HttpServer(Loop& loop, HttpLimits limits, Handler handler, ErrorBody error_body);
  // Requires Shutdown() to have finished (its callback ran), or Listen() never to have succeeded.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens. Port 0 picks a free port; bound() says which.
  Status Listen(const Endpoint& endpoint);
  const Endpoint& bound() const { return bound_; }

  // Stops accepting. Idle connections close now; one with a request in flight closes after its
  // response (sent with Connection: close). `done` runs once everything is closed.
  void Shutdown(std::function<void()> done);

  size_t connection_count() const { return connections_.size(); }

  struct Connection;  // internal, in http_server.cc

 private:
  friend struct Connection;
  void OnConnection();
  void Forget(Connection* connection);
  void MaybeDone();

  Loop& loop_;
  HttpLimits limits_;
  Handler handler_;
  ErrorBody error_body_;
  uv_tcp_t* listener_ = nullptr;  // freed in its close callback
  bool listening_ = false;
  bool shutting_down_ = false;
  bool listener_closed_ = true;
  std::function<void()> done_;
  Endpoint bound_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Connection*> connections_;
  // Replies hold a weak reference: a reply that arrives after the server is gone is dropped.
  std::shared_ptr<HttpServer*> alive_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_HTTP_SERVER_H_
