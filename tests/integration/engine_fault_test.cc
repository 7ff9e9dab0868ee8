// The engine's operations under faults, against real redis-server processes: the node killed
// while the RDB streams (SIGKILL from the progress callback, or while the TCP proxy holds the
// stream), the replication connection cut, a payload byte flipped, the stream stalled past
// transfer_timeout_ms, the command connection lost mid-transfer and a node too slow right after
// the transfer. A refusal leaves the node as it was; for the last two the engine may succeed or
// refuse, but never half. Also the proxy itself. Shared parts: engine_fixture.h.
#include <gtest/gtest.h>

#include "engine_fixture.h"

namespace finalsnap::testing {
namespace {

// The fixture's helpers, as if defined here (fs, Clock and milliseconds too).
using namespace engine_fixture;  // NOLINT

// --- The node killed while the RDB streams -------------------------------------------------

class EngineKillTest : public EngineTest, public ::testing::WithParamInterface<Capture> {};

// SIGKILL from the progress callback once 1 MiB has arrived, with ~32 MB still to come: far more
// than the socket buffers hold, so the transfer cannot finish.
TEST_P(EngineKillTest, NodeKilledMidTransfer) {
  RedisServer server(ServerConfig(GetParam()));
  server.Start();
  Fill(server, 31, 0, 32u << 20);
  FleetSpec spec;
  spec.port = server.port();
  const Fleet fleet = MakeFleet(spec);
  bool killed = false;
  uint64_t killed_at = 0;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind == OperationEvent::Kind::kProgress && !killed && e.progress.bytes >= (1u << 20)) {
      server.Kill(SIGKILL);
      killed = true;
      killed_at = e.progress.bytes;
    }
  };
  const OperationResult r = DeleteCacheCluster(fleet, kClusterId, std::string("killed"), options);
  ASSERT_TRUE(killed) << "no progress report reached 1 MiB\n" << Describe(r);
  RecordProperty("killed_at_bytes", std::to_string(killed_at));
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_TRUE(kCaptureGates.count(r.failed_gate)) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  ASSERT_FALSE(r.gates.empty());
  EXPECT_EQ(r.gates.back().gate, r.failed_gate) << Describe(r);
  EXPECT_TRUE(InDesignOrder(GateNames(r))) << Describe(r);
  EXPECT_TRUE(server.WaitForExit(milliseconds(5'000)).has_value());
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(EngineFraming, EngineKillTest,
                         ::testing::Values(Capture::kSyncDiskless, Capture::kSyncDisk),
                         [](const ::testing::TestParamInfo<Capture>& info) {
                           return CaptureName(info.param);
                         });

// --- Faults injected by the proxy on the replication connection ----------------------------

// The proxy's connection numbers: the engine's command connection, then its replication one.
constexpr int kCommandConnection = 0;
constexpr int kReplicationConnection = 1;
constexpr size_t kBigValue = 2u << 20;       // the "big" value; the payload is a little larger
constexpr uint64_t kFaultOffset = 1u << 20;  // inside "big", whatever the framing

class EngineProxyTest : public EngineTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    server_ = std::make_unique<RedisServer>(ServerConfig(Capture::kSyncDiskless));
    server_->Start();
    FillBigValue(*server_, kBigValue);
    before_ = ReadState(*server_);
    proxy_ = std::make_unique<TcpProxy>(server_->host(), server_->port());
  }
  void TearDown() override {
    proxy_.reset();
    server_.reset();
    EngineTest::TearDown();
  }

  bool destroy() const { return GetParam(); }

  OperationResult Run(const std::string& cluster_extra, const std::string& name,
                      int transfer_timeout_ms = FleetSpec().transfer_timeout_ms) {
    FleetSpec spec;
    spec.port = proxy_->port();
    spec.cluster_extra = cluster_extra;
    spec.transfer_timeout_ms = transfer_timeout_ms;
    const Fleet fleet = MakeFleet(spec);
    return destroy() ? DeleteCacheCluster(fleet, kClusterId, name)
                     : CreateSnapshot(fleet, kClusterId, name);
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<TcpProxy> proxy_;
  NodeState before_;
};

TEST_P(EngineProxyTest, TransparentProxySucceeds) {
  // nodes-shutdown waits for the endpoint to refuse connections: the proxy mirrors that.
  proxy_->set_mirror_refusal(true);
  const OperationResult r = Run("", "via-proxy");
  std::vector<std::string> gates = kSnapshotGates;
  if (destroy()) gates.push_back("nodes-shutdown");
  ExpectAllPassed(r, gates);
  EXPECT_GE(proxy_->connections(), 2);
  EXPECT_GT(proxy_->server_to_client_bytes(kReplicationConnection), kBigValue);
  if (destroy()) {
    ExpectNodeGone(*server_);
  } else {
    ExpectNodeUntouched(*server_, before_);
  }
  VerifySnapshot("via-proxy", "zstd", before_);
}

TEST_P(EngineProxyTest, ReplicationConnectionCut) {
  proxy_->CutAt(kFaultOffset, kReplicationConnection);
  const OperationResult r = Run("", "cut");
  EXPECT_EQ(proxy_->cuts(), 1);
  ExpectRefused(r, "", "rdb-complete");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

TEST_P(EngineProxyTest, PayloadByteFlipped) {
  proxy_->FlipByteAt(kFaultOffset, kReplicationConnection);
  const OperationResult r = Run("", "flipped");
  EXPECT_EQ(proxy_->flips(), 1);
  // The flipped byte is inside a raw string value, so only the checksum can catch it.
  ExpectRefused(r, "", "rdb-checksum");
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

TEST_P(EngineProxyTest, StreamStalledPastTransferTimeout) {
  proxy_->StallAt(kFaultOffset, kReplicationConnection);
  const auto start = Clock::now();
  const OperationResult r = Run("", "stalled", /*transfer_timeout_ms=*/1500);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  RecordProperty("seconds", std::to_string(seconds));
  EXPECT_EQ(proxy_->stalls(), 1);
  ExpectRefused(r, "", "rdb-complete");
  EXPECT_LT(seconds, 10.0) << "transfer_timeout_ms was not enforced";
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
}

// The proxy holds the stream, the node is SIGKILLed, then the proxy lets the rest (and the
// close) through. A 32 MB value more makes the RDB far larger than what the socket buffers
// between the node and the proxy hold, so the node cannot have sent it all before it died.
TEST_P(EngineProxyTest, NodeKilledWhileStreamHeld) {
  SetRandomValue(*server_, "huge", 32u << 20);
  proxy_->StallAt(kFaultOffset, kReplicationConnection);
  // Once the node is dead its address refuses connections, as a dead node's would: the engine
  // then knows there is nothing to put back, and keeps no journal.
  proxy_->set_mirror_refusal(true);
  FleetSpec spec;
  spec.port = proxy_->port();
  const Fleet fleet = MakeFleet(spec);
  std::thread killer([&] {
    if (!proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, milliseconds(20'000))) return;
    server_->Kill(SIGKILL);
    server_->WaitForExit(milliseconds(5'000));
    proxy_->Resume();
  });
  const OperationResult r = destroy() ? DeleteCacheCluster(fleet, kClusterId, std::string("killed"))
                                      : CreateSnapshot(fleet, kClusterId, "killed");
  killer.join();
  EXPECT_EQ(proxy_->stalls(), 1);
  EXPECT_FALSE(server_->Running());
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_TRUE(kCaptureGates.count(r.failed_gate)) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{}) << Describe(r);
}

// The command connection (AUTH, CLIENT PAUSE, CONFIG, SHUTDOWN) is cut while the RDB streams on
// the replication connection. The node itself is fine, so the engine can reconnect. The outcome
// must be all or nothing: success (create: node as before, config put back; delete: node gone)
// with a good snapshot, or a refusal with the node running as before and unpaused.
TEST_P(EngineProxyTest, CommandConnectionLostMidTransfer) {
  proxy_->set_mirror_refusal(true);
  FleetSpec spec;
  spec.port = proxy_->port();
  const Fleet fleet = MakeFleet(spec);
  bool cut = false;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind != OperationEvent::Kind::kProgress) return;
    if (!cut) proxy_->CutNow(kCommandConnection);
    cut = true;
  };
  const OperationResult r =
      destroy() ? DeleteCacheCluster(fleet, kClusterId, std::string("lost"), options)
                : CreateSnapshot(fleet, kClusterId, "lost", options);
  ASSERT_TRUE(cut) << "no progress was reported\n" << Describe(r);
  RecordProperty("outcome", r.ok ? "ok" : "refused at " + r.failed_gate);
  SCOPED_TRACE(Describe(r));
  if (r.ok) {
    if (destroy()) {
      ExpectNodeGone(*server_);
    } else {
      ExpectNodeUntouched(*server_, before_);
    }
    VerifySnapshot("lost", "zstd", before_);
    return;
  }
  EXPECT_FALSE(r.failed_gate.empty());
  ExpectNodeUntouched(*server_, before_);
  // A refusal at nodes-shutdown comes after the snapshot was committed; any other leaves none.
  if (r.failed_gate != "nodes-shutdown") {
    EXPECT_EQ(StorageEntries(), std::vector<std::string>{});
  }
}

// command_timeout_ms = 300, and the node falls asleep (DEBUG SLEEP 3) after it has sent the
// whole RDB but before the engine has seen the end of it: the proxy holds the stream back (while
// reading all of it from the server) until the server has closed the replication connection and
// is busy. The engine then meets a sleeping node at every command after the capture: CONFIG SET
// putting the config back, CLIENT PAUSE renewals, SHUTDOWN. Whatever it does, the outcome must
// be all or nothing: either success (create: node as before, config included; delete: node
// gone) with a good snapshot, or a refusal with the node running as before, unpaused, and no
// snapshot stored.
TEST_P(EngineProxyTest, NodeSlowAfterTransfer) {
  proxy_->HoldAt(kFaultOffset, kReplicationConnection);
  proxy_->set_mirror_refusal(true);
  RedisContextPtr sleeper_conn = server_->Connect(milliseconds(10'000));
  std::atomic<bool> slept{false};
  std::thread sleeper([&] {
    if (!proxy_->WaitFor(
            [&] { return proxy_->stalled() > 0 && proxy_->server_closed(kReplicationConnection); },
            milliseconds(20'000))) {
      proxy_->Resume();
      return;
    }
    std::thread sleep([&] { Execute(sleeper_conn.get(), {"DEBUG", "SLEEP", "3"}); });
    slept = WaitUntilBusy(*server_, milliseconds(5'000));
    proxy_->Resume();
    sleep.join();
  });
  const OperationResult r = Run("command_timeout_ms = 300\n", "slow");
  sleeper.join();
  ASSERT_TRUE(slept) << "the node never became busy\n" << Describe(r);
  RecordProperty("outcome", r.ok ? "ok" : "refused at " + r.failed_gate);
  SCOPED_TRACE(Describe(r));
  if (r.ok) {
    if (destroy()) {
      ExpectNodeGone(*server_);
    } else {
      ExpectNodeUntouched(*server_, before_);
    }
    VerifySnapshot("slow", "zstd", before_);
    return;
  }
  EXPECT_FALSE(r.failed_gate.empty()) << Describe(r);
  ExpectNodeUntouched(*server_, before_);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{}) << Describe(r);
}

INSTANTIATE_TEST_SUITE_P(EngineOperation, EngineProxyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Delete") : std::string("Create");
                         });

// --- The proxy itself ----------------------------------------------------------------------

TEST(EngineTcpProxyTest, ForwardsAndInjects) {
  RedisServer server;
  server.Start();
  TcpProxy proxy(server.host(), server.port());
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_TRUE(Execute(c.get(), {"SET", "k", "hello"}).ok());
    EXPECT_EQ(Execute(c.get(), {"GET", "k"}).str, "hello");
  }
  // Connection 1: "$5\r\nhello\r\n" with its 'h' (offset 4) flipped to 'H' (0x20).
  proxy.FlipByteAt(4, 1, 0x20);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_EQ(Execute(c.get(), {"GET", "k"}).str, "Hello");
    EXPECT_EQ(proxy.flips(), 1);
  }
  // Connection 2 stalls after 2 bytes, and goes on after Resume().
  proxy.StallAt(2, 2);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(5000));
    std::string got;
    std::thread t([&] { got = Execute(c.get(), {"GET", "k"}).str; });
    EXPECT_TRUE(proxy.WaitFor([&] { return proxy.stalled() == 1; }, milliseconds(5000)));
    EXPECT_EQ(proxy.server_to_client_bytes(2), 2u);
    proxy.Resume();
    t.join();
    EXPECT_EQ(got, "hello");
  }
  // Connection 3 is cut after 3 bytes: the client sees the connection close.
  proxy.CutAt(3, 3);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(2000));
    EXPECT_THROW(Execute(c.get(), {"GET", "k"}), std::runtime_error);
    EXPECT_EQ(proxy.cuts(), 1);
    EXPECT_EQ(proxy.server_to_client_bytes(3), 3u);
  }
  // Connection 4 is held after 2 bytes: the proxy reads the whole reply and the server's close
  // (QUIT), and forwards them only after Resume().
  proxy.HoldAt(2, 4);
  {
    RedisContextPtr c = ConnectTo("127.0.0.1", proxy.port(), milliseconds(5000));
    std::string got;
    std::thread t([&] {
      // Pipelined, so that the server has answered both and closed before anything is forwarded.
      redisAppendCommand(c.get(), "GET k");
      redisAppendCommand(c.get(), "QUIT");
      void* reply = nullptr;
      if (redisGetReply(c.get(), &reply) == REDIS_OK && reply != nullptr) {
        got = static_cast<redisReply*>(reply)->str;
        freeReplyObject(reply);
      }
    });
    EXPECT_TRUE(proxy.WaitFor([&] { return proxy.stalled() == 1 && proxy.server_closed(4); },
                              milliseconds(5000)));
    EXPECT_EQ(proxy.server_to_client_bytes(4), 2u);
    EXPECT_EQ(proxy.holds(), 1);
    proxy.Resume();
    t.join();
    EXPECT_EQ(got, "hello");
  }
  EXPECT_EQ(proxy.connections(), 5);
  EXPECT_GT(proxy.client_to_server_bytes(), 0u);
  proxy.Kill();
  EXPECT_THROW(ConnectTo("127.0.0.1", proxy.port(), milliseconds(1000)), std::runtime_error);
}

}  // namespace
}  // namespace finalsnap::testing
