// The capture pipeline with its file read back while it is written (pipeline.h, StreamingReadback
// and CheckReadback in storage.h): real files in a temporary directory, real zstd/lz4 CLIs.
#include "pipeline.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "async.h"
#include "finalsnap/storage.h"
#include "loop.h"
#include "support/process.h"
#include "support/rdb_builder.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

using detail::BufferPool;
using detail::Loop;
using detail::Pipeline;
using detail::PipelineResult;
using detail::Task;
using testing::RdbBuilder;
using testing::RunCommand;
using testing::TempDir;

// About 6 MB of RDB that compresses roughly 2:1, in three databases with expires: large enough
// for many 64 KiB stretches whatever the codec.
const std::vector<uint8_t>& TestRdb() {
  static const std::vector<uint8_t> rdb = [] {
    RdbBuilder b("REDIS", 10);
    b.Aux("redis-ver", "7.0.15");
    std::mt19937 rng(42);
    std::string value;
    for (uint64_t db : {0, 3, 9}) {
      b.SelectDb(db).ResizeDb(6000, 100);
      for (int i = 0; i < 6000; ++i) {
        value.clear();
        while (value.size() < 320) {
          value += "field" + std::to_string(rng() % 1000) + "=";
          for (int k = 0; k < 8; ++k) value += static_cast<char>('a' + rng() % 26);
        }
        if (i < 100) b.ExpireMs(4102444800000ULL + static_cast<uint64_t>(i));
        b.Key(0, "key:" + std::to_string(db) + ":" + std::to_string(i)).String(value);
      }
    }
    return b.Finish();
  }();
  return rdb;
}

std::string Extension(Compression c) {
  return c == Compression::kZstd ? ".rdb.zst" : c == Compression::kLz4 ? ".rdb.lz4" : ".rdb";
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Task<PipelineResult> FinishTask(Pipeline& p) { co_return co_await p.Finish(); }

// Read the file back while it is written, as the operation does: a StreamingReadback of `path`
// as the pipeline's WriteFollower.
struct ReadbackSettings {
  std::filesystem::path path;
  StreamingReadback::Options options = {};
};

// What the pipeline gave, and what the readback found (none without ReadbackSettings, or when
// the pipeline was aborted; a report with an io_error when the readback could not start).
struct Pushed : PipelineResult {
  std::optional<ReadbackReport> readback;
};

// Pushes `rdb` through a pipeline writing `path`, as the replication capture does: pooled
// buffers, the loop run whenever the pool is empty. Stops after `stop_after` bytes and aborts
// when that is less than the whole RDB.
Pushed Push(const std::string& path, Compression codec, std::optional<ReadbackSettings> readback,
            const std::vector<uint8_t>& rdb, size_t stop_after = SIZE_MAX) {
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0) << path;
  Loop loop;
  BufferPool pool(16, 64 * 1024);
  Pushed result;
  std::unique_ptr<StreamingReadback> follower;
  if (readback) {
    Expected<std::unique_ptr<StreamingReadback>> started =
        StreamingReadback::Start(readback->path, codec, readback->options);
    if (!started.ok()) {
      result.readback.emplace();
      result.readback->io_error = started.error().message();
    } else {
      follower = *std::move(started);
    }
  }
  {
    Pipeline pipeline(loop, pool, {codec, codec == Compression::kNone ? 0 : 1}, fd,
                      follower.get());
    size_t pos = 0;
    const size_t end = std::min(stop_after, rdb.size());
    while (pos < end) {
      int id = pool.Acquire();
      while (id < 0) {
        uv_run(loop.get(), UV_RUN_ONCE);
        id = pool.Acquire();
      }
      const size_t n = std::min(pool.size(), end - pos);
      std::memcpy(pool.data(id), rdb.data() + pos, n);
      EXPECT_TRUE(pipeline.Push(id, {pool.data(id), n}));
      pool.Unref(id);
      pos += n;
    }
    if (end < rdb.size()) {
      pipeline.Abort();
    } else {
      static_cast<PipelineResult&>(result) = detail::RunToCompletion(loop, FinishTask(pipeline));
      if (follower) result.readback = follower->Wait();
    }
  }
  ::close(fd);
  return result;
}

// A committed-looking manifest for one file, from what the stream showed.
Snapshot ManifestFor(const std::string& file, Compression codec, const PipelineResult& r,
                     uint64_t stored_bytes) {
  Snapshot s;
  s.snapshot_name = "readback-test";
  s.snapshot_status = "available";
  NodeSnapshot n;
  n.node_group_id = "0001";
  n.file = file;
  n.compression = codec;
  n.stored_bytes = stored_bytes;
  n.rdb_bytes = r.report.bytes;
  n.rdb_version = r.report.rdb_version;
  n.crc64 = r.report.computed_crc;
  n.keyspace = r.report.databases;
  s.node_snapshots.push_back(n);
  return s;
}

struct Case {
  Compression codec;
  bool direct;
};

class PipelineReadbackTest : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineReadbackTest, ReadsBackWhileWritingAndTheCliDecodesTheExactRdb) {
  const Case c = GetParam();
  TempDir dir;
  const std::string file = "0001" + Extension(c.codec);
  const std::string path = dir / file;
  const std::vector<uint8_t>& rdb = TestRdb();
  ReadbackSettings rb{path, {}};
  rb.options.stretch_bytes = 64 * 1024;
  rb.options.direct = c.direct;
  std::atomic<int> stretches_seen{0};
  rb.options.before_read = [&](uint64_t, uint64_t) { ++stretches_seen; };

  const Pushed r = Push(path, c.codec, rb, rdb);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_TRUE(r.rdb_complete);
  ASSERT_TRUE(r.readback.has_value());
  const ReadbackReport& back = *r.readback;
  ASSERT_TRUE(back.ok()) << back.io_error << (back.rdb_error ? back.rdb_error->ToString() : "");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(back.stored_bytes, static_cast<uint64_t>(st.st_size));
  EXPECT_EQ(back.stored_bytes, r.stored_bytes);
  EXPECT_EQ(back.compression, c.codec);
  EXPECT_EQ(back.direct, c.direct);
  EXPECT_TRUE(back.cache_dropped);
  EXPECT_FALSE(back.deep);
  EXPECT_GT(back.stretches, 4u) << "the file was read back in pieces while it was written";
  EXPECT_EQ(stretches_seen.load(), static_cast<int>(back.stretches));
  EXPECT_LE(back.tail_bytes, back.stored_bytes);
  EXPECT_EQ(back.report.bytes, rdb.size());
  EXPECT_EQ(back.report.computed_crc, r.report.computed_crc);
  EXPECT_EQ(back.report.checksum, rdb::ChecksumVerdict::kMatch);
  EXPECT_EQ(back.report.databases, r.report.databases);
  EXPECT_EQ(back.report.TotalKeys(), 18000u);

  std::string evidence;
  const Snapshot manifest = ManifestFor(file, c.codec, r, static_cast<uint64_t>(st.st_size));
  const Status gate = CheckReadback({&back, 1}, manifest, &evidence);
  ASSERT_TRUE(gate.ok()) << gate.message();
  EXPECT_NE(evidence.find("read back " + file + " while it was written"), std::string::npos)
      << evidence;
  EXPECT_NE(evidence.find(c.direct ? "O_DIRECT" : "page cache dropped"), std::string::npos)
      << evidence;

  // The stored file is what the standard tools expect: they give back the exact RDB.
  std::vector<uint8_t> decoded;
  if (c.codec == Compression::kNone) {
    decoded = ReadFile(path);
  } else {
    const std::string out = dir / "decoded.rdb";
    const auto p = c.codec == Compression::kZstd
                       ? RunCommand({"zstd", "-d", "-q", "-f", path, "-o", out})
                       : RunCommand({"lz4", "-d", "-q", "-f", path, out});
    ASSERT_EQ(p.exit_code, 0) << p.Describe();
    decoded = ReadFile(out);
  }
  EXPECT_TRUE(decoded == rdb) << "decoded " << decoded.size() << " bytes, want " << rdb.size();
}

INSTANTIATE_TEST_SUITE_P(
    Pipeline, PipelineReadbackTest,
    ::testing::Values(Case{Compression::kZstd, true}, Case{Compression::kLz4, true},
                      Case{Compression::kNone, true}, Case{Compression::kZstd, false},
                      Case{Compression::kNone, false}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(CompressionName(info.param.codec)) +
             (info.param.direct ? "Direct" : "PageCache");
    });

// Changes the stored bytes under the readback, after a stretch was synced and before it is read:
// what a bad sector, a bad write or a bug in the write path would look like.
class PipelineCorruptionTest : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineCorruptionTest, ACorruptedStoredStretchFailsTheReadback) {
  const Case c = GetParam();
  TempDir dir;
  const std::string file = "0001" + Extension(c.codec);
  const std::string path = dir / file;
  ReadbackSettings rb{path, {}};
  rb.options.stretch_bytes = 64 * 1024;
  rb.options.direct = c.direct;
  int stretch = 0;
  uint64_t flipped_at = 0;
  rb.options.before_read = [&](uint64_t offset, uint64_t length) {
    if (++stretch != 3 || length < 200) return;
    const int w = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(w, 0);
    uint8_t byte = 0;
    const int r = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    flipped_at = offset + 150;
    ASSERT_EQ(::pread(r, &byte, 1, static_cast<off_t>(flipped_at)), 1);
    byte ^= 0x10;
    ASSERT_EQ(::pwrite(w, &byte, 1, static_cast<off_t>(flipped_at)), 1);
    ::close(r);
    ::close(w);
  };
  const Pushed r = Push(path, c.codec, rb, TestRdb());
  // The stream itself was fine: only what is stored is wrong.
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_GT(flipped_at, 0u);
  ASSERT_TRUE(r.readback.has_value());
  EXPECT_FALSE(r.readback->ok()) << "a flipped byte at " << flipped_at << " went unnoticed";

  std::string evidence;
  const Snapshot manifest = ManifestFor(file, c.codec, r, r.stored_bytes);
  const Status gate = CheckReadback({&*r.readback, 1}, manifest, &evidence);
  ASSERT_FALSE(gate.ok());
  EXPECT_EQ(gate.message().rfind("readback: " + file + ": ", 0), 0u) << gate.message();
}

INSTANTIATE_TEST_SUITE_P(
    Pipeline, PipelineCorruptionTest,
    ::testing::Values(Case{Compression::kZstd, true}, Case{Compression::kLz4, true},
                      Case{Compression::kNone, true}, Case{Compression::kZstd, false}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(CompressionName(info.param.codec)) +
             (info.param.direct ? "Direct" : "PageCache");
    });

TEST(PipelineReadbackEdgeTest, AFileCutShortUnderTheReadbackFails) {
  TempDir dir;
  const std::string path = dir / "0001.rdb.zst";
  ReadbackSettings rb{path, {}};
  rb.options.stretch_bytes = 64 * 1024;
  int stretch = 0;
  rb.options.before_read = [&](uint64_t offset, uint64_t) {
    if (++stretch == 2) {
      ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(offset + 10)), 0);
    }
  };
  const Pushed r = Push(path, Compression::kZstd, rb, TestRdb());
  ASSERT_TRUE(r.readback.has_value());
  // The writer goes on writing at its own offset, so what follows the cut reads as a hole of
  // zeros or as the end of the file, depending on timing: either way it must not read back.
  EXPECT_FALSE(r.readback->ok()) << "a file cut short went unnoticed";
}

TEST(PipelineReadbackEdgeTest, AReadbackThatCannotStartIsReportedNotFatal) {
  TempDir dir;
  const std::string path = dir / "0001.rdb.zst";
  ReadbackSettings rb{dir.path() / "missing" / "0001.rdb.zst", {}};
  const Pushed r = Push(path, Compression::kZstd, rb, TestRdb());
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_TRUE(r.readback.has_value());
  EXPECT_NE(r.readback->io_error.find("open"), std::string::npos) << r.readback->io_error;
}

TEST(PipelineReadbackEdgeTest, AbortStopsTheReadbackThread) {
  TempDir dir;
  const std::string path = dir / "0001.rdb.zst";
  ReadbackSettings rb{path, {}};
  rb.options.stretch_bytes = 64 * 1024;
  // Half the RDB, then Abort: must return (no thread left waiting for a Close that never comes).
  const Pushed r = Push(path, Compression::kZstd, rb, TestRdb(), TestRdb().size() / 2);
  EXPECT_FALSE(r.readback.has_value());
}

TEST(PipelineReadbackEdgeTest, WithoutReadbackSettingsThereIsNoReport) {
  TempDir dir;
  const Pushed r = Push(dir / "0001.rdb.zst", Compression::kZstd, std::nullopt, TestRdb());
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.readback.has_value());
}

TEST(StreamingReadbackTest, WaitsForCloseAndReadsTheLastPartialBlock) {
  // Written() in odd-sized steps, then Close(): the last stretch ends mid-block.
  TempDir dir;
  const std::string path = dir / "plain.rdb";
  const std::vector<uint8_t>& rdb = TestRdb();
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  StreamingReadback::Options options;
  options.stretch_bytes = 10000;  // rounded to whole blocks by the readback
  auto started = StreamingReadback::Start(path, Compression::kNone, options);
  ASSERT_TRUE(started.ok()) << started.error().message();
  std::unique_ptr<StreamingReadback>& rb = *started;
  size_t pos = 0;
  while (pos < rdb.size()) {
    const size_t n = std::min<size_t>(12345, rdb.size() - pos);
    ASSERT_EQ(::write(fd, rdb.data() + pos, n), static_cast<ssize_t>(n));
    pos += n;
    rb->Written(pos);
  }
  EXPECT_FALSE(rb->done());
  rb->Close(pos);
  const ReadbackReport r = rb->Wait();
  ::close(fd);
  ASSERT_TRUE(r.ok()) << r.io_error << (r.rdb_error ? r.rdb_error->ToString() : "");
  EXPECT_EQ(r.stored_bytes, rdb.size());
  EXPECT_EQ(r.report.bytes, rdb.size());
  EXPECT_NE(rdb.size() % 4096, 0u);
  EXPECT_GT(r.stretches, 100u);
}

TEST(StreamingReadbackTest, AnRdbWithoutChecksumGetsADeepPass) {
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0).Key(0, "a").String("1").Key(0, "b").LzfString(std::string(300, 'x'));
  const std::vector<uint8_t> rdb = b.Finish(testing::Trailer::kZeroCrc);
  TempDir dir;
  const std::string path = dir / "0001.rdb.zst";
  const Pushed r = Push(path, Compression::kZstd, ReadbackSettings{path, {}}, rdb);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_TRUE(r.readback.has_value());
  EXPECT_TRUE(r.readback->ok()) << r.readback->io_error;
  EXPECT_TRUE(r.readback->deep);
  EXPECT_EQ(r.readback->report.checksum, rdb::ChecksumVerdict::kDisabled);
  EXPECT_EQ(r.readback->report.TotalKeys(), 2u);
}

TEST(CheckReadbackTest, EveryDisagreementWithTheManifestIsNamed) {
  ReadbackReport back;
  back.path = "/snapshots/.partial-x/0001.rdb.zst";
  back.compression = Compression::kZstd;
  back.stored_bytes = 1000;
  back.report.bytes = 5000;
  back.report.rdb_version = 10;
  back.report.computed_crc = 0x1234;
  back.report.databases[0] = {7, 1};
  back.direct = true;
  back.stretches = 3;
  Snapshot manifest;
  manifest.snapshot_name = "x";
  NodeSnapshot n;
  n.file = "0001.rdb.zst";
  n.compression = Compression::kZstd;
  n.stored_bytes = 1000;
  n.rdb_bytes = 5000;
  n.rdb_version = 10;
  n.crc64 = 0x1234;
  n.keyspace[0] = {7, 1};
  manifest.node_snapshots.push_back(n);
  std::string evidence;
  ASSERT_TRUE(CheckReadback({&back, 1}, manifest, &evidence).ok());

  const auto fails_with = [&](const Snapshot& m, const std::string& want) {
    const Status s = CheckReadback({&back, 1}, m, nullptr);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  Snapshot m = manifest;
  m.node_snapshots[0].stored_bytes = 999;
  fails_with(m, "holds 1000 bytes, the manifest says 999");
  m = manifest;
  m.node_snapshots[0].crc64 = 0x4321;
  fails_with(m, "CRC-64 0000000000001234 does not match");
  m = manifest;
  m.node_snapshots[0].keyspace[0] = {8, 1};
  fails_with(m, "0001.rdb.zst");
  m = manifest;
  m.node_snapshots[0].compression = Compression::kLz4;
  fails_with(m, "is zstd, the manifest says lz4");
  m = manifest;
  m.node_snapshots.push_back(n);
  m.node_snapshots[1].file = "0002.rdb.zst";
  fails_with(m, "0002.rdb.zst: was not read back");
  ReadbackReport bad = back;
  bad.io_error = "zstd: corrupted block";
  const Status s = CheckReadback({&bad, 1}, manifest, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "readback: 0001.rdb.zst: zstd: corrupted block");
}

}  // namespace
}  // namespace finalsnap
