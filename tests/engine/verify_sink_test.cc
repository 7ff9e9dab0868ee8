// Tests for VerifySink and ReadThrough (verify_sink.h): the one path from stored bytes through
// the decoder into the validator that VerifyFile, the readback gate and restore share.
//
// Every stored form (plain, and compressed by the real `zstd` and `lz4` programs) is fed whole,
// in 1-byte pieces and in random pieces; the report and the bytes the tap sees must not depend
// on the chunking.
#include "finalsnap/verify_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "finalsnap/verify.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

using finalsnap::testing::TempDir;

const std::string kFixtures = FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb";

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void RunTool(const std::vector<std::string>& argv) {
  const testing::ProcessResult r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
}

std::string Errors(const VerifySink& sink) {
  return sink.io_error() + (sink.rdb_error() ? sink.rdb_error()->ToString() : "");
}

// Feeds `stored` to a sink in pieces of `piece` bytes (0: random sizes), collecting what the tap
// sees.
struct Fed {
  bool ok = false;
  Compression compression = Compression::kNone;
  uint64_t stored_bytes = 0;
  rdb::Report report;
  std::vector<uint8_t> tapped;
  std::string errors;
};

Fed FeedInPieces(std::span<const uint8_t> stored, size_t piece) {
  Fed fed;
  VerifySink sink(Compression::kNone, {}, [&fed](std::span<const uint8_t> decoded) {
    fed.tapped.insert(fed.tapped.end(), decoded.begin(), decoded.end());
    return Status::Ok();
  });
  std::mt19937 rng(7);
  while (!stored.empty()) {
    const size_t n = std::min(stored.size(), piece != 0 ? piece : rng() % 70000 + 1);
    EXPECT_TRUE(sink.Write(stored.first(n))) << Errors(sink);
    stored = stored.subspan(n);
  }
  sink.Finish();
  fed.ok = sink.ok();
  fed.compression = sink.compression();
  fed.stored_bytes = sink.stored_bytes();
  fed.report = sink.report();
  fed.errors = Errors(sink);
  return fed;
}

class VerifySinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunTool({"zstd", "-q", "-f", source_, "-o", dir_ / "x.rdb.zst"});
    RunTool({"lz4", "-q", "-f", source_, dir_ / "x.rdb.lz4"});
  }

  const std::string source_ = kFixtures + "/redis-7.0.15-default.rdb";
  TempDir dir_;
};

TEST_F(VerifySinkTest, EveryChunkingGivesTheSameReportAndTapsTheRdb) {
  const std::vector<uint8_t> rdb = ReadBytes(source_);
  for (const auto& [path, compression] :
       {std::pair{source_, Compression::kNone}, std::pair{dir_ / "x.rdb.zst", Compression::kZstd},
        std::pair{dir_ / "x.rdb.lz4", Compression::kLz4}}) {
    const std::vector<uint8_t> stored = ReadBytes(path);
    for (const size_t piece : {stored.size(), size_t{1}, size_t{0}}) {
      SCOPED_TRACE(path + " in pieces of " + std::to_string(piece));
      const Fed fed = FeedInPieces(stored, piece);
      ASSERT_TRUE(fed.ok) << fed.errors;
      EXPECT_EQ(fed.compression, compression);  // sniffed: the sink was told kNone
      EXPECT_EQ(fed.stored_bytes, stored.size());
      EXPECT_EQ(fed.report.bytes, rdb.size());
      EXPECT_EQ(fed.report.checksum, rdb::ChecksumVerdict::kMatch);
      EXPECT_TRUE(fed.tapped == rdb) << "the tap saw " << fed.tapped.size() << " bytes";
    }
  }
}

TEST_F(VerifySinkTest, FirstErrorWinsAndSticks) {
  std::vector<uint8_t> rdb = ReadBytes(source_);
  rdb[rdb.size() / 2] ^= 0xff;  // the CRC-64 at the end no longer matches, if nothing else does
  size_t taps = 0;
  VerifySink sink(Compression::kNone, {}, [&taps](std::span<const uint8_t>) {
    ++taps;
    return Status::Ok();
  });
  EXPECT_FALSE(sink.Write(rdb));
  ASSERT_TRUE(sink.rdb_error().has_value());
  const std::string first = sink.rdb_error()->ToString();
  const size_t taps_at_error = taps;
  EXPECT_FALSE(sink.Write(rdb));  // refused: nothing more is decoded, validated or tapped
  sink.Fail("read: a later error");
  sink.Finish();
  EXPECT_EQ(sink.rdb_error()->ToString(), first);
  EXPECT_EQ(sink.io_error(), "");
  EXPECT_EQ(sink.stored_bytes(), rdb.size());
  EXPECT_EQ(taps, taps_at_error);
}

TEST_F(VerifySinkTest, TapFailureStopsTheSink) {
  const std::vector<uint8_t> stored = ReadBytes(dir_ / "x.rdb.zst");
  size_t taps = 0;
  VerifySink sink(Compression::kZstd, {}, [&taps](std::span<const uint8_t>) {
    return ++taps == 2 ? Status::Error("write: No space left on device") : Status::Ok();
  });
  EXPECT_FALSE(sink.Write(stored));
  EXPECT_EQ(sink.io_error(), "write: No space left on device");
  EXPECT_FALSE(sink.rdb_error().has_value());
  EXPECT_EQ(taps, 2u);
}

TEST_F(VerifySinkTest, TruncatedZstdFailsBothStagesAtFinish) {
  std::vector<uint8_t> stored = ReadBytes(dir_ / "x.rdb.zst");
  stored.resize(stored.size() - 10);
  VerifySink sink(Compression::kZstd);
  EXPECT_TRUE(sink.Write(stored)) << Errors(sink);
  sink.Finish();
  EXPECT_FALSE(sink.ok());
  EXPECT_EQ(sink.io_error().rfind("zstd: frame truncated", 0), 0u) << sink.io_error();
  ASSERT_TRUE(sink.rdb_error().has_value());
  EXPECT_EQ(sink.rdb_error()->code, rdb::Errc::kTruncated);
}

TEST_F(VerifySinkTest, FewerThanFourBytesKeepTheExpectedCompression) {
  const uint8_t tiny[] = {'R', 'E'};
  VerifySink zstd(Compression::kZstd);
  EXPECT_TRUE(zstd.Write(tiny));  // held: four bytes would decide
  zstd.Finish();
  EXPECT_EQ(zstd.compression(), Compression::kZstd);
  EXPECT_EQ(zstd.stored_bytes(), 2u);
  EXPECT_EQ(zstd.io_error().rfind("zstd: ", 0), 0u) << zstd.io_error();

  VerifySink none(Compression::kNone);
  EXPECT_TRUE(none.Write(tiny));
  none.Finish();
  EXPECT_EQ(none.compression(), Compression::kNone);
  ASSERT_TRUE(none.rdb_error().has_value());
  EXPECT_EQ(none.rdb_error()->code, rdb::Errc::kTruncated);

  VerifySink empty(Compression::kLz4);
  empty.Finish();
  EXPECT_EQ(empty.io_error(), "lz4: no frame: the input is empty");
}

TEST_F(VerifySinkTest, ReadThroughMatchesVerifyFile) {
  for (const std::string& path : {source_, dir_ / "x.rdb.zst", dir_ / "x.rdb.lz4"}) {
    SCOPED_TRACE(path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    VerifySink sink(Compression::kNone);
    EXPECT_EQ(ReadThrough(fd, sink), 0);
    ::close(fd);
    ASSERT_TRUE(sink.ok()) << Errors(sink);
    const FileVerification v = VerifyFile(path);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(sink.compression(), v.compression);
    EXPECT_EQ(sink.stored_bytes(), v.stored_bytes);
    EXPECT_EQ(sink.stored_bytes(), std::filesystem::file_size(path));
    EXPECT_EQ(sink.report().computed_crc, v.report.computed_crc);
    EXPECT_EQ(sink.report().databases, v.report.databases);
  }
}

TEST_F(VerifySinkTest, ReadThroughReportsAFailedRead) {
  // A descriptor opened for writing only: every read(2) fails with EBADF.
  const std::string path = dir_ / "write-only";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  VerifySink sink(Compression::kNone);
  EXPECT_EQ(ReadThrough(fd, sink), EBADF);
  ::close(fd);
  EXPECT_EQ(sink.io_error(), "read: Bad file descriptor");
  EXPECT_EQ(sink.stored_bytes(), 0u);
}

}  // namespace
}  // namespace finalsnap
