// Deep mode against the reference: single-byte corruptions of a checksum-less RDB (where no
// CRC-64 vouches for the bytes, so VerifyFile re-reads the file with Options::deep) must get the
// same verdict from finalsnap::VerifyFile as from the real redis-check-rdb, which loads with
// sanitize-dump-payload yes and so runs Redis's deep integrity checks.
//
// The flips are at seeded random offsets, so every run tests the same 150 files; a file on which
// the two disagree is listed by offset and XOR value, with both diagnoses, so that it can be
// reproduced by hand. A missing redis-check-rdb fails the test; it never skips it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "finalsnap/verify.h"
#include "support/process.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::RunCommand;

const std::string kSource =
    FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-nochecksum.rdb";
constexpr char kRedisCheckRdb[] = "/usr/bin/redis-check-rdb";
constexpr int kFlips = 150;
constexpr uint32_t kSeed = 20240611;

std::vector<char> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteAll(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The last line of redis-check-rdb's output that names an offset: its diagnosis.
std::string CheckRdbVerdictLine(const ProcessResult& r) {
  std::string last;
  size_t from = 0;
  const std::string& text = r.stdout_text;
  while (from < text.size()) {
    const size_t to = std::min(text.find('\n', from), text.size());
    const std::string line = text.substr(from, to - from);
    if (line.find("[offset") != std::string::npos) last = line;
    from = to + 1;
  }
  return last;
}

class DeepParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/finalsnap-parity-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(DeepParityTest, UntouchedFixtureIsValidForBoth) {
  const FileVerification v = VerifyFile(kSource);
  EXPECT_TRUE(v.ok()) << (v.rdb_error ? v.rdb_error->ToString() : v.io_error);
  EXPECT_TRUE(v.deep);
  const ProcessResult r = RunCommand({kRedisCheckRdb, kSource});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(DeepParityTest, SingleByteFlipsGetRedisCheckRdbsVerdict) {
  const std::vector<char> original = ReadAll(kSource);
  ASSERT_GT(original.size(), 1000u) << kSource;
  std::mt19937_64 rng(kSeed);
  int agree = 0;
  std::string disagreements;
  for (int i = 0; i < kFlips; ++i) {
    const uint64_t offset = rng() % original.size();
    const auto mask = static_cast<uint8_t>(1 + rng() % 255);  // never 0: always a change
    std::vector<char> bytes = original;
    bytes[offset] = static_cast<char>(static_cast<uint8_t>(bytes[offset]) ^ mask);
    const std::string path = dir_ + "/flip-" + std::to_string(i) + ".rdb";
    WriteAll(path, bytes);

    const FileVerification ours = VerifyFile(path);
    const ProcessResult theirs = RunCommand({kRedisCheckRdb, path});
    ASSERT_FALSE(theirs.timed_out) << theirs.Describe();
    // A crash (an assertion in the loader) is a rejection too: the exit code is not 0.
    const bool ours_valid = ours.ok();
    const bool theirs_valid = theirs.exit_code == 0;
    if (ours_valid == theirs_valid) {
      ++agree;
    } else {
      disagreements += "  offset " + std::to_string(offset) + " xor " + std::to_string(mask) +
                       ": finalsnap " + (ours_valid ? "valid" : "invalid") + ", redis-check-rdb " +
                       (theirs_valid ? "valid" : "invalid") + "\n    finalsnap: " +
                       (ours.rdb_error ? ours.rdb_error->ToString() : ours.io_error) +
                       "\n    redis-check-rdb: " + CheckRdbVerdictLine(theirs) + "\n";
    }
    fs::remove(path);
  }
  std::printf("[deep parity] %d of %d single-byte flips agree with redis-check-rdb\n", agree,
              kFlips);
  if (!disagreements.empty()) std::printf("%s", disagreements.c_str());
  EXPECT_EQ(agree, kFlips) << "flips where the verdicts differ:\n" << disagreements;
}

}  // namespace
}  // namespace finalsnap
