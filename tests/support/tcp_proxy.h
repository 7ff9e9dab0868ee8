// TcpProxy: a loopback TCP proxy for integration tests that injects faults into what a server
// sends back: a flipped byte, a cut connection, a stall, a held-back stream.
//
//   RedisServer server;
//   server.Start();
//   TcpProxy proxy(server.host(), server.port());     // listening on 127.0.0.1:proxy.port()
//   proxy.FlipByteAt(600'000, /*connection=*/1);       // corrupt the second connection's stream
//   ... point the code under test at 127.0.0.1:proxy.port() ...
//   EXPECT_EQ(proxy.flips(), 1);                       // the fault really happened
//
// Each accepted connection gets its own connection to the target and two threads, one per
// direction, with blocking sockets. End-of-stream is passed on as a half close (shutdown
// SHUT_WR), so request/response protocols behave as they would without the proxy.
//
// Connections are numbered 0, 1, 2, ... in the order they are accepted. A fault applies either to
// every connection (kEveryConnection) or to one connection number. The finalsnap engine opens
// its command connection first (AUTH, INFO, CLIENT PAUSE, ...; connection 0) and its replication
// connection second (REPLCONF, PSYNC and the RDB payload; connection 1), both to the endpoint in
// the fleet file; delete-cache-cluster opens further probe connections after SHUTDOWN.
//
// Fault offsets count the bytes of one connection's server-to-client stream from its first byte
// (0-based), everything included: for a replication connection, the +OK replies, +FULLRESYNC,
// keepalive newlines and the $ preamble come before the RDB payload. A fault is attached to a
// connection when it is accepted, so set faults before the code under test connects. Nothing is
// ever injected in the client-to-server direction.
//
// Thread safety: every member may be called from any thread, except that Kill() and the
// destructor must not be called from inside a callback of the proxy (there are none).
#ifndef FINALSNAP_TESTS_SUPPORT_TCP_PROXY_H_
#define FINALSNAP_TESTS_SUPPORT_TCP_PROXY_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace finalsnap::testing {

class TcpProxy {
 public:
  // The connection argument of the fault setters: apply to every connection.
  static constexpr int kEveryConnection = -1;

  // Binds 127.0.0.1 on a free port, starts accepting and forwards every connection to
  // target_host:target_port (an IPv4 address or a name). Throws std::runtime_error on failure.
  TcpProxy(std::string target_host, int target_port);
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;
  // Kill()s the proxy and joins its threads.
  ~TcpProxy();

  // The port the proxy listens on, on 127.0.0.1.
  int port() const { return port_; }

  // XOR the byte at `offset` of the server-to-client stream with `mask` (never 0).
  void FlipByteAt(uint64_t offset, int connection = kEveryConnection, uint8_t mask = 0x5a);
  // Forward exactly `offset` server-to-client bytes, then close both sides of the connection.
  void CutAt(uint64_t offset, int connection = kEveryConnection);
  // Forward exactly `offset` server-to-client bytes, then stop reading from the server and stop
  // forwarding, keeping both sockets open (the client sees an idle connection) until Resume() or
  // Kill(). The client-to-server direction keeps flowing.
  void StallAt(uint64_t offset, int connection = kEveryConnection);
  // Closes both sides of connection number `connection` now (as CutAt does at an offset); does
  // nothing if there is no such open connection.
  void CutNow(int connection);
  // Like StallAt, except that the proxy keeps reading what the server sends, into memory, so the
  // server is never held up: it can finish its transfer and close while the client sees nothing
  // past `offset`. Resume() forwards what was held, then the rest (and the server's close, if it
  // came). Cuts and stalls past a hold point are ignored; flips apply.
  void HoldAt(uint64_t offset, int connection = kEveryConnection);
  // Lets every connection stalled or held right now go on forwarding. Stall and hold points
  // that no connection has reached yet stay armed.
  void Resume();
  // When on, the first connection accepted while the target refuses connections makes the proxy
  // stop listening, so that from then on connecting to the proxy is refused too, as connecting
  // to the target is: the proxy mirrors a node that has shut down. Off by default: the client
  // then sees its connection accepted and closed at once.
  void set_mirror_refusal(bool on) { mirror_refusal_ = on; }

  // Stops accepting (new connections are refused once this returns), closes every open
  // connection on both sides, and joins all threads. Idempotent.
  void Kill();

  // Connections accepted so far (including ones whose target connection failed).
  int connections() const;
  // Bytes forwarded so far on one connection (by number), or on all of them (kEveryConnection).
  uint64_t server_to_client_bytes(int connection = kEveryConnection) const;
  uint64_t client_to_server_bytes(int connection = kEveryConnection) const;
  // How many faults took effect: bytes flipped, connections cut, stall and hold points reached.
  int flips() const { return flips_.load(); }
  int cuts() const { return cuts_.load(); }
  int stalls() const { return stalls_.load(); }
  int holds() const { return holds_.load(); }
  // Connections stalled or held right now.
  int stalled() const { return stalled_now_.load(); }
  // Whether the server has closed (or reset) its side of a connection, by number; for a held
  // connection this can be true while the client has not yet seen everything.
  bool server_closed(int connection) const;

  // Waits until `condition` (evaluated on the proxy's state, e.g. [&] { return p.stalled() > 0; })
  // holds, re-checking whenever the proxy's state changes. Returns false at the deadline.
  bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds deadline);

 private:
  enum class FaultKind { kFlip, kCut, kStall, kHold };
  struct Fault {
    FaultKind kind;
    uint64_t offset;
    int connection;
    uint8_t mask;
  };
  struct Connection;

  void AddFault(Fault fault);
  void AcceptLoop();
  void PumpClientToServer(Connection* c);
  void PumpServerToClient(Connection* c);
  bool Stall(Connection* c);
  bool Hold(Connection* c, std::vector<uint8_t>* held);
  void ThreadDone(Connection* c);
  void Notify();

  std::string target_host_;
  int target_port_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Fault> faults_;                       // guarded by mu_
  std::vector<std::unique_ptr<Connection>> conns_;  // guarded by mu_; never shrinks
  std::vector<std::thread> threads_;                // guarded by mu_
  uint64_t resume_generation_ = 0;                  // guarded by mu_
  bool killed_ = false;                             // guarded by mu_
  uint64_t state_version_ = 0;                      // guarded by mu_; bumped by Notify()

  std::atomic<bool> mirror_refusal_{false};
  std::thread accept_thread_;
  std::mutex kill_mu_;  // serialises Kill()
  std::atomic<int> flips_{0};
  std::atomic<int> cuts_{0};
  std::atomic<int> stalls_{0};
  std::atomic<int> holds_{0};
  std::atomic<int> stalled_now_{0};
};

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_TCP_PROXY_H_
