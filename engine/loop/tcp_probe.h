// TcpProbe: one TCP connect attempt, awaited on the loop without blocking it. Name resolution
// (uv_getaddrinfo, on libuv's thread pool), the connect and the time limit are all libuv's, so
// the loop's other timers (the pause renewals of the other primaries) keep running meanwhile.
//
//   std::string why = co_await TcpProbe(loop, "127.0.0.1", 6379, 500ms);
//   // "" when something accepted the connection, else why not: "connection refused",
//   // "timed out", "cannot resolve HOST: ..."
//
// The destroy gate uses it to confirm that a node that was shut down refuses connections.
#ifndef FINALSNAP_ENGINE_TCP_PROBE_H_
#define FINALSNAP_ENGINE_TCP_PROBE_H_

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>

#include "loop.h"

namespace finalsnap::detail {

class TcpProbe {
 public:
  TcpProbe(Loop& loop, std::string host, uint16_t port, std::chrono::milliseconds timeout)
      : loop_(loop), host_(std::move(host)), port_(port), timeout_(timeout) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  std::string await_resume() { return std::move(result_); }

  struct State;

 private:
  Loop& loop_;
  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
  std::string result_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_TCP_PROBE_H_
