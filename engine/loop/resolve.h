// Name resolution that never blocks the loop: uv_getaddrinfo on libuv's thread pool. A numeric
// address (IPv4 or IPv6) needs no lookup and is answered before ResolveAddress returns.
//
//   auto lookup = ResolveAddress(loop, "cache-1.internal", 6379, [](Resolved r) {
//     if (!r.error.empty()) ...;  // "cannot resolve cache-1.internal: ..."
//     uv_tcp_connect(..., r.address(), ...);
//   });
//   // Destroying `lookup` before the answer came means `done` is never called.
//
// The node client, the replication capture and TcpProbe all resolve through it.
#ifndef FINALSNAP_ENGINE_RESOLVE_H_
#define FINALSNAP_ENGINE_RESOLVE_H_

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "loop.h"

namespace finalsnap::detail {

struct Resolved {
  sockaddr_storage addr{};  // with the port set; meaningful when error is empty
  std::string error;        // "cannot resolve HOST: reason", or empty
  const struct sockaddr* address() const { return reinterpret_cast<const struct sockaddr*>(&addr); }
  // The address in numeric form ("10.0.0.7", "::1"), without the port.
  std::string Numeric() const;
};

class PendingLookup {
 public:
  struct State;
  explicit PendingLookup(State* state) : state_(state) {}
  ~PendingLookup();  // the callback will not run after this
  PendingLookup(const PendingLookup&) = delete;
  PendingLookup& operator=(const PendingLookup&) = delete;

 private:
  State* state_;  // freed by the lookup's completion, which then finds no callback
};

// Calls `done` once on the loop thread with the first address of `host`, unless the returned
// lookup is destroyed first. Returns null when `done` was already called (a numeric address, or
// a lookup libuv refused to start).
std::unique_ptr<PendingLookup> ResolveAddress(Loop& loop, const std::string& host, uint16_t port,
                                              std::function<void(Resolved)> done);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_RESOLVE_H_
