// Runs the real `finalsnap verify` binary: JSON on stdout, the aws-CLI-style error line on
// stderr, and exit codes 0 (valid), 254 (invalid or unreadable) and 252 (bad command line).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/process.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ProcessResult;
using testing::RunCommand;

const std::string kFixtures = FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb";
const std::string kErrorPrefix = "An error occurred (";

ProcessResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), FINALSNAP_CLI);
  return RunCommand(args);
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Sixteen lowercase hex digits, as the report writes a CRC-64.
bool IsHex64(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Parses stdout, failing the test (not crashing it) when it is not JSON.
json ParseStdout(const ProcessResult& r) {
  json doc;
  try {
    doc = json::parse(r.stdout_text);
  } catch (const json::parse_error& e) {
    ADD_FAILURE() << "stdout is not JSON: " << e.what() << "\n" << r.Describe();
  }
  return doc;
}

// The error line: exactly one line, starting with the aws CLI's prefix and naming the fault.
void ExpectErrorLine(const ProcessResult& r, const std::string& fault) {
  EXPECT_EQ(r.stderr_text.rfind(kErrorPrefix + fault + ") when calling the Verify operation: ", 0),
            0u)
      << r.Describe();
  ASSERT_FALSE(r.stderr_text.empty());
  EXPECT_EQ(r.stderr_text.back(), '\n');
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1) << r.Describe();
}

class CliVerifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/finalsnap-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    fs::create_directory(*dir_ + "/snap");
    const std::string source = kFixtures + "/redis-7.0.15-default.rdb";
    fs::copy_file(source, *dir_ + "/snap/0001.rdb");
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"zstd", "-q", "-f", source, "-o", *dir_ + "/snap/0002.rdb.zst"},
             {"lz4", "-q", "-f", source, *dir_ + "/snap/0003.rdb.lz4"}}) {
      const ProcessResult r = RunCommand(argv);
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
    }
    // The expected counts, as INFO keyspace reported them when the fixture was saved.
    std::ifstream in(kFixtures + "/redis-7.0.15.json");
    const json fixture = json::parse(in);
    // The report lists databases by number; "db15" sorts before "db3" as a JSON key.
    std::map<uint64_t, json> by_db;
    for (const auto& [db, counts] : fixture.at("keyspace").items()) {
      by_db[std::stoull(db.substr(2))] = counts;
    }
    expected_keys_ = 0;
    expected_databases_ = new json(json::array());
    for (const auto& [db, counts] : by_db) {
      expected_keys_ += counts.at("keys").get<uint64_t>();
      expected_databases_->push_back(
          {{"Db", db}, {"Keys", counts.at("keys")}, {"Expires", counts.at("expires")}});
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete expected_databases_;
  }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  // Checks one file object of the JSON report against the fixture.
  static void ExpectValidFile(const json& file, const std::string& compression) {
    EXPECT_EQ(file.at("Compression"), compression);
    EXPECT_EQ(file.at("Valid"), true);
    EXPECT_EQ(file.at("Family"), "redis");
    EXPECT_EQ(file.at("RdbVersion"), 10);
    EXPECT_EQ(file.at("RdbBytes"), fs::file_size(kFixtures + "/redis-7.0.15-default.rdb"));
    EXPECT_EQ(file.at("Keys"), expected_keys_);
    EXPECT_EQ(file.at("Expires"), 502);
    EXPECT_EQ(file.at("Databases"), *expected_databases_);
    EXPECT_EQ(file.at("Aux").at("redis-ver"), "7.0.15");
    const json& checksum = file.at("Checksum");
    EXPECT_EQ(checksum.at("Verdict"), "match");
    EXPECT_TRUE(IsHex64(checksum.at("Computed").get<std::string>())) << checksum;
    EXPECT_EQ(checksum.at("Computed"), checksum.at("Stored"));
    EXPECT_TRUE(file.at("Seconds").is_number());
    EXPECT_TRUE(file.at("ThroughputMBps").is_number());
    EXPECT_FALSE(file.contains("Error"));
  }

  static std::string* dir_;
  static uint64_t expected_keys_;
  static json* expected_databases_;
};

std::string* CliVerifyTest::dir_ = nullptr;
uint64_t CliVerifyTest::expected_keys_ = 0;
json* CliVerifyTest::expected_databases_ = nullptr;

TEST_F(CliVerifyTest, EachCompressionGivesTheSameJsonReport) {
  std::string crc;
  for (const auto& [name, compression] :
       {std::pair{"snap/0001.rdb", "none"}, std::pair{"snap/0002.rdb.zst", "zstd"},
        std::pair{"snap/0003.rdb.lz4", "lz4"}}) {
    SCOPED_TRACE(name);
    const ProcessResult r = Cli({"verify", Path(name)});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.stderr_text, "");
    const json doc = ParseStdout(r);
    EXPECT_EQ(doc.at("Path"), Path(name));
    EXPECT_EQ(doc.at("StoredBytes"), fs::file_size(Path(name)));
    ExpectValidFile(doc, compression);
    if (crc.empty()) crc = doc.at("Checksum").at("Computed");
    EXPECT_EQ(doc.at("Checksum").at("Computed"), crc);
  }
}

TEST_F(CliVerifyTest, DirectoryListsEveryFile) {
  const ProcessResult r = Cli({"verify", Path("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc.at("Valid"), true);
  const json& files = doc.at("Files");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].at("Path"), Path("snap/0001.rdb"));
  ExpectValidFile(files[0], "none");
  ExpectValidFile(files[1], "zstd");
  ExpectValidFile(files[2], "lz4");
}

TEST_F(CliVerifyTest, NoChecksumIsValidAndSaysSo) {
  const ProcessResult r = Cli({"verify", kFixtures + "/redis-7.0.15-nochecksum.rdb"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc.at("Valid"), true);
  EXPECT_EQ(doc.at("Checksum").at("Verdict"), "disabled");
  EXPECT_EQ(doc.at("Checksum").at("Stored"), "0000000000000000");
}

TEST_F(CliVerifyTest, TextOutput) {
  // Global options are accepted before and after the subcommand, as with the aws CLI.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--output", "text", "verify", Path("snap/0002.rdb.zst")},
           {"verify", Path("snap/0002.rdb.zst"), "--output", "text"}}) {
    const ProcessResult r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.stdout_text.find("RDB looks OK"), std::string::npos) << r.Describe();
    EXPECT_NE(r.stdout_text.find("519 keys"), std::string::npos) << r.Describe();
  }
}

TEST_F(CliVerifyTest, TruncatedFileFails) {
  const std::vector<uint8_t> whole = ReadBytes(Path("snap/0001.rdb"));
  WriteBytes(Path("cut.rdb"), std::vector<uint8_t>(whole.begin(), whole.begin() + 100000));
  const ProcessResult r = Cli({"verify", Path("cut.rdb")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidSnapshotState");
  EXPECT_NE(r.stderr_text.find(Path("cut.rdb") + ": truncated at offset 100000"), std::string::npos)
      << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc.at("Valid"), false);
  const json& error = doc.at("Error");
  EXPECT_EQ(error.at("Class"), "truncated");
  EXPECT_EQ(error.at("Offset"), 100000);
  for (const char* field : {"State", "Key", "Type", "Db", "Message"}) {
    EXPECT_TRUE(error.contains(field)) << field;
  }
}

TEST_F(CliVerifyTest, TruncatedZstdFails) {
  const std::vector<uint8_t> whole = ReadBytes(Path("snap/0002.rdb.zst"));
  WriteBytes(Path("cut.rdb.zst"), std::vector<uint8_t>(whole.begin(), whole.end() - 3));
  const ProcessResult r = Cli({"verify", Path("cut.rdb.zst")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidSnapshotState");
  EXPECT_NE(r.stderr_text.find("zstd: frame truncated"), std::string::npos) << r.Describe();
  EXPECT_EQ(ParseStdout(r).at("Valid"), false);
}

TEST_F(CliVerifyTest, CorruptFileFails) {
  std::vector<uint8_t> bytes = ReadBytes(Path("snap/0001.rdb"));
  for (size_t i = 0; i < 8; ++i) bytes[bytes.size() / 2 + i] ^= 0xff;
  WriteBytes(Path("corrupt.rdb"), bytes);
  const ProcessResult r = Cli({"verify", Path("corrupt.rdb")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidSnapshotState");
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc.at("Valid"), false);
  const std::string error_class = doc.at("Error").at("Class");
  EXPECT_TRUE(error_class == "corrupt" || error_class == "checksum-mismatch" ||
              error_class == "truncated")
      << error_class;
}

TEST_F(CliVerifyTest, DirectoryWithABadFileFails) {
  fs::create_directory(Path("mixed"));
  fs::copy_file(Path("snap/0001.rdb"), Path("mixed/0001.rdb"));
  WriteBytes(Path("mixed/0002.rdb"), {'R', 'E', 'D', 'I', 'S'});
  const ProcessResult r = Cli({"verify", Path("mixed")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidSnapshotState");
  EXPECT_NE(r.stderr_text.find(Path("mixed/0002.rdb")), std::string::npos) << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc.at("Valid"), false);
  ASSERT_EQ(doc.at("Files").size(), 2u);
  EXPECT_EQ(doc.at("Files")[0].at("Valid"), true);
  EXPECT_EQ(doc.at("Files")[1].at("Valid"), false);
}

TEST_F(CliVerifyTest, MissingPathIsAnInvalidParameter) {
  const ProcessResult r = Cli({"verify", Path("does-not-exist.rdb")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidParameterValue");
  EXPECT_EQ(r.stdout_text, "");
}

TEST_F(CliVerifyTest, EmptyDirectoryIsAnInvalidParameter) {
  fs::create_directory(Path("empty"));
  const ProcessResult r = Cli({"verify", Path("empty")});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  ExpectErrorLine(r, "InvalidParameterValue");
}

TEST_F(CliVerifyTest, BadCommandLinesExit252) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{},
                                             {"verify"},
                                             {"verify", Path("snap"), "extra"},
                                             {"--output", "xml", "verify", Path("snap")},
                                             {"verify", "--no-such-option", Path("snap")},
                                             {"no-such-command"}}) {
    const ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 252) << r.Describe();
    EXPECT_NE(r.stderr_text, "") << r.Describe();
    EXPECT_EQ(r.stdout_text, "") << r.Describe();
  }
}

TEST_F(CliVerifyTest, HelpExitsZero) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"verify", "--help"}}) {
    const ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.stdout_text.find("verify"), std::string::npos) << r.Describe();
  }
}

}  // namespace
}  // namespace finalsnap
