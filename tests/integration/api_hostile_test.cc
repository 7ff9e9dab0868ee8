// `finalsnap serve` (finalsnap::Serve, in process) under hostile clients, over raw loopback
// sockets: a flood of connections trickling one byte at a time, a client that pipelines requests
// and never reads, many connections from one address, and protocol upgrades. What must hold:
//
//   - a signed request is answered within a second while 300 tricklers are connected, and the
//     tricklers are closed by the whole-request deadline (counted from a request's first byte,
//     never extended by its later bytes);
//   - a client that never reads is disconnected after the write timeout, and what the server
//     queues for it meanwhile stays bounded (its socket's send queue, read from /proc/net/tcp);
//   - one address holds at most 32 connections, and the oldest unauthenticated one makes room;
//   - a signed CreateSnapshot sent with Connection: Upgrade (or h2c) gets a 4xx and creates no
//     snapshot, while the same request without it does.
//
// The timeouts are shortened through ServeOptions so that the test takes seconds; the connection
// caps are the defaults (engine/api/http_request_parser.h, HttpLimits). Requests are signed here
// with the SigV4 building blocks of engine/api/sigv4.h, which tests/engine/sigv4_test.cc holds to
// botocore's own values. Connections come from several loopback addresses (127.0.0.2, ...) so
// that the per-address and the unauthenticated caps can be told apart.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "finalsnap/api.h"
#include "finalsnap/fleet.h"
#include "sigv4.h"
#include "support/http_peer.h"
#include "support/redis_server.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::Peer;

constexpr char kAccessKey[] = "AKIDHOSTILE";
constexpr char kSecret[] = "hostile-test-secret/+=";
constexpr char kSecretEnv[] = "FINALSNAP_API_HOSTILE_TEST_SECRET";
constexpr char kCluster[] = "myRedisCluster";

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int HttpStatus(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

// A form-encoded POST signed as the aws CLI signs it (content-type;host;x-amz-date), with
// `extra` header lines (each ending in CRLF) added unsigned.
std::string SignedPost(int port, const std::string& body, const std::string& extra = "") {
  using namespace detail;
  const std::string host = "127.0.0.1:" + std::to_string(port);
  const std::string type = "application/x-www-form-urlencoded; charset=utf-8";
  const std::string amz_date = FormatAmzDate(std::chrono::system_clock::now());
  const std::string date = amz_date.substr(0, 8);
  const std::string signed_headers = "content-type;host;x-amz-date";
  const std::string canonical = "POST\n" + CanonicalUri("/") + "\n\ncontent-type:" + type +
                                "\nhost:" + host + "\nx-amz-date:" + amz_date + "\n\n" +
                                signed_headers + "\n" + Sha256Hex(body);
  const std::string scope = date + "/us-west-2/elasticache/aws4_request";
  const std::string signature =
      ToHex(HmacSha256(SigningKey(kSecret, date, "us-west-2", "elasticache"),
                       StringToSign(amz_date, scope, canonical)));
  return "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + type +
         "\r\nX-Amz-Date: " + amz_date +
         "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + kAccessKey + "/" + scope +
         ", SignedHeaders=" + signed_headers + ", Signature=" + signature +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

const std::string kDescribeSnapshots = "Action=DescribeSnapshots&Version=2015-02-02";

// The server side of one loopback connection in /proc/net/tcp: its send queue in bytes, or
// nullopt when the server has no such socket any more (closed).
std::optional<long> ServerSendQueue(int server_port, int client_port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  char local[64];
  char remote[64];
  while (std::getline(in, line)) {
    unsigned state = 0;
    unsigned long tx = 0;
    unsigned long rx = 0;
    if (std::sscanf(line.c_str(), "%*d: %63s %63s %x %lx:%lx", local, remote, &state, &tx, &rx) !=
        5) {
      continue;
    }
    const std::string l(local);
    const std::string r(remote);
    const int lport = std::stoi(l.substr(l.find(':') + 1), nullptr, 16);
    const int rport = std::stoi(r.substr(r.find(':') + 1), nullptr, 16);
    if (lport == server_port && rport == client_port && state == 1 /* ESTABLISHED */) {
      return static_cast<long>(tx);
    }
  }
  return std::nullopt;
}

class ApiHostileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (stop_) stop_();
    if (server_.joinable()) server_.join();
    EXPECT_TRUE(result_.ok()) << result_.message();
    ::unsetenv(kSecretEnv);
    if (HasFailure()) std::cerr << "--- serve log ---\n" << Log();
  }

  // Starts the server; `nodes` is fleet text for cache clusters, if any.
  void Start(const ServeOptions& overrides, const std::string& nodes = "") {
    ASSERT_EQ(::setenv(kSecretEnv, kSecret, 1), 0);
    const std::string toml = "[storage]\npath = \"snapshots\"\n\n" + nodes +
                             "\n[api]\nstate = \"state\"\n\n[[api.credentials]]\n"
                             "access_key_id = \"" +
                             std::string(kAccessKey) + "\"\nsecret_access_key_env = \"" +
                             kSecretEnv + "\"\n";
    auto parsed = ParseFleet(toml, dir_.path() / "finalsnap.toml");
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    fleet_ = *parsed;
    ServeOptions options = overrides;
    options.listen = Endpoint{"127.0.0.1", 0};
    options.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_ += std::string(line) + "\n";
    };
    std::promise<std::pair<int, std::function<void()>>> ready;
    auto listening = ready.get_future();
    options.on_listening = [&ready](const Endpoint& bound, std::function<void()> stop) {
      ready.set_value({bound.port, std::move(stop)});
    };
    server_ = std::thread([this, options] { result_ = Serve(fleet_, options); });
    ASSERT_EQ(listening.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto [port, stop] = listening.get();
    port_ = port;
    stop_ = std::move(stop);
  }

  std::string Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  // A signed request on a new connection from 127.0.0.1: the response, and how long it took
  // from connect() to its last byte.
  std::pair<std::string, double> TimedSigned(const std::string& body,
                                             const std::string& extra = "") {
    const auto began = Clock::now();
    Peer p(port_);
    if (!p.connected() || !p.Send(SignedPost(port_, body, extra))) return {"", MsSince(began)};
    std::string response = p.ReadResponse();
    return {response, MsSince(began)};
  }

  finalsnap::testing::TempDir dir_{"finalsnap-api-hostile"};
  Fleet fleet_;
  std::thread server_;
  Status result_;
  int port_ = 0;
  std::function<void()> stop_;
  std::mutex log_mu_;
  std::string log_;
};

// 300 connections from ten addresses each send the start of a request and then one more byte
// every 250 ms, for ever. With the defaults (256 connections, 128 unauthenticated) the server
// keeps the newest 128 and closes the older ones; a signed DescribeSnapshots on a new connection
// is answered within a second all the while; and every trickler still open is answered 408 and
// closed when its request deadline (2 s here) runs out from its first byte, however many bytes
// it has sent since.
TEST_F(ApiHostileTest, SignedRequestAnsweredUnder300TricklersAndTricklersHitTheDeadline) {
  ServeOptions options;
  options.request_timeout = milliseconds(2000);
  Start(options);
  constexpr int kTricklers = 300;
  const std::string request = "POST / HTTP/1.1\r\nHost: h\r\nX-Slow: " + std::string(4096, 'a');
  struct Trickler {
    std::unique_ptr<Peer> peer;
    Clock::time_point first_byte;
    Clock::time_point closed_at;
    size_t sent = 0;
  };
  std::vector<Trickler> tricklers(kTricklers);
  for (int i = 0; i < kTricklers; ++i) {
    Trickler& t = tricklers[i];
    t.peer = std::make_unique<Peer>(port_, "127.0.0." + std::to_string(2 + i % 10));
    ASSERT_TRUE(t.peer->connected()) << i;
    t.first_byte = Clock::now();
    t.sent = static_cast<size_t>(std::max<ssize_t>(0, t.peer->SendSome(request.substr(0, 1))));
  }
  // One byte every 250 ms to each trickler still open; note when the server closes one.
  auto trickle_round = [&] {
    int open = 0;
    for (Trickler& t : tricklers) {
      if (t.closed_at != Clock::time_point()) continue;
      if (!t.peer->Drain() || t.peer->SendSome(request.substr(t.sent % request.size(), 1)) < 0) {
        t.closed_at = Clock::now();
        continue;
      }
      ++t.sent;
      ++open;
    }
    return open;
  };
  auto trickle_for = [&](milliseconds how_long) {
    const auto until = Clock::now() + how_long;
    int open = 0;
    while (Clock::now() < until) {
      open = trickle_round();
      std::this_thread::sleep_for(milliseconds(250));
    }
    return open;
  };
  const int open_after_connect = trickle_for(milliseconds(500));
  // The unauthenticated cap (128) holds: the older ones were closed to make room.
  EXPECT_LE(open_after_connect, 128);
  EXPECT_GE(open_after_connect, 100);

  // Signed requests while the rest trickle on, each on a new connection.
  double worst_ms = 0;
  for (int round = 0; round < 5; ++round) {
    const auto [response, ms] = TimedSigned(kDescribeSnapshots);
    EXPECT_EQ(HttpStatus(response), 200) << response;
    EXPECT_NE(response.find("<DescribeSnapshotsResponse"), std::string::npos) << response;
    EXPECT_LT(ms, 1000.0) << "a signed request waited " << ms << " ms behind the tricklers";
    worst_ms = std::max(worst_ms, ms);
    trickle_for(milliseconds(250));
  }
  std::printf("signed DescribeSnapshots under %d tricklers: worst %.1f ms of 5\n", kTricklers,
              worst_ms);

  // Every trickler is closed by its deadline (2 s from its first byte), not kept open by its
  // bytes: those open at the deadline were answered 408 first.
  const auto until = Clock::now() + milliseconds(8000);
  while (trickle_round() > 0 && Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(250));
  }
  int timed_out = 0;
  for (size_t i = 0; i < tricklers.size(); ++i) {
    const Trickler& t = tricklers[i];
    ASSERT_NE(t.closed_at, Clock::time_point()) << "trickler " << i << " still open";
    const double lived =
        std::chrono::duration<double, std::milli>(t.closed_at - t.first_byte).count();
    EXPECT_LT(lived, 2000.0 + 1500.0) << "trickler " << i << " (" << t.sent << " bytes sent)";
    if (t.peer->received().find("RequestTimeout") != std::string::npos) {
      EXPECT_EQ(HttpStatus(t.peer->received()), 408) << t.peer->received();
      EXPECT_GT(lived, 2000.0 - 300.0) << "trickler " << i;
      ++timed_out;
    }
  }
  EXPECT_GE(timed_out, 100) << "the tricklers kept open should have met the deadline";
  // And the server is itself again.
  const auto [response, ms] = TimedSigned(kDescribeSnapshots);
  EXPECT_EQ(HttpStatus(response), 200) << response;
}

// A client pipelines up to 40,000 requests and never reads. The server stops taking its
// requests once an answer cannot be written, holds no more than its send buffer for it, and
// resets the connection when the write timeout (1 s here) runs out. Others are served meanwhile.
TEST_F(ApiHostileTest, PipeliningClientThatNeverReadsIsDisconnected) {
  ServeOptions options;
  options.write_timeout = milliseconds(1000);
  Start(options);
  // A small receive buffer, so that the server's answers back up at once.
  Peer hog(port_, "127.0.0.2", 4096);
  ASSERT_TRUE(hog.connected());
  const std::string one = "GET /?Action=DescribeEvents HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string all;
  for (int i = 0; i < 40'000; ++i) all += one;
  size_t sent = 0;
  long worst_queue = 0;
  auto stalled_since = Clock::now();
  const auto began = Clock::now();
  // Push until the server has not taken a byte for 300 ms.
  while (sent < all.size() && MsSince(stalled_since) < 300) {
    const ssize_t n = hog.SendSome(std::string_view(all).substr(sent, 65536));
    if (n < 0) break;
    if (n > 0) stalled_since = Clock::now();
    sent += static_cast<size_t>(n);
    if (auto q = ServerSendQueue(port_, hog.local_port())) worst_queue = std::max(worst_queue, *q);
    pollfd p{hog.fd(), POLLOUT, 0};
    ::poll(&p, 1, 20);
  }
  // While stalled: the server's queue for this client stays bounded, and the server answers
  // others at once.
  const auto [response, ms] = TimedSigned(kDescribeSnapshots);
  EXPECT_EQ(HttpStatus(response), 200) << response;
  EXPECT_LT(ms, 1000.0);
  // Disconnected within the write timeout (plus the time to notice).
  bool gone = false;
  while (MsSince(began) < 10'000) {
    std::optional<long> q = ServerSendQueue(port_, hog.local_port());
    if (!q) {
      gone = true;
      break;
    }
    worst_queue = std::max(worst_queue, *q);
    std::this_thread::sleep_for(milliseconds(20));
  }
  const double stalled_for = MsSince(stalled_since);
  EXPECT_TRUE(gone) << "the server kept a client that never reads for 10 s";
  EXPECT_LT(stalled_for, 1000.0 + 1500.0);
  // 64 KiB asked for, doubled by the kernel; far below the megabytes a full window would hold.
  EXPECT_LE(worst_queue, 160 * 1024) << "bytes queued for a client that never reads";
  std::printf(
      "pipelining client: %zu request bytes taken, server send queue at most %ld bytes, "
      "disconnected %.0f ms after the last byte it took\n",
      sent, worst_queue, stalled_for);
}

// One address holds at most 32 connections: a 33rd closes the oldest unauthenticated one of that
// address (not its authenticated one, not another address's).
TEST_F(ApiHostileTest, PerAddressCapClosesTheOldestUnauthenticatedConnection) {
  Start(ServeOptions{});
  Peer other(port_, "127.0.0.4");
  ASSERT_TRUE(other.connected());
  // An authenticated connection from 127.0.0.3, first and so the oldest.
  Peer signed_peer(port_, "127.0.0.3");
  ASSERT_TRUE(signed_peer.Send(SignedPost(port_, kDescribeSnapshots)));
  ASSERT_EQ(HttpStatus(signed_peer.ReadResponse()), 200);
  std::vector<std::unique_ptr<Peer>> idle;
  for (int i = 0; i < 40; ++i) {
    idle.push_back(std::make_unique<Peer>(port_, "127.0.0.3"));
    ASSERT_TRUE(idle.back()->connected());
  }
  // 1 signed + 40 idle: 9 too many, the 9 oldest idle ones are closed.
  for (int i = 0; i < 9; ++i) {
    EXPECT_TRUE(idle[i]->ClosedWithin(milliseconds(3000))) << "idle connection " << i;
  }
  for (int i = 9; i < 40; ++i) EXPECT_TRUE(idle[i]->Drain()) << "idle connection " << i;
  EXPECT_TRUE(other.Drain());
  ASSERT_TRUE(signed_peer.Send(SignedPost(port_, kDescribeSnapshots)));
  EXPECT_EQ(HttpStatus(signed_peer.ReadResponse()), 200);
  // The newest idle connection still works.
  ASSERT_TRUE(idle.back()->Send(SignedPost(port_, kDescribeSnapshots)));
  EXPECT_EQ(HttpStatus(idle.back()->ReadResponse()), 200);
}

// A signed CreateSnapshot that asks to upgrade the connection is refused before it reaches the
// action: a 400 (UpgradeNotSupported), the connection closed, and no snapshot, in storage or in
// DescribeSnapshots. The same request without the upgrade creates the snapshot, so the test
// would see one.
TEST_F(ApiHostileTest, UpgradeRequestsAreRefusedBeforeTheActionRuns) {
  testing::RedisServer node;
  node.Start();
  ASSERT_TRUE(node.Command("DEBUG", "POPULATE", 1000, "key", 16).ok());
  Start(ServeOptions{}, std::string("[cache_clusters.") + kCluster + "]\nendpoint = \"" +
                            node.host() + ":" + std::to_string(node.port()) + "\"\n");
  const std::vector<std::string> upgrades = {
      "Connection: Upgrade\r\nUpgrade: websocket\r\n",
      "Connection: keep-alive, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
      "Upgrade: h2c\r\n",
      "Connection: upgrade\r\n",
  };
  for (size_t i = 0; i < upgrades.size(); ++i) {
    const std::string name = "upgrade-" + std::to_string(i);
    const std::string body =
        "Action=CreateSnapshot&Version=2015-02-02&CacheClusterId=" + std::string(kCluster) +
        "&SnapshotName=" + name;
    Peer p(port_);
    ASSERT_TRUE(p.Send(SignedPost(port_, body, upgrades[i])));
    const std::string response = p.ReadResponse();
    EXPECT_EQ(HttpStatus(response), 400) << upgrades[i] << response;
    EXPECT_NE(response.find("<Code>UpgradeNotSupported</Code>"), std::string::npos) << response;
    EXPECT_TRUE(p.ClosedWithin(milliseconds(3000)));
    EXPECT_EQ(p.received(), "") << "a second answer followed the refusal";
  }
  const auto [described, ms] = TimedSigned(kDescribeSnapshots);
  EXPECT_EQ(HttpStatus(described), 200) << described;
  EXPECT_EQ(described.find("upgrade-"), std::string::npos) << described;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_.path() / "snapshots", ec)) {
    EXPECT_EQ(entry.path().filename().string().find("upgrade-"), std::string::npos) << entry.path();
  }
  EXPECT_EQ(Log().find("CreateSnapshot"), std::string::npos) << Log();

  // Without the upgrade the same request creates its snapshot.
  const auto [created, created_ms] = TimedSigned(
      "Action=CreateSnapshot&Version=2015-02-02&CacheClusterId=" + std::string(kCluster) +
      "&SnapshotName=control");
  EXPECT_EQ(HttpStatus(created), 200) << created;
  const auto until = Clock::now() + milliseconds(30'000);
  std::string listed;
  while (Clock::now() < until) {
    listed = TimedSigned(kDescribeSnapshots).first;
    if (listed.find("<SnapshotStatus>available</SnapshotStatus>") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_NE(listed.find("<SnapshotName>control</SnapshotName>"), std::string::npos) << listed;
  EXPECT_NE(listed.find("<SnapshotStatus>available</SnapshotStatus>"), std::string::npos) << listed;
}

}  // namespace
}  // namespace finalsnap
