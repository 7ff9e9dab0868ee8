// ResolveAddress (resolve.h). The request's state lives on the heap and belongs to both the
// PendingLookup and libuv's callback (which comes even for a cancelled lookup): whichever of the
// two ends last frees it. A PendingLookup destroyed early clears the callback and asks libuv to
// cancel a lookup that has not started.
#include "resolve.h"

#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

namespace finalsnap::detail {

struct PendingLookup::State {
  uv_getaddrinfo_t req{};
  std::string host;
  uint16_t port = 0;
  std::function<void(Resolved)> done;  // cleared when the PendingLookup goes first
  bool finished = false;                // libuv's callback has run
  bool owner_alive = true;              // the PendingLookup exists
};

namespace {

void SetPort(sockaddr_storage& addr, uint16_t port) {
  if (addr.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
  } else if (addr.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
  }
}

}  // namespace

std::string Resolved::Numeric() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&addr), buf, sizeof(buf));
  } else {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), buf, sizeof(buf));
  }
  return buf;
}

PendingLookup::~PendingLookup() {
  if (state_->finished) {
    delete state_;
    return;
  }
  state_->owner_alive = false;
  state_->done = nullptr;
  uv_cancel(reinterpret_cast<uv_req_t*>(&state_->req));  // fails harmlessly once running
}

std::unique_ptr<PendingLookup> ResolveAddress(Loop& loop, const std::string& host, uint16_t port,
                                              std::function<void(Resolved)> done) {
  Resolved numeric;
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&numeric.addr)) == 0 ||
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&numeric.addr)) == 0) {
    done(std::move(numeric));
    return nullptr;
  }
  auto* state = new PendingLookup::State;
  state->host = host;
  state->port = port;
  state->done = std::move(done);
  state->req.data = state;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  const int rc = uv_getaddrinfo(
      loop.get(), &state->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* s = static_cast<PendingLookup::State*>(req->data);
        Resolved r;
        if (status != 0 || res == nullptr) {
          r.error = "cannot resolve " + s->host + ": " + uv_strerror(status);
        } else {
          std::memcpy(&r.addr, res->ai_addr, res->ai_addrlen);
          SetPort(r.addr, s->port);
        }
        if (res != nullptr) uv_freeaddrinfo(res);
        s->finished = true;
        if (!s->owner_alive) {
          delete s;
          return;
        }
        auto fn = std::move(s->done);
        s->done = nullptr;
        fn(std::move(r));  // may destroy the PendingLookup (which then frees s): s is not used
      },
      host.c_str(), nullptr, &hints);
  if (rc != 0) {
    std::unique_ptr<PendingLookup::State> s(state);
    Resolved r;
    r.error = "cannot resolve " + host + ": " + uv_strerror(rc);
    s->done(std::move(r));
    return nullptr;
  }
  return std::make_unique<PendingLookup>(state);
}

}  // namespace finalsnap::detail
