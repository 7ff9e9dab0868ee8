// TcpProbe (tcp_probe.h). Its libuv state lives on the heap, apart from the awaiter: the
// coroutine (and the awaiter in its frame) may be gone by the time the last close callback
// runs. The state is freed when the timer and the socket are closed; the coroutine is resumed
// exactly once, by whichever of timer, lookup (resolve.h) and connect finishes first.
#include "tcp_probe.h"

#include <memory>

#include "finalsnap/text.h"
#include "resolve.h"

namespace finalsnap::detail {

struct TcpProbe::State {
  std::coroutine_handle<> waiter;
  std::string* result = nullptr;  // the awaiter's, until done
  std::string host;
  uint16_t port = 0;
  uv_timer_t timer{};
  std::unique_ptr<PendingLookup> lookup;
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  bool done = false;
  bool tcp_open = false;
  int open_handles = 0;  // timer and socket, until their close callbacks ran

  void MaybeFree() {
    if (done && open_handles == 0) delete this;
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
    lookup.reset();
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

  s->lookup = ResolveAddress(loop_, host_, port_, [s, loop](Resolved r) {
    if (s->done) return;
    if (!r.error.empty()) {
      s->Complete(r.error);
      return;
    }
    s->Connect(loop, r.address());
  });
}

}  // namespace finalsnap::detail
