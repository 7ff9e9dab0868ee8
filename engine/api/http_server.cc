// HttpServer (http_server.h): connections around HttpRequestParser, their deadlines and the
// connection caps.
#include "http_server.h"

#include <netdb.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <ctime>
#include <deque>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

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

// The peer's address ("127.0.0.1", "::1") and the address with its port ("127.0.0.1:51234",
// "[::1]:51234").
std::pair<std::string, std::string> PeerName(const uv_tcp_t* tcp) {
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {"?", "?"};
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(a, host, sizeof(host));
    return {host, std::string(host) + ":" + std::to_string(ntohs(a->sin_port))};
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  uv_ip6_name(a, host, sizeof(host));
  return {host, "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port))};
}

uint64_t Ms(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()); }

// One read buffer for the whole loop: every read is copied into its connection before the next
// one, and everything runs on the loop's thread.
std::array<char, 64 * 1024> g_read_buffer;

}  // namespace

// One accepted connection. Owns its two handles; deleted in the last close callback.
//
// Its timer enforces one deadline at a time, each fixed when its phase begins and never moved by
// a read: a request must arrive whole within request_timeout of its first byte, an answer must be
// taken by the peer within write_timeout of its write, and an idle keep-alive connection lasts
// idle_timeout from its last answer.
struct HttpServer::Connection {
  explicit Connection(const HttpLimits& limits) : parser(limits) {}

  HttpServer* server = nullptr;  // null once the server has forgotten it
  uint64_t id = 0;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  int open_handles = 0;
  bool closing = false;
  std::string address;  // the peer's address, for the per-address cap
  std::string remote;   // with its port, for the log
  // A request of this connection carried a valid signature (HttpResponse::authenticated).
  bool authenticated = false;

  HttpRequestParser parser;
  // Bytes read but not parsed yet: the parser stops after each request, and the next one waits
  // here while max_pipelined requests are queued.
  std::string pending;

  // Parsed requests waiting for their turn, and ready responses (the server's own refusals),
  // answered strictly in order.
  std::deque<std::variant<HttpRequest, HttpResponse>> queue;
  bool handling = false;  // a request is with the handler
  bool writing = false;
  bool reading = false;
  bool eof = false;  // nothing more will be read: the peer's EOF, a refusal, a last request
  bool refusal_queued = false;
  bool close_after_write = false;
  // After the last response and our FIN: reading and discarding until the peer's FIN (or a
  // short timeout), so that closing with unread bytes (a refused body still arriving) does not
  // reset the connection and destroy the response before the peer has read it.
  bool lingering = false;
  // Loop times (uv_now, ms) at which the current phase began.
  uint64_t request_since = 0;  // the first byte of the request being parsed (0: none)
  uint64_t write_since = 0;
  uint64_t idle_since = 0;

  uint64_t Now() const { return uv_now(tcp.loop); }
  void StartReading();
  void StopReading();
  void OnRead(const char* data, size_t len);
  void Parse();
  void Pump();
  void OnReply(HttpResponse response);
  void Write(HttpResponse response);
  void WriteContinue();
  void ArmTimer();
  void OnTimer();
  void Close(bool reset = false);
  void Linger();
  bool Idle() const { return queue.empty() && !handling && !writing && !parser.mid_request(); }
  // May be closed to make room for a new connection: nothing of ours in flight (an idle or
  // half-sent request, or a lingering close).
  bool Evictable() const { return !closing && !handling && !writing && queue.empty(); }
};

void HttpServer::Connection::StartReading() {
  if (reading || closing || (eof && !lingering)) return;
  if (!lingering && queue.size() >= server->limits_.max_pipelined) return;
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
          // EOF or an error: nothing more will arrive. Requests already read are still answered
          // only if the peer can read the answer; a half-closed peer (EOF) can. A partial
          // request will never complete.
          c->StopReading();
          c->eof = true;
          if (nread != UV_EOF) {
            c->Close();
          } else {
            c->Pump();
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
  if (closing || lingering) return;  // lingering: discarded
  pending.append(data, len);
  Parse();
  Pump();
}

// Moves requests from `pending` to the queue until it holds max_pipelined of them; a refusal
// goes to the queue as its response and ends the reading.
void HttpServer::Connection::Parse() {
  if (server == nullptr) return;
  for (;;) {
    if (std::optional<HttpRequest> request = parser.TakeRequest()) {
      request->remote = remote;
      queue.emplace_back(std::move(*request));
      request_since = 0;
      continue;
    }
    if (parser.refused() && !refusal_queued) {
      refusal_queued = true;
      const HttpRequestParser::Refusal& refusal = parser.refusal();
      HttpResponse response = server->error_body_(refusal.status, refusal.code, refusal.message);
      response.status = refusal.status;
      response.close = true;
      queue.emplace_back(std::move(response));
    }
    if (parser.refused() || parser.ended()) {
      eof = true;
      pending.clear();
      StopReading();
      return;
    }
    if (queue.size() >= server->limits_.max_pipelined) {
      StopReading();
      return;
    }
    if (pending.empty()) return;
    const size_t used = parser.Feed(pending);
    pending.erase(0, used);
    if (parser.mid_request() && request_since == 0) request_since = Now();
    if (parser.TakeExpectContinue()) WriteContinue();
    if (used == 0 && !parser.refused() && !parser.ended() && !parser.has_request()) return;
  }
}

void HttpServer::Connection::Pump() {
  if (closing || handling || writing) return;
  Parse();
  if (queue.empty()) {
    if (eof) {
      Close();  // nothing more to answer (a partial request never completes)
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
  Parse();
  StartReading();
  ArmTimer();
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
  if (response.authenticated) authenticated = true;
  Write(std::move(response));
}

void HttpServer::Connection::WriteContinue() {
  // Asked to confirm before the body is sent (some clients do for any POST).
  static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  auto* req = new uv_write_t;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kContinue), sizeof(kContinue) - 1);
  if (uv_write(req, reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1,
               [](uv_write_t* r, int) { delete r; }) != 0) {
    delete req;
  }
}

void HttpServer::Connection::Write(HttpResponse response) {
  const bool shutting_down = server == nullptr || server->shutting_down_;
  close_after_write = response.close || shutting_down || (eof && queue.empty());
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
  write_since = Now();
  ArmTimer();
  uv_buf_t buf = uv_buf_init(w->data.data(), w->data.size());
  // The callback comes once the whole answer is in the socket's send buffer, which is
  // max_output_bytes (OnConnection): until then nothing else is answered, so a peer that does
  // not read holds one answer and that buffer, and the queue of requests stops at max_pipelined.
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
                            c->idle_since = c->Now();
                            if (c->close_after_write) {
                              // Half-close first, so the peer reads the whole response before
                              // it sees the end of the connection.
                              c->eof = true;
                              c->StopReading();
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
  StartReading();
  uv_timer_stop(&timer);
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->Close(); }, 2000, 0);
}

void HttpServer::Connection::ArmTimer() {
  if (closing || server == nullptr || lingering) return;
  uv_timer_stop(&timer);
  const HttpLimits& limits = server->limits_;
  uint64_t deadline = 0;
  if (writing) {
    deadline = write_since + Ms(limits.write_timeout);
  } else if (handling || !queue.empty()) {
    return;  // our time, not the peer's
  } else if (parser.mid_request()) {
    deadline = request_since + Ms(limits.request_timeout);
  } else {
    deadline = idle_since + Ms(limits.idle_timeout);
  }
  const uint64_t now = Now();
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->OnTimer(); },
      deadline > now ? deadline - now : 0, 0);
}

void HttpServer::Connection::OnTimer() {
  if (closing || server == nullptr || lingering) return;
  const HttpLimits& limits = server->limits_;
  const uint64_t now = Now();
  if (writing) {
    // The peer has not taken an answer in time: reset, so that the kernel drops what is
    // queued for it at once instead of retrying a full window.
    if (now >= write_since + Ms(limits.write_timeout)) return Close(/*reset=*/true);
  } else if (handling || !queue.empty()) {
    return;
  } else if (parser.mid_request()) {
    if (now >= request_since + Ms(limits.request_timeout)) {
      parser.Refuse(408, "RequestTimeout",
                    "The request did not arrive within " +
                        std::to_string(limits.request_timeout.count()) + " ms of its first byte.");
      return Pump();
    }
  } else if (now >= idle_since + Ms(limits.idle_timeout)) {
    return Close();
  }
  ArmTimer();
}

void HttpServer::Connection::Close(bool reset) {
  if (closing) return;
  closing = true;
  StopReading();
  HttpServer* s = server;
  if (s != nullptr) s->Forget(this);
  auto on_close = [](uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    if (--c->open_handles == 0) delete c;
  };
  // A reset is not allowed after a shutdown (a lingering close); a plain close then.
  if (!reset || uv_tcp_close_reset(&tcp, on_close) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), on_close);
  }
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
  auto* c = new Connection(limits_);
  c->server = this;
  c->id = next_id_++;
  uv_tcp_init(loop_.get(), &c->tcp);
  uv_timer_init(loop_.get(), &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  const bool accepted = uv_accept(reinterpret_cast<uv_stream_t*>(listener_),
                                  reinterpret_cast<uv_stream_t*>(&c->tcp)) == 0;
  if (accepted) std::tie(c->address, c->remote) = PeerName(&c->tcp);
  if (!accepted || shutting_down_ || !MakeRoom(c->address)) {
    c->server = nullptr;  // never counted
    c->Close(/*reset=*/accepted);
    return;
  }
  connections_[c->id] = c;
  uv_tcp_nodelay(&c->tcp, 1);
  // The bound on answers queued for a peer that does not read them (HttpLimits).
  int send_buffer = static_cast<int>(limits_.max_output_bytes);
  uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&c->tcp), &send_buffer);
  c->idle_since = c->Now();
  c->StartReading();
  c->ArmTimer();
}

// When a cap is reached, the oldest connection that is unauthenticated and has nothing of ours
// in flight (idle, trickling a request in, or lingering after its last answer) is closed to make
// room; if there is none, an idle authenticated one (not for the unauthenticated cap); if there
// is none either, the new connection is refused. Refusing new connections outright once a cap is
// reached is what lets a flood of trickling clients lock everyone out, since they take the
// places first; closing the oldest instead means a flood only ever displaces itself, while a real
// client, which sends its request as soon as it connects, is done long before as many newer
// connections have arrived as the cap allows (a loopback or LAN client sends a signed request in
// well under a millisecond). Connections whose request is with the handler or whose answer is
// being written are never closed for room. The per-address cap keeps one client from filling the
// whole server; the unauthenticated cap keeps room for clients that have proved a key.
bool HttpServer::MakeRoom(const std::string& address) {
  auto pick = [this](const std::string* only_address, bool authenticated_too) -> Connection* {
    for (const bool authenticated : {false, true}) {
      if (authenticated && !authenticated_too) break;
      for (const auto& [id, c] : connections_) {  // by id: oldest first
        if (c->authenticated != authenticated || !c->Evictable()) continue;
        if (authenticated && c->parser.mid_request()) continue;
        if (only_address != nullptr && c->address != *only_address) continue;
        return c;
      }
    }
    return nullptr;
  };
  for (;;) {
    size_t same_address = 0;
    size_t unauthenticated = 0;
    for (const auto& [id, c] : connections_) {
      if (c->address == address) ++same_address;
      if (!c->authenticated) ++unauthenticated;
    }
    Connection* victim = nullptr;
    if (same_address >= limits_.max_connections_per_address) {
      victim = pick(&address, true);
    } else if (unauthenticated >= limits_.max_unauthenticated) {
      victim = pick(nullptr, false);
    } else if (connections_.size() >= limits_.max_connections) {
      victim = pick(nullptr, true);
    } else {
      return true;
    }
    if (victim == nullptr) return false;
    victim->Close();
  }
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
    } else if (!c->parser.mid_request()) {
      // Answer what was read, then close; read nothing more.
      c->eof = true;
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
