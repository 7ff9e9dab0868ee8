// TcpProbe (tcp_probe.h). Its libuv state lives on the heap, apart from the awaiter: the
// coroutine (and the awaiter in its frame) may be gone by the time the last close callback
// runs. The state is freed when the timer and the socket are closed and no name lookup is
// pending; the coroutine is resumed exactly once, by whichever of timer, lookup and connect
// finishes first.
#include "tcp_probe.h"
#include "finalsnap/text.h"

#include <netdb.h>

#include <cctype>
#include <cstring>

namespace finalsnap::detail {

struct TcpProbe::State {
  std::coroutine_handle<> waiter;
  std::string* result = nullptr;  // the awaiter's, until done
  std::string host;
  uint16_t port = 0;
  uv_timer_t timer{};
  uv_getaddrinfo_t lookup{};
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  bool done = false;
  bool lookup_pending = false;
  bool tcp_open = false;
  int open_handles = 0;  // timer and socket, until their close callbacks ran

  void MaybeFree() {
    if (done && !lookup_pending && open_handles == 0) delete this;
  }

  static void OnClosed(uv_handle_t* h) {
    auto* s = static_cast<State*>(h->data);
    --s->open_handles;
    s->MaybeFree();
  }

  // Records the outcome, closes everything and resumes the coroutine (last: it may destroy the
  // awaiter, never this state).
  void Complete(std::string why) {
    if (done) return;
    done = true;
    *result = Lower(why);
    result = nullptr;
    if (lookup_pending) uv_cancel(reinterpret_cast<uv_req_t*>(&lookup));
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), OnClosed);
    if (tcp_open) uv_close(reinterpret_cast<uv_handle_t*>(&tcp), OnClosed);
    const std::coroutine_handle<> h = waiter;
    h.resume();
  }

  void Connect(uv_loop_t* loop, const sockaddr* addr) {
    uv_tcp_init(loop, &tcp);
    tcp.data = this;
    tcp_open = true;
    ++open_handles;
    connect.data = this;
    const int rc = uv_tcp_connect(&connect, &tcp, addr, [](uv_connect_t* c, int status) {
      auto* s = static_cast<State*>(c->data);
      if (status == UV_ECANCELED || s->done) return;  // closed after another outcome
      s->Complete(status == 0 ? std::string() : std::string(uv_strerror(status)));
    });
    if (rc != 0) Complete(uv_strerror(rc));
  }
};

void TcpProbe::await_suspend(std::coroutine_handle<> h) {
  auto* s = new State;
  s->waiter = h;
  s->result = &result_;
  s->host = host_;
  s->port = port_;
  uv_loop_t* loop = loop_.get();
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  ++s->open_handles;
  uv_timer_start(
      &s->timer, [](uv_timer_t* t) { static_cast<State*>(t->data)->Complete("timed out"); },
      static_cast<uint64_t>(timeout_.count()), 0);

  sockaddr_storage addr{};
  if (uv_ip4_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
      uv_ip6_addr(host_.c_str(), port_, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    s->Connect(loop, reinterpret_cast<const sockaddr*>(&addr));
    return;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  s->lookup.data = s;
  s->lookup_pending = true;
  const std::string port = std::to_string(port_);
  const int rc = uv_getaddrinfo(
      loop, &s->lookup,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* st = static_cast<State*>(req->data);
        st->lookup_pending = false;
        if (st->done) {
          if (res != nullptr) uv_freeaddrinfo(res);
          st->MaybeFree();
          return;
        }
        if (status != 0 || res == nullptr) {
          if (res != nullptr) uv_freeaddrinfo(res);
          st->Complete("cannot resolve " + st->host + ": " + uv_strerror(status));
          return;
        }
        st->Connect(req->loop, res->ai_addr);
        uv_freeaddrinfo(res);
      },
      host_.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    s->lookup_pending = false;
    s->Complete("cannot resolve " + host_ + ": " + uv_strerror(rc));
  }
}

}  // namespace finalsnap::detail
