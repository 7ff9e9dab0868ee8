// TcpProbe (engine/loop/tcp_probe.h) on a real loop against real sockets: a listener accepts, a
// closed port refuses, a name that does not resolve says so; every run ends with the loop
// closed cleanly (Loop's destructor requires uv_loop_close() == 0), so no handle leaks.
#include "tcp_probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "async.h"

namespace finalsnap::detail {
namespace {

using std::chrono::milliseconds;

Task<std::string> Probe(Loop& loop, std::string host, uint16_t port) {
  TcpProbe probe(loop, std::move(host), port, milliseconds(2000));
  std::string why = co_await probe;
  co_return why;
}

// A listening socket on a free loopback port, closed (so refusing) on Close().
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 128), 0);  // never accepted: room for every probe
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(TcpProbeTest, AcceptedRefusedAndUnresolvable) {
  Listener listener;
  {
    Loop loop;
    EXPECT_EQ(RunToCompletion(loop, Probe(loop, "127.0.0.1", listener.port())), "");
    EXPECT_EQ(RunToCompletion(loop, Probe(loop, "localhost", listener.port())), "");
  }
  listener.Close();
  {
    Loop loop;
    EXPECT_EQ(RunToCompletion(loop, Probe(loop, "127.0.0.1", listener.port())),
              "connection refused");
    const std::string why = RunToCompletion(loop, Probe(loop, "no-such-host.invalid", 6379));
    EXPECT_EQ(why.rfind("cannot resolve no-such-host.invalid", 0), 0u) << why;
  }
}

// The loop keeps running other work while a probe waits: a timer of the same loop fires
// repeatedly during a name lookup and connect.
TEST(TcpProbeTest, DoesNotBlockTheLoop) {
  Listener listener;
  Loop loop;
  int ticks = 0;
  Timer ticker(loop);
  ticker.Repeat(milliseconds(1), [&] { ++ticks; });
  auto many = [&]() -> Task<int> {
    int accepted = 0;
    for (int i = 0; i < 20; ++i) {
      TcpProbe probe(loop, "localhost", listener.port(), milliseconds(2000));
      const std::string why = co_await probe;
      accepted += why.empty() ? 1 : 0;
    }
    co_return accepted;
  };
  EXPECT_EQ(RunToCompletion(loop, many()), 20);
  ticker.Stop();
  EXPECT_GT(ticks, 0);
}

}  // namespace
}  // namespace finalsnap::detail
