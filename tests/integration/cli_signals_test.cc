// Cancellation without signals in the engine (finalsnap/cancel.h), and the CLI's mapping of
// SIGINT, SIGTERM and SIGHUP to it, against a real redis-server behind a TcpProxy that holds the
// RDB stream part way, so that the signal lands mid-transfer every time:
//
//   - an embedding program cancels an operation's token from another thread: the operation
//     ends as Interrupted with the token's reason, writes resume, the node's config is as before;
//   - the real `finalsnap` binary, sent each of the three signals while create-snapshot or
//     delete-cache-cluster streams (SIGHUP is a dropped SSH session): it exits 130, the node runs
//     unpaused with its data and the config it had, and no snapshot is left.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "finalsnap/cancel.h"
#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "support/storage_entries.h"
#include "support/tcp_proxy.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::ProcessResult;
using testing::RedisServer;
using testing::RunCommand;
using testing::RunOptions;
using testing::TcpProxy;
using testing::TempDir;

constexpr milliseconds kDeadline{30'000};
constexpr uint64_t kStallOffset = 64 * 1024;  // past every command reply, inside the RDB

TEST(CancelTokenTest, FirstReasonWinsAndSubscribersRunOnce) {
  CancelToken token;
  CancelToken copy = token;  // shares the state
  int calls = 0;
  const uint64_t id = token.Subscribe([&] { ++calls; });
  int unsubscribed_calls = 0;
  token.Unsubscribe(token.Subscribe([&] { ++unsubscribed_calls; }));
  EXPECT_FALSE(copy.cancelled());
  copy.Cancel("first");
  token.Cancel("second");
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(token.reason(), "first");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(unsubscribed_calls, 0);
  token.Unsubscribe(id);
  // Subscribing to a cancelled token runs the callback at once.
  int late = 0;
  token.Subscribe([&] { ++late; });
  EXPECT_EQ(late, 1);
}

class CancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    ASSERT_TRUE(server_.Command("DEBUG", "POPULATE", 20000, "key", 64).ok());
    // Values that differ from what a capture sets, so that "put back" is visible.
    ASSERT_TRUE(server_.Command("CONFIG", "SET", "rdbcompression", "yes").ok());
    ASSERT_TRUE(server_.Command("CONFIG", "SET", "repl-diskless-sync-delay", "3").ok());
    digest_ = server_.Command("DEBUG", "DIGEST").str;
    proxy_ = std::make_unique<TcpProxy>(server_.host(), server_.port());
    proxy_->StallAt(kStallOffset, TcpProxy::kEveryConnection);
    std::ofstream(fleet_path()) << "[storage]\npath = \"snapshots\"\n\n[defaults]\n"
                                   "pause_timeout_ms = 3000\n\n[cache_clusters.c1]\n"
                                   "endpoint = \"127.0.0.1:"
                                << proxy_->port() << "\"\n";
  }
  void TearDown() override {
    if (proxy_) proxy_->Resume();
  }

  std::string fleet_path() const { return (dir_.path() / "finalsnap.toml").string(); }

  std::string Config(const std::string& name) {
    const auto reply = server_.Command("CONFIG", "GET", name);
    return reply.elements.size() == 2 ? reply.elements[1].str : "";
  }

  // The node runs, takes writes (no pause left), holds its data and the config it had, and no
  // snapshot was kept.
  void ExpectPutBack() {
    ASSERT_TRUE(server_.Running());
    EXPECT_TRUE(server_.Command("SET", "probe", "1").ok()) << "writes left paused";
    EXPECT_EQ(server_.Command("DEL", "probe").integer, 1);
    EXPECT_EQ(server_.Command("DEBUG", "DIGEST").str, digest_);
    EXPECT_EQ(Config("rdbcompression"), "yes");
    EXPECT_EQ(Config("repl-diskless-sync-delay"), "3");
    EXPECT_EQ(testing::StorageEntries(dir_.path() / "snapshots"), std::vector<std::string>())
        << "a snapshot or a journal was left behind";
  }

  TempDir dir_{"finalsnap-cancel"};
  RedisServer server_;
  std::string digest_;
  std::unique_ptr<TcpProxy> proxy_;
};

TEST_F(CancelTest, ACancelledTokenStopsTheOperationAndPutsTheNodeBack) {
  auto parsed = LoadFleet(fleet_path());
  ASSERT_TRUE(parsed.ok());
  const Fleet fleet = *parsed;
  for (const bool destroy : {false, true}) {
    SCOPED_TRACE(destroy ? "delete-cache-cluster" : "create-snapshot");
    OperationOptions options;
    OperationResult result;
    std::thread op([&] {
      result = destroy ? DeleteCacheCluster(fleet, "c1", std::string("fin"), options)
                       : CreateSnapshot(fleet, "c1", "s1", options);
    });
    const int stalls = proxy_->stalls();
    ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalls() > stalls; }, kDeadline));
    options.cancel.Cancel("stopped by the agent");
    op.join();
    EXPECT_FALSE(result.ok);
    EXPECT_EQ(result.fault, "Interrupted");
    EXPECT_NE(result.message.find("stopped by the agent"), std::string::npos) << result.message;
    ExpectPutBack();
  }
}

class CliSignalTest : public CancelTest, public ::testing::WithParamInterface<int> {};

TEST_P(CliSignalTest, ASignalMidTransferExits130WithTheNodePutBack) {
  const int signum = GetParam();
  for (const bool destroy : {false, true}) {
    SCOPED_TRACE(destroy ? "delete-cache-cluster" : "create-snapshot");
    std::vector<std::string> argv = {FINALSNAP_CLI, "--fleet", fleet_path()};
    if (destroy) {
      argv.insert(argv.end(), {"delete-cache-cluster", "--cache-cluster-id", "c1",
                               "--final-snapshot-identifier", "fin", "--yes"});
    } else {
      argv.insert(argv.end(), {"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name",
                               "s1"});
    }
    std::atomic<int> pid{0};
    RunOptions options;
    options.env.emplace_back("FINALSNAP_FLEET", std::nullopt);
    options.on_started = [&](int p) { pid = p; };
    ProcessResult r;
    const int stalls = proxy_->stalls();
    std::thread cli([&] { r = RunCommand(argv, options); });
    const bool stalled = proxy_->WaitFor([&] { return proxy_->stalls() > stalls; }, kDeadline);
    if (stalled) ::kill(pid.load(), signum);
    cli.join();
    ASSERT_TRUE(stalled) << r.Describe();
    EXPECT_EQ(r.exit_code, 130) << r.Describe();
    EXPECT_NE(r.stderr_text.find("(Interrupted)"), std::string::npos) << r.Describe();
    EXPECT_NE(r.stderr_text.find("SIG" + std::string(sigabbrev_np(signum)) + " received"),
              std::string::npos)
        << r.Describe();
    ExpectPutBack();
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, CliSignalTest, ::testing::Values(SIGINT, SIGTERM, SIGHUP),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(sigabbrev_np(info.param));
                         });

}  // namespace
}  // namespace finalsnap
