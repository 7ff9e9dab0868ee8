// ReplicationCapture against a real redis-server: Prepare() runs the handshake without forking,
// Run() then only sends PSYNC; Run() alone still does everything.
#include "repl_stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "async.h"
#include "loop.h"
#include "pipeline.h"
#include "support/redis_server.h"

namespace finalsnap {
namespace {

using detail::BufferPool;
using detail::CaptureOptions;
using detail::CaptureResult;
using detail::Loop;
using detail::Pipeline;
using detail::PipelineResult;
using detail::ReplicationCapture;
using detail::Task;
using testing::RedisServer;

struct Outcome {
  CaptureResult prepared;
  bool forks_unchanged_after_prepare = false;
  CaptureResult run;
  PipelineResult pipeline;
  int forked_calls = 0;
};

uint64_t Forks(RedisServer& server) { return std::stoull(server.Info("stats").at("total_forks")); }

Task<Outcome> Capture(Loop& loop, RedisServer& server, CaptureOptions options, bool prepare) {
  Outcome out;
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  BufferPool pool(16, 64 * 1024);
  Pipeline pipeline(loop, pool, {Compression::kNone, 0}, devnull);
  ReplicationCapture capture(loop, pool, pipeline, options);
  capture.OnForked([&out] { ++out.forked_calls; });
  const uint64_t forks_before = Forks(server);
  if (prepare) {
    out.prepared = co_await capture.Prepare();
    // The handshake alone forks nothing: the server is still idle, waiting for PSYNC.
    out.forks_unchanged_after_prepare = Forks(server) == forks_before && out.forked_calls == 0;
  }
  out.run = co_await capture.Run();
  if (out.run.status.ok()) {
    out.pipeline = co_await pipeline.Finish();
  } else {
    pipeline.Abort();
  }
  ::close(devnull);
  co_return out;
}

RedisServer& Loaded(RedisServer& server) {
  server.Start();
  EXPECT_TRUE(server.Command("DEBUG", "POPULATE", 5000, "key", 100).ok());
  EXPECT_TRUE(server.Command("SELECT", 2).ok());
  EXPECT_TRUE(server.Command("DEBUG", "POPULATE", 700, "other", 10).ok());
  EXPECT_TRUE(server.Command("SELECT", 0).ok());
  return server;
}

CaptureOptions OptionsFor(const RedisServer& server) {
  CaptureOptions o;
  o.address = {server.host(), static_cast<uint16_t>(server.port())};
  return o;
}

TEST(ReplCaptureTest, PrepareThenRunCapturesTheWholeRdb) {
  for (const char* diskless : {"yes", "no"}) {
    SCOPED_TRACE(std::string("repl-diskless-sync ") + diskless);
    RedisServer server({{"repl-diskless-sync", diskless}, {"repl-diskless-sync-delay", "0"}});
    Loaded(server);
    const auto keyspace = server.Keyspace();
    Loop loop;
    const Outcome out = detail::RunToCompletion(loop, Capture(loop, server, OptionsFor(server), true));
    ASSERT_TRUE(out.prepared.status.ok()) << out.prepared.status.message();
    EXPECT_GT(out.prepared.seconds_handshake, 0);
    EXPECT_TRUE(out.forks_unchanged_after_prepare);
    ASSERT_TRUE(out.run.status.ok()) << out.run.step << ": " << out.run.status.message();
    EXPECT_EQ(out.forked_calls, 1);
    EXPECT_EQ(out.run.framing, std::string(diskless) == "yes" ? "eof-mark" : "length");
    EXPECT_FALSE(out.run.replid.empty());
    ASSERT_TRUE(out.pipeline.status.ok()) << out.pipeline.status.message();
    EXPECT_TRUE(out.pipeline.rdb_complete);
    EXPECT_EQ(out.pipeline.report.checksum, rdb::ChecksumVerdict::kMatch);
    EXPECT_EQ(out.pipeline.report.databases, keyspace);
    EXPECT_EQ(out.run.payload_bytes, out.pipeline.payload_bytes);
  }
}

TEST(ReplCaptureTest, RunAloneStillConnectsHandshakesAndSyncs) {
  RedisServer server({{"repl-diskless-sync", "yes"}, {"repl-diskless-sync-delay", "0"}});
  Loaded(server);
  const auto keyspace = server.Keyspace();
  Loop loop;
  const Outcome out = detail::RunToCompletion(loop, Capture(loop, server, OptionsFor(server), false));
  ASSERT_TRUE(out.run.status.ok()) << out.run.step << ": " << out.run.status.message();
  EXPECT_GT(out.run.seconds_handshake, 0);
  EXPECT_EQ(out.forked_calls, 1);
  EXPECT_TRUE(out.pipeline.rdb_complete);
  EXPECT_EQ(out.pipeline.report.databases, keyspace);
}

TEST(ReplCaptureTest, AFailedPrepareIsWhatRunReturnsAndNothingForks) {
  RedisServer server({{"requirepass", "right-password"}});
  server.Start();
  const uint64_t forks = Forks(server);
  CaptureOptions options = OptionsFor(server);
  options.auth.password = "wrong-password";
  Loop loop;
  const Outcome out = detail::RunToCompletion(loop, Capture(loop, server, options, true));
  ASSERT_FALSE(out.prepared.status.ok());
  EXPECT_EQ(out.prepared.step, "handshake");
  EXPECT_NE(out.prepared.status.message().find("AUTH refused"), std::string::npos)
      << out.prepared.status.message();
  EXPECT_EQ(out.prepared.status.message().find("wrong-password"), std::string::npos)
      << "the password must never appear: " << out.prepared.status.message();
  ASSERT_FALSE(out.run.status.ok());
  EXPECT_EQ(out.run.step, "handshake");
  EXPECT_EQ(out.run.status.message(), out.prepared.status.message());
  EXPECT_EQ(out.forked_calls, 0);
  EXPECT_EQ(Forks(server), forks);
}

TEST(ReplCaptureTest, APreparedConnectionTheServerDropsFailsRun) {
  RedisServer server({{"repl-diskless-sync", "yes"}, {"repl-diskless-sync-delay", "0"}});
  Loaded(server);
  Loop loop;
  const auto task = [&]() -> Task<Outcome> {
    Outcome out;
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    BufferPool pool(16, 64 * 1024);
    Pipeline pipeline(loop, pool, {Compression::kNone, 0}, devnull);
    ReplicationCapture capture(loop, pool, pipeline, OptionsFor(server));
    out.prepared = co_await capture.Prepare();
    // The prepared connection is killed while it waits for Run().
    server.Command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    co_await detail::Sleep(loop, std::chrono::milliseconds(100));
    out.run = co_await capture.Run();
    pipeline.Abort();
    ::close(devnull);
    co_return out;
  };
  const Outcome out = detail::RunToCompletion(loop, task());
  ASSERT_TRUE(out.prepared.status.ok()) << out.prepared.status.message();
  ASSERT_FALSE(out.run.status.ok());
  EXPECT_NE(out.run.status.message().find("closed the connection"), std::string::npos)
      << out.run.status.message();
}

}  // namespace
}  // namespace finalsnap
