// HttpServer (http_server.h): connections around Debian's http-parser.
#include "http_server.h"
#include "finalsnap/text.h"

#include <http_parser.h>
#include <netdb.h>
#include <sys/socket.h>

#include <array>
#include <cctype>
#include <climits>
#include <cstring>
#include <ctime>
#include <deque>
#include <utility>
#include <variant>

namespace finalsnap::detail {

namespace {

std::string HttpDate() {
  const time_t now = ::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string PeerName(const uv_tcp_t* tcp) {
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(a, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  uv_ip6_name(a, host, sizeof(host));
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

}  // namespace

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

// One accepted connection. Owns its two handles; deleted in the last close callback.
struct HttpServer::Connection {
  HttpServer* server = nullptr;  // null once the server has forgotten it
  uint64_t id = 0;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  http_parser parser{};
  int open_handles = 0;
  bool closing = false;
  std::string remote;

  // The request being parsed.
  HttpRequest current;
  bool in_message = false;
  std::string field;
  std::string value;
  bool in_value = false;
  size_t header_bytes = 0;
  // Set by a callback that refuses the request (a limit): the status and error to answer with.
  int refuse_status = 0;
  std::string refuse_code;
  std::string refuse_message;
  // Data after a Connection: close request is not parsed.
  bool discarding = false;

  // Parsed requests waiting for their turn, and ready responses (the server's own refusals),
  // answered strictly in order.
  std::deque<std::variant<HttpRequest, HttpResponse>> queue;
  bool handling = false;  // a request is with the handler
  bool writing = false;
  bool reading = false;
  bool last_request_seen = false;  // no request will follow the queued ones
  bool close_after_write = false;
  // After the last response and our FIN: reading and discarding until the peer's FIN (or a
  // short timeout), so that closing with unread bytes (a refused body still arriving) does not
  // reset the connection and destroy the response before the peer has read it.
  bool lingering = false;

  static Connection* From(http_parser* p) { return static_cast<Connection*>(p->data); }

  void StartReading();
  void StopReading();
  void OnRead(const char* data, size_t len);
  void Pump();
  void OnReply(HttpResponse response);
  void Write(HttpResponse response);
  void ArmTimer();
  void Refuse(int status, std::string code, std::string message);
  void Close();
  void Linger();
  bool Idle() const { return queue.empty() && !handling && !writing && !in_message; }

  // http-parser callbacks.
  static int OnMessageBegin(http_parser* p);
  static int OnUrl(http_parser* p, const char* at, size_t len);
  static int OnHeaderField(http_parser* p, const char* at, size_t len);
  static int OnHeaderValue(http_parser* p, const char* at, size_t len);
  static int OnHeadersComplete(http_parser* p);
  static int OnBody(http_parser* p, const char* at, size_t len);
  static int OnMessageComplete(http_parser* p);
  void EndHeader();
  int Limit(int status, std::string code, std::string message) {
    refuse_status = status;
    refuse_code = std::move(code);
    refuse_message = std::move(message);
    return 1;  // makes http_parser_execute stop with an error
  }
};

namespace {

const http_parser_settings& Settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_message_begin = &HttpServer::Connection::OnMessageBegin;
    s.on_url = &HttpServer::Connection::OnUrl;
    s.on_header_field = &HttpServer::Connection::OnHeaderField;
    s.on_header_value = &HttpServer::Connection::OnHeaderValue;
    s.on_headers_complete = &HttpServer::Connection::OnHeadersComplete;
    s.on_body = &HttpServer::Connection::OnBody;
    s.on_message_complete = &HttpServer::Connection::OnMessageComplete;
    return s;
  }();
  return settings;
}

// One read buffer for the whole loop: every read is parsed (and copied where kept) before the
// next one, and everything runs on the loop's thread.
std::array<char, 64 * 1024> g_read_buffer;

}  // namespace

int HttpServer::Connection::OnMessageBegin(http_parser* p) {
  Connection* c = From(p);
  if (c->last_request_seen) {
    c->discarding = true;
    return 1;
  }
  c->current = HttpRequest();
  c->current.remote = c->remote;
  c->in_message = true;
  c->field.clear();
  c->value.clear();
  c->in_value = false;
  c->header_bytes = 0;
  c->ArmTimer();  // the request timeout runs from the first byte to the last
  return 0;
}

int HttpServer::Connection::OnUrl(http_parser* p, const char* at, size_t len) {
  Connection* c = From(p);
  if (c->current.target.size() + len > c->server->limits_.max_url_bytes) {
    return c->Limit(414, "RequestURITooLong",
                    "The request-target is longer than " +
                        std::to_string(c->server->limits_.max_url_bytes) + " bytes.");
  }
  c->current.target.append(at, len);
  return 0;
}

void HttpServer::Connection::EndHeader() {
  if (!field.empty()) current.headers.emplace_back(std::move(field), std::move(value));
  field.clear();
  value.clear();
  in_value = false;
}

int HttpServer::Connection::OnHeaderField(http_parser* p, const char* at, size_t len) {
  Connection* c = From(p);
  if (c->in_value) c->EndHeader();
  c->header_bytes += len;
  if (c->header_bytes > c->server->limits_.max_header_bytes) {
    return c->Limit(431, "RequestHeaderFieldsTooLarge",
                    "The request's headers exceed " +
                        std::to_string(c->server->limits_.max_header_bytes) + " bytes.");
  }
  if (c->field.empty() && c->current.headers.size() >= c->server->limits_.max_headers) {
    return c->Limit(431, "RequestHeaderFieldsTooLarge",
                    "The request has more than " + std::to_string(c->server->limits_.max_headers) +
                        " headers.");
  }
  c->field.append(at, len);
  return 0;
}

int HttpServer::Connection::OnHeaderValue(http_parser* p, const char* at, size_t len) {
  Connection* c = From(p);
  c->in_value = true;
  c->header_bytes += len;
  if (c->header_bytes > c->server->limits_.max_header_bytes) {
    return c->Limit(431, "RequestHeaderFieldsTooLarge",
                    "The request's headers exceed " +
                        std::to_string(c->server->limits_.max_header_bytes) + " bytes.");
  }
  c->value.append(at, len);
  return 0;
}

int HttpServer::Connection::OnHeadersComplete(http_parser* p) {
  Connection* c = From(p);
  c->EndHeader();
  const HttpLimits& limits = c->server->limits_;
  if (p->content_length != ULLONG_MAX && p->content_length > limits.max_body_bytes) {
    c->Limit(
        413, "RequestEntityTooLarge",
        "The request body is larger than " + std::to_string(limits.max_body_bytes) + " bytes.");
    // Not 1: from on_headers_complete that means "no body follows", not an error.
    return -1;
  }
  c->current.method = http_method_str(static_cast<http_method>(p->method));
  const size_t question = c->current.target.find('?');
  c->current.path = c->current.target.substr(0, question);
  c->current.query = question == std::string::npos ? "" : c->current.target.substr(question + 1);
  if (std::optional<std::string_view> expect = c->current.Header("expect");
      expect && EqualsIgnoreCase(*expect, "100-continue")) {
    // Asked to confirm before the body is sent (some clients do for any POST).
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    auto* req = new uv_write_t;
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kContinue), sizeof(kContinue) - 1);
    if (uv_write(req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
                 [](uv_write_t* r, int) { delete r; }) != 0) {
      delete req;
    }
  }
  return 0;
}

int HttpServer::Connection::OnBody(http_parser* p, const char* at, size_t len) {
  Connection* c = From(p);
  const size_t max = c->server->limits_.max_body_bytes;
  if (c->current.body.size() + len > max) {
    return c->Limit(413, "RequestEntityTooLarge",
                    "The request body is larger than " + std::to_string(max) + " bytes.");
  }
  c->current.body.append(at, len);
  return 0;
}

int HttpServer::Connection::OnMessageComplete(http_parser* p) {
  Connection* c = From(p);
  c->current.keep_alive = http_should_keep_alive(p) != 0;
  if (!c->current.keep_alive) c->last_request_seen = true;
  c->in_message = false;
  c->queue.emplace_back(std::move(c->current));
  c->current = HttpRequest();
  if (c->queue.size() >= c->server->limits_.max_pipelined) c->StopReading();
  return 0;
}

void HttpServer::Connection::StartReading() {
  if (reading || closing || (last_request_seen && !lingering)) return;
  reading = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        *buf = uv_buf_init(g_read_buffer.data(), g_read_buffer.size());
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* c = static_cast<Connection*>(stream->data);
        if (nread < 0 && c->lingering) {
          c->Close();
          return;
        }
        if (nread < 0) {
          // EOF or an error: nothing more will arrive. Requests already parsed are still
          // answered only if the peer can read the answer; a half-closed peer (EOF) can.
          c->StopReading();
          c->last_request_seen = true;
          if (nread != UV_EOF || c->Idle()) {
            c->Close();
          } else if (c->in_message) {
            c->in_message = false;  // the partial request will never complete
            if (c->Idle()) c->Close();
          }
          return;
        }
        if (nread > 0) c->OnRead(buf->base, static_cast<size_t>(nread));
      });
}

void HttpServer::Connection::StopReading() {
  if (!reading) return;
  reading = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
}

void HttpServer::Connection::OnRead(const char* data, size_t len) {
  if (closing || discarding) return;
  const size_t parsed = http_parser_execute(&parser, &Settings(), data, len);
  const auto error = static_cast<http_errno>(parser.http_errno);
  if (discarding) {
    // Bytes after a request that ended the connection: not parsed, not answered.
    StopReading();
  } else if (error != HPE_OK || parser.upgrade) {
    if (refuse_status != 0) {
      Refuse(refuse_status, refuse_code, refuse_message);
    } else if (parser.upgrade) {
      Refuse(400, "MalformedHttpRequest", "Protocol upgrades are not supported.");
    } else {
      Refuse(400, "MalformedHttpRequest",
             std::string("Malformed HTTP request: ") + http_errno_description(error) +
                 " (at byte " + std::to_string(parsed) + " of the read)");
    }
  }
  Pump();
}

void HttpServer::Connection::Refuse(int status, std::string code, std::string message) {
  in_message = false;
  last_request_seen = true;
  StopReading();
  HttpResponse response = server->error_body_(status, code, message);
  response.status = status;
  response.close = true;
  queue.emplace_back(std::move(response));
}

void HttpServer::Connection::Pump() {
  if (closing || handling || writing) return;
  if (queue.empty()) {
    if (last_request_seen && !in_message) {
      Close();
      return;
    }
    StartReading();
    ArmTimer();
    return;
  }
  std::variant<HttpRequest, HttpResponse> item = std::move(queue.front());
  queue.pop_front();
  if (auto* response = std::get_if<HttpResponse>(&item)) {
    Write(std::move(*response));
    return;
  }
  handling = true;
  ArmTimer();
  if (queue.size() < server->limits_.max_pipelined) StartReading();
  std::weak_ptr<HttpServer*> alive = server->alive_;
  const uint64_t connection_id = id;
  // Called back on the loop thread, perhaps before the handler returns.
  server->handler_(std::move(std::get<HttpRequest>(item)),
                   [alive, connection_id](HttpResponse response) {
                     const std::shared_ptr<HttpServer*> s = alive.lock();
                     if (!s) return;
                     auto it = (*s)->connections_.find(connection_id);
                     if (it == (*s)->connections_.end()) return;  // the peer went away
                     it->second->OnReply(std::move(response));
                   });
}

void HttpServer::Connection::OnReply(HttpResponse response) {
  handling = false;
  Write(std::move(response));
}

void HttpServer::Connection::Write(HttpResponse response) {
  const bool shutting_down = server == nullptr || server->shutting_down_;
  close_after_write = response.close || shutting_down || (last_request_seen && queue.empty());
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    http_status_str(static_cast<http_status>(response.status)) + "\r\n";
  out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  out += "Date: " + HttpDate() + "\r\n";
  for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
  out += close_after_write ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
  out += "\r\n";
  out += response.body;

  struct WriteRequest {
    uv_write_t req;
    std::string data;
    Connection* connection;
  };
  auto* w = new WriteRequest{{}, std::move(out), this};
  w->req.data = w;
  writing = true;
  ArmTimer();
  uv_buf_t buf = uv_buf_init(w->data.data(), w->data.size());
  const int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1,
                          [](uv_write_t* req, int status) {
                            auto* w = static_cast<WriteRequest*>(req->data);
                            Connection* c = w->connection;
                            delete w;
                            c->writing = false;
                            if (c->closing) return;  // closed while writing (cancelled)
                            if (status < 0) {
                              c->Close();
                              return;
                            }
                            if (c->close_after_write) {
                              // Half-close first, so the peer reads the whole response before
                              // it sees the end of the connection.
                              auto* shutdown = new uv_shutdown_t;
                              shutdown->data = c;
                              if (uv_shutdown(shutdown, reinterpret_cast<uv_stream_t*>(&c->tcp),
                                              [](uv_shutdown_t* s, int status) {
                                                auto* conn = static_cast<Connection*>(s->data);
                                                delete s;
                                                if (status < 0) {
                                                  conn->Close();
                                                } else {
                                                  conn->Linger();
                                                }
                                              }) != 0) {
                                delete shutdown;
                                c->Close();
                              }
                              c->last_request_seen = true;
                              c->StopReading();
                              return;
                            }
                            c->Pump();
                          });
  if (rc != 0) {
    delete w;
    writing = false;
    Close();
  }
}

void HttpServer::Connection::Linger() {
  if (closing) return;
  lingering = true;
  discarding = true;
  StartReading();
  uv_timer_stop(&timer);
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->Close(); }, 2000, 0);
}

void HttpServer::Connection::ArmTimer() {
  if (closing || server == nullptr || lingering) return;
  uv_timer_stop(&timer);
  if (handling || writing) return;
  if (in_message) {
    uv_timer_start(
        &timer,
        [](uv_timer_t* t) {
          auto* c = static_cast<Connection*>(t->data);
          if (!c->in_message || c->handling || c->writing) return;
          c->Refuse(408, "RequestTimeout", "The request did not arrive in time.");
          c->Pump();
        },
        static_cast<uint64_t>(server->limits_.request_timeout.count()), 0);
  } else if (queue.empty()) {
    uv_timer_start(
        &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->Close(); },
        static_cast<uint64_t>(server->limits_.idle_timeout.count()), 0);
  }
}

void HttpServer::Connection::Close() {
  if (closing) return;
  closing = true;
  StopReading();
  HttpServer* s = server;
  if (s != nullptr) s->Forget(this);
  auto on_close = [](uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    if (--c->open_handles == 0) delete c;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_close);
  if (s != nullptr) s->MaybeDone();
}

HttpServer::HttpServer(Loop& loop, HttpLimits limits, Handler handler, ErrorBody error_body)
    : loop_(loop),
      limits_(limits),
      handler_(std::move(handler)),
      error_body_(std::move(error_body)),
      alive_(std::make_shared<HttpServer*>(this)) {}

HttpServer::~HttpServer() {
  alive_.reset();
  // Normally empty: Shutdown() has closed everything. Otherwise the connections are closed here
  // and freed by their close callbacks when the loop next runs; they no longer refer to us.
  std::map<uint64_t, Connection*> left;
  left.swap(connections_);
  for (auto& [id, c] : left) {
    c->server = nullptr;
    c->Close();
  }
  if (listener_ != nullptr && !uv_is_closing(reinterpret_cast<uv_handle_t*>(listener_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
}

Status HttpServer::Listen(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status::Error("cannot resolve " + endpoint.host + ": " + gai_strerror(rc));
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);

  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_.get(), listener_);
  listener_->data = this;
  listener_closed_ = false;
  auto fail = [&](const std::string& what, int rc) {
    listener_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(listener_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    listener_ = nullptr;
    listener_closed_ = true;
    return Status::Error(what + " " + endpoint.ToString() + ": " + uv_strerror(rc));
  };
  if (const int rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0); rc != 0) {
    return fail("cannot bind", rc);
  }
  if (const int rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128,
                               [](uv_stream_t* l, int status) {
                                 if (status == 0) static_cast<HttpServer*>(l->data)->OnConnection();
                               });
      rc != 0) {
    return fail("cannot listen on", rc);
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_ = endpoint;
  bound_.port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  listening_ = true;
  return Status::Ok();
}

void HttpServer::OnConnection() {
  auto* c = new Connection;
  c->server = this;
  c->id = next_id_++;
  uv_tcp_init(loop_.get(), &c->tcp);
  uv_timer_init(loop_.get(), &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  connections_[c->id] = c;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_),
                reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0 ||
      shutting_down_ || connections_.size() > limits_.max_connections) {
    c->Close();
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->remote = PeerName(&c->tcp);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->StartReading();
  c->ArmTimer();
}

void HttpServer::Forget(Connection* connection) {
  connections_.erase(connection->id);
  connection->server = nullptr;
}

void HttpServer::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  done_ = std::move(done);
  if (listener_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) {
      auto* l = reinterpret_cast<uv_tcp_t*>(h);
      auto* self = static_cast<HttpServer*>(l->data);
      delete l;
      self->listener_closed_ = true;
      self->MaybeDone();
    });
    listener_ = nullptr;
  }
  // Copy: Close() erases from the map.
  std::vector<Connection*> all;
  for (auto& [id, c] : connections_) all.push_back(c);
  for (Connection* c : all) {
    if (c->Idle()) {
      c->Close();
    } else if (!c->in_message) {
      // Answer what was read, then close; read nothing more.
      c->last_request_seen = true;
      c->StopReading();
    }
  }
  MaybeDone();
}

void HttpServer::MaybeDone() {
  if (!shutting_down_ || !listener_closed_ || !connections_.empty() || !done_) return;
  std::function<void()> done = std::move(done_);
  done_ = nullptr;
  done();
}

}  // namespace finalsnap::detail
