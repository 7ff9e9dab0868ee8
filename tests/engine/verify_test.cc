// Tests for the stream decoder (decoder.h) and offline verification (verify.h).
//
// Compressed inputs are made by the real `zstd` and `lz4` programs, so these tests also prove
// that we read what the standard tools write. Expected key counts come from the fixtures' JSON
// files (the servers' own INFO keyspace at save time).
#include "finalsnap/verify.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "finalsnap/decoder.h"
#include "finalsnap/rdb/crc64.h"
#include "finalsnap/rdb/format.h"
#include "finalsnap/rdb/validator.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb";

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}
using finalsnap::testing::TempDir;

void RunTool(const std::vector<std::string>& argv) {
  const testing::ProcessResult r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
}

// Compresses with the real command-line tools.
void ZstdFile(const std::string& in, const std::string& out) {
  RunTool({"zstd", "-q", "-f", in, "-o", out});
}
void Lz4File(const std::string& in, const std::string& out) {
  RunTool({"lz4", "-q", "-f", in, out});
}

// The per-database key counts a fixture JSON file gives for its server.
std::map<uint64_t, rdb::DbCounts> ExpectedKeyspace(const std::string& server) {
  std::ifstream in(kFixtures + "/" + server + ".json");
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::map<uint64_t, rdb::DbCounts> expected;
  for (const auto& [db, counts] : doc.at("keyspace").items()) {
    expected[std::stoull(db.substr(2))] = {counts.at("keys").get<uint64_t>(),
                                           counts.at("expires").get<uint64_t>()};
  }
  return expected;
}

// Decodes `in` fed in pieces of the given sizes (cycled), collecting the output.
struct Decoded {
  Status status;
  std::vector<uint8_t> bytes;
  size_t largest_chunk = 0;
};

Decoded DecodeInPieces(Compression compression, std::span<const uint8_t> in,
                       const std::vector<size_t>& piece_sizes) {
  Decoded result;
  auto decoder = StreamDecoder::Create(compression);
  const auto out = [&result](std::span<const uint8_t> chunk) {
    result.largest_chunk = std::max(result.largest_chunk, chunk.size());
    result.bytes.insert(result.bytes.end(), chunk.begin(), chunk.end());
  };
  size_t i = 0;
  while (!in.empty() && result.status.ok()) {
    const size_t n = std::min(in.size(), piece_sizes[i++ % piece_sizes.size()]);
    result.status = decoder->Decode(in.first(n), out);
    in = in.subspan(n);
  }
  if (result.status.ok()) result.status = decoder->Finish();
  return result;
}

TEST(CompressionTest, NamesRoundTrip) {
  for (Compression c : {Compression::kNone, Compression::kZstd, Compression::kLz4}) {
    EXPECT_EQ(CompressionFromName(CompressionName(c)), c);
  }
  EXPECT_EQ(CompressionName(Compression::kZstd), "zstd");
  EXPECT_EQ(CompressionName(Compression::kLz4), "lz4");
  EXPECT_EQ(CompressionName(Compression::kNone), "none");
  EXPECT_EQ(CompressionFromName("gzip"), std::nullopt);
  EXPECT_EQ(CompressionFromName("ZSTD"), std::nullopt);
}

TEST(CompressionTest, SniffsMagic) {
  const std::vector<uint8_t> zstd = {0x28, 0xb5, 0x2f, 0xfd, 0x00};
  const std::vector<uint8_t> lz4 = {0x04, 0x22, 0x4d, 0x18};
  const std::string rdb = "REDIS0011";
  EXPECT_EQ(SniffCompression(zstd), Compression::kZstd);
  EXPECT_EQ(SniffCompression(lz4), Compression::kLz4);
  EXPECT_EQ(SniffCompression(std::span(reinterpret_cast<const uint8_t*>(rdb.data()), rdb.size())),
            Compression::kNone);
  EXPECT_EQ(SniffCompression(std::span(zstd).first(3)), Compression::kNone);
  EXPECT_EQ(SniffCompression({}), Compression::kNone);
}

TEST(CompressionTest, FileNames) {
  EXPECT_EQ(CompressionFromFileName("a/0001.rdb.zst"), Compression::kZstd);
  EXPECT_EQ(CompressionFromFileName("0001.rdb.lz4"), Compression::kLz4);
  EXPECT_EQ(CompressionFromFileName("dump.rdb"), Compression::kNone);
}

// Whole, 1-byte and random pieces, as the validator's own tests do.
class DecoderTest : public ::testing::TestWithParam<Compression> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    original_ = new std::vector<uint8_t>(ReadBytes(kFixtures + "/redis-7.0.15-default.rdb"));
    ZstdFile(kFixtures + "/redis-7.0.15-default.rdb", *dir_ / "x.rdb.zst");
    Lz4File(kFixtures + "/redis-7.0.15-default.rdb", *dir_ / "x.rdb.lz4");
  }
  static void TearDownTestSuite() {
    delete original_;
    delete dir_;
  }

  std::vector<uint8_t> Compressed() const {
    switch (GetParam()) {
      case Compression::kZstd:
        return ReadBytes(*dir_ / "x.rdb.zst");
      case Compression::kLz4:
        return ReadBytes(*dir_ / "x.rdb.lz4");
      case Compression::kNone:
        break;
    }
    return *original_;
  }

  static TempDir* dir_;
  static std::vector<uint8_t>* original_;
};

TempDir* DecoderTest::dir_ = nullptr;
std::vector<uint8_t>* DecoderTest::original_ = nullptr;

TEST_P(DecoderTest, WholeInput) {
  const std::vector<uint8_t> in = Compressed();
  const Decoded d = DecodeInPieces(GetParam(), in, {in.size()});
  ASSERT_TRUE(d.status.ok()) << d.status.message();
  EXPECT_EQ(d.bytes, *original_);
  // Output comes in bounded chunks, never the whole payload at once (except plain passthrough).
  if (GetParam() != Compression::kNone) {
    EXPECT_LE(d.largest_chunk, size_t{256} << 10);
  }
}

TEST_P(DecoderTest, OneBytePieces) {
  const std::vector<uint8_t> in = Compressed();
  const Decoded d = DecodeInPieces(GetParam(), in, {1});
  ASSERT_TRUE(d.status.ok()) << d.status.message();
  EXPECT_EQ(d.bytes, *original_);
}

TEST_P(DecoderTest, RandomPieces) {
  const std::vector<uint8_t> in = Compressed();
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> size(1, 70000);
  std::vector<size_t> pieces(97);
  for (size_t& p : pieces) p = size(rng);
  const Decoded d = DecodeInPieces(GetParam(), in, pieces);
  ASSERT_TRUE(d.status.ok()) << d.status.message();
  EXPECT_EQ(d.bytes, *original_);
}

// Frames, and so truncated frames, exist only for the codecs.
using CodecTest = DecoderTest;

TEST_P(CodecTest, ConcatenatedFrames) {
  // Compress the two halves separately and join the results: `zstd -d` and `lz4 -d` read
  // this as one stream, and so must we.
  const size_t half = original_->size() / 2;
  WriteBytes(*dir_ / "h1", std::span(*original_).first(half));
  WriteBytes(*dir_ / "h2", std::span(*original_).subspan(half));
  std::vector<uint8_t> joined;
  for (const char* name : {"h1", "h2"}) {
    const std::string out = *dir_ / (std::string(name) + ".c");
    if (GetParam() == Compression::kZstd) {
      ZstdFile(*dir_ / name, out);
    } else {
      Lz4File(*dir_ / name, out);
    }
    const std::vector<uint8_t> part = ReadBytes(out);
    joined.insert(joined.end(), part.begin(), part.end());
  }
  const Decoded d = DecodeInPieces(GetParam(), joined, {4096});
  ASSERT_TRUE(d.status.ok()) << d.status.message();
  EXPECT_EQ(d.bytes, *original_);
}

TEST_P(CodecTest, TruncatedFrameFailsAtFinish) {
  const std::vector<uint8_t> in = Compressed();
  for (size_t cut : {size_t{1}, size_t{2}, in.size() / 2, in.size() - 5}) {
    const Decoded d = DecodeInPieces(GetParam(), std::span(in).first(in.size() - cut), {65536});
    ASSERT_FALSE(d.status.ok()) << "cut " << cut;
    EXPECT_EQ(d.status.message().rfind(std::string(CompressionName(GetParam())) + ": ", 0), 0u)
        << d.status.message();
    EXPECT_NE(d.status.message().find("truncated"), std::string::npos) << d.status.message();
  }
}

TEST_P(DecoderTest, EmptyInput) {
  auto decoder = StreamDecoder::Create(GetParam());
  const Status status = decoder->Finish();
  // Plain input may be empty (the validator will call it truncated); a codec needs a frame.
  EXPECT_EQ(status.ok(), GetParam() == Compression::kNone) << status.message();
}

INSTANTIATE_TEST_SUITE_P(All, DecoderTest,
                         ::testing::Values(Compression::kNone, Compression::kZstd,
                                           Compression::kLz4),
                         [](const auto& info) { return std::string(CompressionName(info.param)); });

INSTANTIATE_TEST_SUITE_P(All, CodecTest, ::testing::Values(Compression::kZstd, Compression::kLz4),
                         [](const auto& info) { return std::string(CompressionName(info.param)); });

TEST(StreamDecoderTest, PlainPassesThroughWithoutCopying) {
  const std::vector<uint8_t> in = {1, 2, 3, 4, 5};
  auto decoder = StreamDecoder::Create(Compression::kNone);
  int calls = 0;
  ASSERT_TRUE(decoder
                  ->Decode(in,
                           [&](std::span<const uint8_t> out) {
                             ++calls;
                             EXPECT_EQ(out.data(), in.data());
                             EXPECT_EQ(out.size(), in.size());
                           })
                  .ok());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(decoder->Finish().ok());
  EXPECT_EQ(decoder->bytes_in(), 5u);
  EXPECT_EQ(decoder->bytes_out(), 5u);
}

TEST(StreamDecoderTest, GarbageNamesCodecAndOffsetAndSticks) {
  const std::string garbage = "REDIS0011 this is not a zstd frame";
  const std::span bytes(reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size());
  const auto ignore = [](std::span<const uint8_t>) {};

  auto zstd = StreamDecoder::Create(Compression::kZstd);
  const Status first = zstd->Decode(bytes, ignore);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.message(), "zstd: Unknown frame descriptor at compressed offset 0");
  EXPECT_EQ(zstd->Decode(bytes, ignore).message(), first.message());
  EXPECT_EQ(zstd->Finish().message(), first.message());

  auto lz4 = StreamDecoder::Create(Compression::kLz4);
  const Status lz4_status = lz4->Decode(bytes, ignore);
  ASSERT_FALSE(lz4_status.ok());
  EXPECT_EQ(lz4_status.message().rfind("lz4: ", 0), 0u) << lz4_status.message();
  EXPECT_NE(lz4_status.message().find("compressed offset"), std::string::npos);
}

// VerifyFile over each server's default and no-checksum fixtures, plain and compressed.
class VerifyFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VerifyFixtureTest, SameReportForEveryCompression) {
  const std::string server = GetParam();
  const std::map<uint64_t, rdb::DbCounts> expected = ExpectedKeyspace(server);
  TempDir dir;
  for (const std::string variant : {"default", "nochecksum"}) {
    SCOPED_TRACE(variant);
    const std::string source = kFixtures + "/" + server + "-" + variant + ".rdb";
    const std::string plain = dir / (variant + ".rdb");
    fs::copy_file(source, plain);
    ZstdFile(source, plain + ".zst");
    Lz4File(source, plain + ".lz4");
    const uint64_t rdb_size = fs::file_size(source);

    const FileVerification reference = VerifyFile(plain);
    ASSERT_TRUE(reference.ok()) << reference.io_error
                                << (reference.rdb_error ? reference.rdb_error->ToString() : "");
    EXPECT_EQ(reference.report.databases, expected);
    EXPECT_EQ(reference.report.bytes, rdb_size);
    EXPECT_EQ(reference.report.checksum, variant == "default" ? rdb::ChecksumVerdict::kMatch
                                                              : rdb::ChecksumVerdict::kDisabled);
    if (variant == "default") {
      EXPECT_EQ(reference.report.computed_crc, reference.report.stored_crc);
    }

    for (const auto& [suffix, compression] :
         {std::pair{"", Compression::kNone}, std::pair{".zst", Compression::kZstd},
          std::pair{".lz4", Compression::kLz4}}) {
      SCOPED_TRACE(suffix);
      const FileVerification v = VerifyFile(plain + suffix);
      ASSERT_TRUE(v.ok()) << v.io_error << (v.rdb_error ? v.rdb_error->ToString() : "");
      EXPECT_EQ(v.path, plain + suffix);
      EXPECT_EQ(v.compression, compression);
      EXPECT_EQ(v.stored_bytes, fs::file_size(plain + suffix));
      EXPECT_EQ(v.report.bytes, rdb_size);
      EXPECT_EQ(v.report.databases, expected);
      EXPECT_EQ(v.report.TotalKeys(), reference.report.TotalKeys());
      EXPECT_EQ(v.report.checksum, reference.report.checksum);
      EXPECT_EQ(v.report.computed_crc, reference.report.computed_crc);
      EXPECT_EQ(v.report.stored_crc, reference.report.stored_crc);
      EXPECT_EQ(v.report.rdb_version, reference.report.rdb_version);
      EXPECT_EQ(v.report.family, reference.report.family);
      EXPECT_EQ(v.report.aux, reference.report.aux);
      EXPECT_EQ(v.report.functions, reference.report.functions);
      // Without a CRC-64, VerifyFile walks the LZF strings as well.
      EXPECT_EQ(v.deep, variant == "nochecksum");
      EXPECT_GE(v.seconds, 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, VerifyFixtureTest,
                         ::testing::Values("redis-7.0.15", "redis-unstable-2024-10",
                                           "valkey-unstable-2024-10"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

class VerifyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = kFixtures + "/redis-7.0.15-default.rdb";
    ZstdFile(source_, dir_ / "x.rdb.zst");
    Lz4File(source_, dir_ / "x.rdb.lz4");
  }

  std::string source_;
  TempDir dir_;
};

TEST_F(VerifyFileTest, TruncatedCompressedFilesFail) {
  for (const std::string name : {"x.rdb.zst", "x.rdb.lz4"}) {
    const std::vector<uint8_t> whole = ReadBytes(dir_ / name);
    // Half the file loses RDB bytes; two bytes lose only the frame's end (the lz4 end mark or
    // the zstd checksum), so the RDB inside can be complete while the file is not.
    for (size_t keep : {whole.size() / 2, whole.size() - 2}) {
      SCOPED_TRACE(name + " keeping " + std::to_string(keep));
      const std::string path = dir_ / ("cut-" + name);
      WriteBytes(path, std::span(whole).first(keep));
      const FileVerification v = VerifyFile(path);
      EXPECT_FALSE(v.ok());
      EXPECT_FALSE(v.path_error);
      EXPECT_TRUE(!v.io_error.empty() ||
                  (v.rdb_error && v.rdb_error->code == rdb::Errc::kTruncated));
      EXPECT_NE(v.io_error.find("frame truncated"), std::string::npos) << v.io_error;
      EXPECT_EQ(v.stored_bytes, keep);
    }
  }
}

TEST_F(VerifyFileTest, TruncatedPlainFileIsAnRdbError) {
  const std::vector<uint8_t> whole = ReadBytes(source_);
  WriteBytes(dir_ / "cut.rdb", std::span(whole).first(whole.size() / 3));
  const FileVerification v = VerifyFile(dir_ / "cut.rdb");
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(v.io_error.empty()) << v.io_error;
  ASSERT_TRUE(v.rdb_error.has_value());
  EXPECT_EQ(v.rdb_error->code, rdb::Errc::kTruncated);
  EXPECT_EQ(v.rdb_error->offset, whole.size() / 3);
}

TEST_F(VerifyFileTest, CorruptCompressedDataFails) {
  for (const std::string name : {"x.rdb.zst", "x.rdb.lz4"}) {
    SCOPED_TRACE(name);
    std::vector<uint8_t> bytes = ReadBytes(dir_ / name);
    for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
    WriteBytes(dir_ / ("bad-" + name), bytes);
    const FileVerification v = VerifyFile(dir_ / ("bad-" + name));
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(!v.io_error.empty() || v.rdb_error.has_value());
  }
}

TEST_F(VerifyFileTest, WrongExtensionIsSniffed) {
  fs::copy_file(dir_ / "x.rdb.zst", dir_ / "zstd-named.rdb");
  fs::copy_file(dir_ / "x.rdb.lz4", dir_ / "lz4-named.rdb.zst");
  fs::copy_file(source_, dir_ / "plain-named.rdb.lz4");
  for (const auto& [name, compression] : {std::pair{"zstd-named.rdb", Compression::kZstd},
                                          std::pair{"lz4-named.rdb.zst", Compression::kLz4},
                                          std::pair{"plain-named.rdb.lz4", Compression::kNone}}) {
    SCOPED_TRACE(name);
    const FileVerification v = VerifyFile(dir_ / name);
    EXPECT_TRUE(v.ok()) << v.io_error << (v.rdb_error ? v.rdb_error->ToString() : "");
    EXPECT_EQ(v.compression, compression);
    EXPECT_EQ(v.report.TotalKeys(), 1521u);
  }
}

TEST_F(VerifyFileTest, EmptyFiles) {
  for (const std::string name : {"empty.rdb", "empty.rdb.zst", "empty.rdb.lz4"}) {
    SCOPED_TRACE(name);
    WriteBytes(dir_ / name, {});
    const FileVerification v = VerifyFile(dir_ / name);
    EXPECT_FALSE(v.ok());
    EXPECT_FALSE(v.path_error);
    ASSERT_TRUE(v.rdb_error.has_value());
    EXPECT_EQ(v.rdb_error->code, rdb::Errc::kTruncated);
  }
}

TEST_F(VerifyFileTest, WithoutChecksumLzfStringsAreWalked) {
  // An LZF string whose header is sound but whose first back-reference points before the start
  // of the output. Only the CRC-64 would catch that cheaply, and the trailer here is zero
  // (`rdbchecksum no`), so VerifyFile must walk the LZF stream.
  std::vector<uint8_t> rdb = {'R', 'E', 'D', 'I', 'S', '0', '0', '1', '0'};
  const std::vector<uint8_t> records = {
      rdb::opcode::kSelectDb, 0, rdb::type::kString, 1, 'k', 0xC3, 4, 30, 0x00, 'a', 0xE0, 0x05,
      rdb::opcode::kEof};
  rdb.insert(rdb.end(), records.begin(), records.end());
  rdb.resize(rdb.size() + 8, 0);
  WriteBytes(dir_ / "badlzf.rdb", rdb);
  ZstdFile(dir_ / "badlzf.rdb", dir_ / "badlzf.rdb.zst");

  // The fast pass alone accepts the file: this is what the second pass is for.
  rdb::Validator fast;
  fast.Feed(rdb);
  ASSERT_EQ(fast.Finish(), rdb::Progress::kDone);

  for (const std::string name : {"badlzf.rdb", "badlzf.rdb.zst"}) {
    SCOPED_TRACE(name);
    const FileVerification v = VerifyFile(dir_ / name);
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(v.deep);
    ASSERT_TRUE(v.rdb_error.has_value());
    EXPECT_EQ(v.rdb_error->code, rdb::Errc::kCorrupt);
    EXPECT_EQ(v.rdb_error->offset, 14u);
    EXPECT_EQ(v.report.checksum, rdb::ChecksumVerdict::kPending);
  }
}

TEST_F(VerifyFileTest, DirectoryAsFileIsAPathError) {
  const FileVerification v = VerifyFile(dir_.path());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(v.path_error);
}

TEST_F(VerifyFileTest, MissingFile) {
  const FileVerification v = VerifyFile(dir_ / "nope.rdb");
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(v.path_error);
  EXPECT_EQ(v.io_error, "No such file or directory");
}

// Peak resident memory of this process, in bytes (VmHWM), or 0 if /proc is unavailable.
uint64_t PeakRss() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Writes a valid RDB of `values` strings of `value_size` bytes each, a chunk at a time.
void WriteLargeRdb(const std::string& path, int values, size_t value_size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  uint64_t crc = 0;
  const auto put = [&](std::span<const uint8_t> bytes) {
    crc = rdb::Crc64(crc, bytes);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  };
  const std::string magic = "REDIS0010";
  put(std::span(reinterpret_cast<const uint8_t*>(magic.data()), magic.size()));
  put(std::vector<uint8_t>{rdb::opcode::kSelectDb, 0});
  std::vector<uint8_t> chunk(size_t{1} << 20);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<uint8_t>("finalsnap"[i % 9]);
  for (int v = 0; v < values; ++v) {
    const std::string key = "big:" + std::to_string(v);
    std::vector<uint8_t> header;
    header.push_back(rdb::type::kString);
    header.push_back(static_cast<uint8_t>(key.size()));
    for (const char c : key) header.push_back(static_cast<uint8_t>(c));
    // A 32-bit length: 0x80 and four bytes, big-endian.
    header.push_back(0x80);
    for (int shift = 24; shift >= 0; shift -= 8) {
      header.push_back(static_cast<uint8_t>(value_size >> shift));
    }
    put(header);
    for (size_t left = value_size; left > 0;) {
      const size_t n = std::min(left, chunk.size());
      put(std::span(chunk).first(n));
      left -= n;
    }
  }
  put(std::vector<uint8_t>{rdb::opcode::kEof});
  std::vector<uint8_t> trailer(8);
  for (int i = 0; i < 8; ++i) trailer[i] = static_cast<uint8_t>(crc >> (8 * i));
  out.write(reinterpret_cast<const char*>(trailer.data()), 8);
  ASSERT_TRUE(out.good());
}

// The point of streaming: verifying a file much larger than the memory it may use.
TEST(VerifyLargeFileTest, MemoryStaysFlat) {
  TempDir dir;
  constexpr int kValues = 32;
  constexpr size_t kValueSize = size_t{4} << 20;  // 128 MiB of RDB in all
  ASSERT_NO_FATAL_FAILURE(WriteLargeRdb(dir / "big.rdb", kValues, kValueSize));
  RunTool({"zstd", "-q", "-1", "-f", dir / "big.rdb", "-o", dir / "big.rdb.zst"});
  RunTool({"lz4", "-q", "-f", dir / "big.rdb", dir / "big.rdb.lz4"});

  for (const std::string name : {"big.rdb", "big.rdb.zst", "big.rdb.lz4"}) {
    SCOPED_TRACE(name);
    // Reset the high-water mark where the kernel allows it; otherwise it can only be higher than
    // this test's own peak, so the check below may pass vacuously but never fail wrongly.
    std::ofstream("/proc/self/clear_refs") << "5";
    const uint64_t before = PeakRss();
    const FileVerification v = VerifyFile(dir / name);
    const uint64_t after = PeakRss();
    ASSERT_TRUE(v.ok()) << v.io_error << (v.rdb_error ? v.rdb_error->ToString() : "");
    EXPECT_EQ(v.report.databases.at(0).keys, static_cast<uint64_t>(kValues));
    EXPECT_GT(v.report.bytes, kValues * kValueSize);
    EXPECT_LT(after - before, uint64_t{32} << 20)
        << "peak RSS grew from " << before << " to " << after;
  }
}

TEST(VerifyPathTest, DirectoryVerifiesEveryRdbFileInNameOrder) {
  TempDir dir;
  const std::string source = kFixtures + "/redis-7.0.15-default.rdb";
  fs::copy_file(source, dir / "c.rdb");
  ZstdFile(source, dir / "a.rdb.zst");
  Lz4File(source, dir / "b.rdb.lz4");
  // None of these is an RDB file of the snapshot.
  WriteBytes(dir / "notes.txt", {});
  WriteBytes(dir / "d.rdb.zst.tmp", {});
  fs::create_directory(dir / "e.rdb");

  const std::vector<FileVerification> results = VerifyPath(dir.path());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].path, dir / "a.rdb.zst");
  EXPECT_EQ(results[1].path, dir / "b.rdb.lz4");
  EXPECT_EQ(results[2].path, dir / "c.rdb");
  for (const FileVerification& v : results) {
    EXPECT_TRUE(v.ok()) << v.path;
    EXPECT_EQ(v.report.databases, ExpectedKeyspace("redis-7.0.15"));
  }
}

TEST(VerifyPathTest, DirectoryWithOneBadFile) {
  TempDir dir;
  const std::string source = kFixtures + "/redis-7.0.15-default.rdb";
  fs::copy_file(source, dir / "0001.rdb");
  const std::vector<uint8_t> whole = ReadBytes(source);
  WriteBytes(dir / "0002.rdb", std::span(whole).first(1000));

  const std::vector<FileVerification> results = VerifyPath(dir.path());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_FALSE(results[1].ok());
  ASSERT_TRUE(results[1].rdb_error.has_value());
  EXPECT_EQ(results[1].rdb_error->code, rdb::Errc::kTruncated);
}

TEST(VerifyPathTest, SingleFile) {
  const std::string source = kFixtures + "/valkey-unstable-2024-10-default.rdb";
  const std::vector<FileVerification> results = VerifyPath(source);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok());
  // Valkey 8 still writes the REDIS magic (RDB 11); the family follows the magic, the server
  // shows in the AUX fields.
  EXPECT_EQ(results[0].report.rdb_version, 11);
  EXPECT_EQ(results[0].report.Aux("valkey-ver"), "255.255.255");
}

TEST(VerifyPathTest, MissingPath) {
  const std::vector<FileVerification> results = VerifyPath("/nonexistent/finalsnap/x.rdb");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_TRUE(results[0].path_error);
  EXPECT_EQ(results[0].path, "/nonexistent/finalsnap/x.rdb");
  EXPECT_FALSE(results[0].io_error.empty());
}

TEST(VerifyPathTest, DirectoryWithoutRdbFiles) {
  TempDir dir;
  WriteBytes(dir / "README", {});
  const std::vector<FileVerification> results = VerifyPath(dir.path());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_TRUE(results[0].path_error);
  EXPECT_NE(results[0].io_error.find("no RDB files"), std::string::npos) << results[0].io_error;
}

}  // namespace
}  // namespace finalsnap
