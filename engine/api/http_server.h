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
// callback; its bytes go through an HttpRequestParser (http_request_parser.h). Keep-alive follows
// HTTP/1.1 (and Connection: close / HTTP/1.0); pipelined requests are answered in order, one at
// a time. Everything a peer sends or holds is bounded (HttpLimits): the request line, the header
// bytes and count, the body; the time a whole request may take to arrive from its first byte
// (reads do not extend it), the time an answer may wait for the peer to take it, the time an idle
// connection is kept; the requests read ahead and the answers queued for a peer that does not
// read; and the connections, in all, per client address and not yet authenticated. A request
// over a limit gets 413/414/431/408 (its body from ErrorBody) and the connection is closed; a
// protocol upgrade (Upgrade, Connection: upgrade, h2c, CONNECT) gets 400 before it reaches the
// handler.
//
// All of it runs on the loop's thread: the handler is called there and `reply` must be called
// there, exactly once, possibly later (the API server hands requests to worker threads and
// replies when they come back). A reply for a connection that has closed in the meantime, or
// after the server is gone, is dropped. A reply marked `authenticated` (the request carried a
// valid signature) makes its connection an authenticated one for the caps.
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
#include "http_request_parser.h"
#include "loop.h"

namespace finalsnap::detail {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/xml";
  std::string body;
  HeaderList headers;  // extra headers
  bool close = false;  // close the connection after this response
  // The request's signature verified: the connection no longer counts as unauthenticated.
  bool authenticated = false;
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
  // Closes connections so that one more from `address` keeps within the caps; false if none can
  // go, and the new connection is refused.
  bool MakeRoom(const std::string& address);
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
