// TcpProxy: an accept thread polling the listening socket and a wake pipe, and two threads per
// connection, one per direction, each a blocking recv/send loop. A connection's descriptors are
// closed by whichever of its threads ends last; until then, shutdown(2) is how one thread (or
// Kill) wakes the other.
#include "support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace finalsnap::testing {
namespace {

constexpr size_t kChunk = 64 * 1024;

std::string ErrnoText(const std::string& what, int err) {
  return "TcpProxy: " + what + ": " + std::strerror(err);
}

// Sends all of [data, data + size); false on any error (the peer is gone).
bool SendAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void SetNoDelay(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A blocking connection to host:port, or -1 with errno set by the last attempt.
int ConnectTarget(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list) != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = -1;
  int err = ECONNREFUSED;
  for (addrinfo* ai = list; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int rc;
    do {
      rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      err = errno;
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(list);
  if (fd >= 0) SetNoDelay(fd);
  errno = err;
  return fd;
}

}  // namespace

struct TcpProxy::Connection {
  int index = 0;
  std::vector<Fault> faults;  // this connection's, by offset (flips last); fixed at accept
  std::atomic<uint64_t> server_to_client{0};
  std::atomic<uint64_t> client_to_server{0};
  std::atomic<bool> server_closed{false};

  std::mutex fd_mu;
  int client_fd = -1;             // guarded by fd_mu
  int server_fd = -1;             // guarded by fd_mu
  int wake[2] = {-1, -1};         // guarded by fd_mu; a byte in it wakes a held pump
  int live_threads = 0;           // guarded by fd_mu
  std::atomic<bool> shut{false};  // both sides shut down: the pumps must end

  // Wakes a pump waiting in poll() (Hold). Call with fd_mu held.
  void WakeLocked() {
    if (wake[1] >= 0) {
      const char byte = 'w';
      ssize_t ignored = ::write(wake[1], &byte, 1);
      (void)ignored;
    }
  }
  // Shuts both sockets down in both directions, which wakes any thread blocked on them. The
  // descriptors stay open until the last thread ends, so they cannot be reused under a thread.
  void ShutdownBoth() {
    std::lock_guard<std::mutex> lock(fd_mu);
    shut = true;
    if (client_fd >= 0) ::shutdown(client_fd, SHUT_RDWR);
    if (server_fd >= 0) ::shutdown(server_fd, SHUT_RDWR);
    WakeLocked();
  }
  void ShutdownWrite(bool client_side) {
    std::lock_guard<std::mutex> lock(fd_mu);
    const int fd = client_side ? client_fd : server_fd;
    if (fd >= 0) ::shutdown(fd, SHUT_WR);
  }
};

TcpProxy::TcpProxy(std::string target_host, int target_port)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(ErrnoText("socket", errno));
  int one = 1;
  (void)::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    throw std::runtime_error(ErrnoText("bind/listen on 127.0.0.1", err));
  }
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    throw std::runtime_error(ErrnoText("pipe2", err));
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  Kill();
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void TcpProxy::AddFault(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(fault);
}

void TcpProxy::FlipByteAt(uint64_t offset, int connection, uint8_t mask) {
  if (mask == 0) throw std::invalid_argument("TcpProxy::FlipByteAt: mask must not be 0");
  AddFault({FaultKind::kFlip, offset, connection, mask});
}

void TcpProxy::CutAt(uint64_t offset, int connection) {
  AddFault({FaultKind::kCut, offset, connection, 0});
}

void TcpProxy::StallAt(uint64_t offset, int connection) {
  AddFault({FaultKind::kStall, offset, connection, 0});
}

void TcpProxy::CutNow(int connection) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : conns_) {
    if (c->index == connection && !c->shut) {
      ++cuts_;
      c->ShutdownBoth();
    }
  }
  ++state_version_;
  cv_.notify_all();
}

void TcpProxy::HoldAt(uint64_t offset, int connection) {
  AddFault({FaultKind::kHold, offset, connection, 0});
}

void TcpProxy::Resume() {
  std::lock_guard<std::mutex> lock(mu_);
  ++resume_generation_;
  ++state_version_;
  cv_.notify_all();
  for (auto& c : conns_) {
    std::lock_guard<std::mutex> fd_lock(c->fd_mu);
    c->WakeLocked();
  }
}

void TcpProxy::Notify() {
  std::lock_guard<std::mutex> lock(mu_);
  ++state_version_;
  cv_.notify_all();
}

void TcpProxy::Kill() {
  std::lock_guard<std::mutex> kill_lock(kill_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    killed_ = true;
    ++state_version_;
    cv_.notify_all();
  }
  const char byte = 'k';
  ssize_t ignored = ::write(wake_pipe_[1], &byte, 1);
  (void)ignored;
  if (accept_thread_.joinable()) accept_thread_.join();  // it closes the listening socket
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : conns_) c->ShutdownBoth();
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

int TcpProxy::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(conns_.size());
}

uint64_t TcpProxy::server_to_client_bytes(int connection) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& c : conns_) {
    if (connection == kEveryConnection || c->index == connection) total += c->server_to_client;
  }
  return total;
}

bool TcpProxy::server_closed(int connection) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : conns_) {
    if (c->index == connection) return c->server_closed;
  }
  return false;
}

uint64_t TcpProxy::client_to_server_bytes(int connection) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& c : conns_) {
    if (connection == kEveryConnection || c->index == connection) total += c->client_to_server;
  }
  return total;
}

bool TcpProxy::WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = state_version_;
    }
    // Evaluated without mu_: the condition calls the accessors, which take it.
    if (condition()) return true;
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, until, [&] { return state_version_ != seen; })) {
      lock.unlock();
      return condition();
    }
  }
}

void TcpProxy::AcceptLoop() {
  for (;;) {
    std::array<pollfd, 2> fds{};
    fds[0].fd = listen_fd_;
    fds[0].events = POLLIN;
    fds[1].fd = wake_pipe_[0];
    fds[1].events = POLLIN;
    const int rc = ::poll(fds.data(), fds.size(), -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;  // Kill()
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;  // EINTR, ECONNABORTED, ...: try again
    SetNoDelay(client);
    const int server = ConnectTarget(target_host_, target_port_);
    const bool refused = server < 0 && errno == ECONNREFUSED;

    std::lock_guard<std::mutex> lock(mu_);
    auto conn = std::make_unique<Connection>();
    conn->index = static_cast<int>(conns_.size());
    for (const Fault& f : faults_) {
      if (f.connection == kEveryConnection || f.connection == conn->index) {
        conn->faults.push_back(f);
      }
    }
    // By offset; at one offset a cut, stall or hold comes before a flip (of a byte it keeps back).
    std::stable_sort(conn->faults.begin(), conn->faults.end(), [](const Fault& a, const Fault& b) {
      const bool a_flip = a.kind == FaultKind::kFlip;
      const bool b_flip = b.kind == FaultKind::kFlip;
      return a.offset != b.offset ? a.offset < b.offset : !a_flip && b_flip;
    });
    Connection* c = conn.get();
    conns_.push_back(std::move(conn));
    ++state_version_;
    cv_.notify_all();
    if (server < 0 || killed_) {
      // The target refused (it is down): the client sees its connection closed at once.
      ::close(client);
      if (server >= 0) ::close(server);
      if (refused && mirror_refusal_) break;  // stop listening: connects are refused from now
      continue;
    }
    if (::pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
      ::close(client);
      ::close(server);
      continue;
    }
    c->client_fd = client;
    c->server_fd = server;
    c->live_threads = 2;
    threads_.emplace_back([this, c] { PumpClientToServer(c); });
    threads_.emplace_back([this, c] { PumpServerToClient(c); });
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void TcpProxy::PumpClientToServer(Connection* c) {
  std::vector<uint8_t> buf(kChunk);
  int from, to;
  {
    std::lock_guard<std::mutex> lock(c->fd_mu);
    from = c->client_fd;
    to = c->server_fd;
  }
  for (;;) {
    const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
    if (n == 0) {
      c->ShutdownWrite(/*client_side=*/false);  // pass the client's half close on
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      c->ShutdownBoth();
      break;
    }
    if (!SendAll(to, buf.data(), static_cast<size_t>(n))) {
      c->ShutdownBoth();
      break;
    }
    c->client_to_server += static_cast<uint64_t>(n);
    Notify();
  }
  ThreadDone(c);
}

// Waits until Resume(), Kill() or the connection's end. False when the pump must end.
bool TcpProxy::Stall(Connection* c) {
  ++stalls_;
  ++stalled_now_;
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t generation = resume_generation_;
  ++state_version_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return resume_generation_ != generation || killed_ || c->shut; });
  --stalled_now_;
  ++state_version_;
  cv_.notify_all();
  return !killed_ && !c->shut;
}

// Reads what the server sends into `held` until Resume(), Kill() or the connection's end. False
// when the pump must end.
bool TcpProxy::Hold(Connection* c, std::vector<uint8_t>* held) {
  ++holds_;
  ++stalled_now_;
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = resume_generation_;
    ++state_version_;
    cv_.notify_all();
  }
  int from, wake;
  {
    std::lock_guard<std::mutex> lock(c->fd_mu);
    from = c->server_fd;
    wake = c->wake[0];
  }
  std::vector<uint8_t> buf(kChunk);
  bool go_on = true;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (killed_ || c->shut) {
        go_on = false;
        break;
      }
      if (resume_generation_ != generation) break;
    }
    std::array<pollfd, 2> fds{};
    fds[0].fd = c->server_closed ? -1 : from;  // negative: ignored by poll
    fds[0].events = POLLIN;
    fds[1].fd = wake;
    fds[1].events = POLLIN;
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      go_on = false;
      break;
    }
    if (fds[1].revents != 0) {
      char drain[64];
      while (::read(wake, drain, sizeof drain) > 0) {
      }
    }
    if (fds[0].revents != 0) {
      const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n > 0) {
        held->insert(held->end(), buf.data(), buf.data() + n);
      } else if (n == 0 || errno != EINTR) {
        c->server_closed = true;
      }
      Notify();
    }
  }
  --stalled_now_;
  Notify();
  return go_on;
}

void TcpProxy::PumpServerToClient(Connection* c) {
  std::vector<uint8_t> buf(kChunk);
  int from, to;
  {
    std::lock_guard<std::mutex> lock(c->fd_mu);
    from = c->server_fd;
    to = c->client_fd;
  }
  const std::vector<Fault>& faults = c->faults;
  uint64_t pos = 0;           // the stream offset of the next byte to forward
  size_t next = 0;            // the first fault not yet passed
  bool holding_done = false;  // after a hold, cuts and stalls no longer apply
  // Forwards `n` bytes at `data` (the stream from `pos` on), flipping the bytes due.
  auto forward = [&](uint8_t* data, size_t n) {
    const uint64_t end = pos + n;
    while (next < faults.size() && faults[next].offset < end) {
      if (faults[next].kind == FaultKind::kFlip && faults[next].offset >= pos) {
        data[faults[next].offset - pos] ^= faults[next].mask;
        ++flips_;
      }
      ++next;
    }
    if (!SendAll(to, data, n)) return false;
    pos = end;
    c->server_to_client = pos;
    Notify();
    return true;
  };
  bool done = false;
  while (!done) {
    // A cut, stall or hold due at this position, before any further byte is read.
    if (!holding_done && next < faults.size() && faults[next].offset == pos &&
        faults[next].kind != FaultKind::kFlip) {
      const Fault f = faults[next++];
      if (f.kind == FaultKind::kCut) {
        ++cuts_;
        c->ShutdownBoth();
        Notify();
        break;
      }
      if (f.kind == FaultKind::kStall) {
        if (!Stall(c)) break;
        continue;
      }
      std::vector<uint8_t> held;
      if (!Hold(c, &held)) break;
      holding_done = true;
      if (!held.empty() && !forward(held.data(), held.size())) {
        c->ShutdownBoth();
        break;
      }
      if (c->server_closed) {
        c->ShutdownWrite(/*client_side=*/true);
        break;
      }
      continue;
    }
    // Read no further than the next cut, stall or hold, so that it lands on its exact offset.
    size_t limit = buf.size();
    if (!holding_done) {
      for (size_t i = next; i < faults.size(); ++i) {
        if (faults[i].kind == FaultKind::kFlip) continue;
        limit = static_cast<size_t>(std::min<uint64_t>(limit, faults[i].offset - pos));
        break;
      }
    }
    const ssize_t n = ::recv(from, buf.data(), limit, 0);
    if (n == 0) {
      c->server_closed = true;
      c->ShutdownWrite(/*client_side=*/true);  // the server closed: pass it on
      done = true;
    } else if (n < 0) {
      if (errno == EINTR) continue;
      c->server_closed = true;
      c->ShutdownBoth();
      done = true;
    } else if (!forward(buf.data(), static_cast<size_t>(n))) {
      c->ShutdownBoth();
      done = true;
    }
  }
  ThreadDone(c);
}

void TcpProxy::ThreadDone(Connection* c) {
  {
    std::lock_guard<std::mutex> lock(c->fd_mu);
    if (--c->live_threads == 0) {
      for (int* fd : {&c->client_fd, &c->server_fd, &c->wake[0], &c->wake[1]}) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }
  Notify();
}

}  // namespace finalsnap::testing
