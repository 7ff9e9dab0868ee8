// Integration tests of the RDB validator against dumps written by a real redis-server.
//
// Each test starts Debian's redis-server in a temporary directory, fills it with FillMixed's data
// set (every type in every encoding Redis 7.0 writes), SAVEs, and checks that the validator,
// fed the dump whole, in 1-byte pieces and in random pieces, agrees with the server (INFO
// keyspace, redis_version, FUNCTION LIST) and with redis-check-rdb, for accepted and for
// truncated dumps. Server configurations vary what the RDB looks like: rdbcompression (LZF
// strings), rdbchecksum (a zero trailer), list-compress-depth (LZF quicklist nodes) and the
// eviction policy (LFU/LRU opcodes before each key).
//
// A missing redis-server or redis-check-rdb fails these tests; it never skips them.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <ostream>
#include <regex>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "finalsnap/rdb/crc64.h"
#include "finalsnap/rdb/validator.h"
#include "support/dataset.h"
#include "support/feed.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace finalsnap::rdb {

// Lets GoogleTest print the per-database maps it compares. Static: other test files in the same
// binary may define their own.
[[maybe_unused]] static void PrintTo(const DbCounts& c, std::ostream* os) {
  *os << "{keys=" << c.keys << ", expires=" << c.expires << "}";
}

}  // namespace finalsnap::rdb

namespace finalsnap::testing {
namespace {

constexpr char kRedisCheckRdb[] = "/usr/bin/redis-check-rdb";
// Enough keys that every kind lands in every database several times, small enough that a test
// (start, fill, SAVE, three feeds, redis-check-rdb) stays within a few seconds on 2 cores.
constexpr uint64_t kKeysPerTest = 2000;

struct ServerConfig {
  std::string name;
  std::vector<std::pair<std::string, std::string>> directives;
  rdb::ChecksumVerdict checksum = rdb::ChecksumVerdict::kMatch;
};

const ServerConfig kConfigs[] = {
    {"Defaults", {}, rdb::ChecksumVerdict::kMatch},
    {"NoCompression", {{"rdbcompression", "no"}}, rdb::ChecksumVerdict::kMatch},
    {"NoChecksum", {{"rdbchecksum", "no"}}, rdb::ChecksumVerdict::kDisabled},
    // Compressed quicklist nodes are saved as LZF blobs; LFU writes a FREQ opcode per key.
    {"ListCompressLfu",
     {{"list-compress-depth", "1"}, {"maxmemory-policy", "allkeys-lfu"}},
     rdb::ChecksumVerdict::kMatch},
    // LRU writes an IDLE opcode per key.
    {"Lru", {{"maxmemory-policy", "allkeys-lru"}}, rdb::ChecksumVerdict::kMatch},
};

// Names the configuration in test listings instead of dumping its bytes.
void PrintTo(const ServerConfig& config, std::ostream* os) { *os << config.name; }

constexpr uint64_t kSeeds[] = {1, 2, 3};

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// The RDB version each server release writes (rdb.h RDB_VERSION). Only versions the tests have
// been run against are listed; another server fails loudly instead of being guessed at.
int ExpectedRdbVersion(const std::string& redis_version) {
  static const std::pair<const char*, int> kVersions[] = {
      {"6.0.", 9}, {"6.2.", 9}, {"7.0.", 10}, {"7.2.", 11}, {"7.4.", 12}};
  for (const auto& [prefix, rdb_version] : kVersions) {
    if (redis_version.rfind(prefix, 0) == 0) return rdb_version;
  }
  return -1;
}

// "[info] 123 keys read" and the like from redis-check-rdb's summary; -1 if absent.
long long CheckRdbCounter(const std::string& out, const std::string& what) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex("\\[info\\] (\\d+) " + what))) {
    return std::stoll(m[1].str());
  }
  return -1;
}

ProcessResult RunRedisCheckRdb(const std::string& path) {
  if (::access(kRedisCheckRdb, X_OK) != 0) {
    throw std::runtime_error(std::string(kRedisCheckRdb) +
                             " is missing: install it with `apt-get install redis-server "
                             "redis-tools`");
  }
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  return RunCommand({kRedisCheckRdb, path}, options);
}

DatasetOptions Keys(uint64_t seed, uint64_t key_count) {
  DatasetOptions o;
  o.seed = seed;
  o.key_count = key_count;
  return o;
}

// A server filled with FillMixed and saved; what the server said about itself at save time.
struct Dump {
  DatasetStats stats;
  std::map<uint64_t, rdb::DbCounts> keyspace;
  std::string redis_version;
  uint64_t function_libraries = 0;
  std::string path;
  std::vector<uint8_t> bytes;
};

Dump MakeDump(RedisServer& server, const DatasetOptions& options) {
  server.Start();
  Dump dump;
  RedisContextPtr c = server.Connect();
  dump.stats = FillMixed(c.get(), options);
  dump.keyspace = server.Keyspace();
  dump.redis_version = server.Version();
  Reply libraries = server.Command("FUNCTION", "LIST");
  if (libraries.type != Reply::Type::kArray) {
    throw std::runtime_error("FUNCTION LIST: " + libraries.ToString());
  }
  dump.function_libraries = libraries.elements.size();
  dump.path = server.Save();
  dump.bytes = ReadBytes(dump.path);
  return dump;
}

class RedisRdbTest : public ::testing::TestWithParam<std::tuple<ServerConfig, uint64_t>> {
 protected:
  void SetUp() override {
    const auto& [config, seed] = GetParam();
    server_ = std::make_unique<RedisServer>(config.directives);
    dump_ = MakeDump(*server_, Keys(seed, kKeysPerTest));
  }

  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::cerr << "redis-server directory: " << server_->dir() << "\n" << server_->LogTail(20);
    }
  }

  std::unique_ptr<RedisServer> server_;
  Dump dump_;
};

TEST_P(RedisRdbTest, ValidatorAgreesWithServer) {
  const auto& [config, seed] = GetParam();
  // The data set itself: the server holds what FillMixed says it wrote.
  ASSERT_EQ(dump_.keyspace, dump_.stats.databases);
  ASSERT_EQ(dump_.stats.keys, kKeysPerTest);
  ASSERT_EQ(dump_.function_libraries, dump_.stats.functions);
  const int rdb_version = ExpectedRdbVersion(dump_.redis_version);
  ASSERT_NE(rdb_version, -1) << "no known RDB version for redis " << dump_.redis_version;

  for (Chunking chunking : kAllChunkings) {
    SCOPED_TRACE("fed " + ChunkingName(chunking));
    Outcome out = Validate(dump_.bytes, chunking, static_cast<uint32_t>(seed));
    ASSERT_EQ(out.progress, rdb::Progress::kDone) << out.diagnostic.ToString();
    const rdb::Report& r = out.report;
    EXPECT_EQ(r.family, rdb::Family::kRedis);
    EXPECT_EQ(r.rdb_version, rdb_version);
    EXPECT_EQ(r.databases, dump_.keyspace);
    EXPECT_EQ(r.TotalKeys(), dump_.stats.keys);
    EXPECT_EQ(r.TotalExpires(), dump_.stats.expires);
    EXPECT_EQ(r.functions, dump_.function_libraries);
    EXPECT_EQ(r.module_aux, 0u);
    EXPECT_EQ(r.Aux("redis-ver"), dump_.redis_version);
    EXPECT_EQ(r.bytes, dump_.bytes.size());
    EXPECT_EQ(r.checksum, config.checksum) << rdb::ChecksumVerdictName(r.checksum);
    // The CRC the validator computed is the one over everything but the 8-byte trailer.
    std::span<const uint8_t> body(dump_.bytes.data(), dump_.bytes.size() - 8);
    EXPECT_EQ(r.computed_crc, rdb::Crc64(0, body));
    uint64_t trailer = 0;
    for (int i = 7; i >= 0; --i) trailer = (trailer << 8) | dump_.bytes[body.size() + i];
    EXPECT_EQ(r.stored_crc, trailer);
    if (config.checksum == rdb::ChecksumVerdict::kDisabled) {
      EXPECT_EQ(trailer, 0u);
    }
  }
}

TEST_P(RedisRdbTest, RedisCheckRdbAgrees) {
  const auto& [config, seed] = GetParam();
  ProcessResult r = RunRedisCheckRdb(dump_.path);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stdout_text.find("RDB looks OK"), std::string::npos) << r.Describe();
  EXPECT_EQ(CheckRdbCounter(r.stdout_text, "keys read"), static_cast<long long>(dump_.stats.keys))
      << r.Describe();
  EXPECT_EQ(CheckRdbCounter(r.stdout_text, "expires"), static_cast<long long>(dump_.stats.expires))
      << r.Describe();
  // And the validator says the same about the same file.
  Outcome out = Validate(dump_.bytes, Chunking::kWhole);
  ASSERT_EQ(out.progress, rdb::Progress::kDone) << out.diagnostic.ToString();
  EXPECT_EQ(out.report.TotalKeys(), dump_.stats.keys);
  EXPECT_EQ(out.report.checksum, config.checksum);
  const char* checksum_line = config.checksum == rdb::ChecksumVerdict::kDisabled
                                  ? "saved with checksum disabled"
                                  : "Checksum OK";
  EXPECT_NE(r.stdout_text.find(checksum_line), std::string::npos) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(ConfigsAndSeeds, RedisRdbTest,
                         ::testing::Combine(::testing::ValuesIn(kConfigs),
                                            ::testing::ValuesIn(kSeeds)),
                         [](const ::testing::TestParamInfo<RedisRdbTest::ParamType>& info) {
                           return std::get<0>(info.param).name + "_Seed" +
                                  std::to_string(std::get<1>(info.param));
                         });

// Cutting a real dump anywhere must give a truncation error at exactly the cut, from the
// validator, and a failure from redis-check-rdb: the two checkers reach the same verdict.
TEST(RedisRdbTruncationTest, BothCheckersRejectEveryCut) {
  RedisServer server;
  Dump dump = MakeDump(server, Keys(11, 500));
  const uint64_t size = dump.bytes.size();
  ASSERT_GT(size, 1000u);
  const uint64_t cuts[] = {0,         1,        5,        8,        9,
                           10,        20,       100,      size / 3, size / 2,
                           size - 10, size - 9, size - 8, size - 4, size - 1};
  for (uint64_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(size));
    std::span<const uint8_t> prefix(dump.bytes.data(), cut);
    for (Chunking chunking : kAllChunkings) {
      SCOPED_TRACE("fed " + ChunkingName(chunking));
      Outcome out = Validate(prefix, chunking, static_cast<uint32_t>(cut));
      ASSERT_EQ(out.progress, rdb::Progress::kError);
      EXPECT_EQ(out.diagnostic.code, rdb::Errc::kTruncated) << out.diagnostic.ToString();
      EXPECT_EQ(out.diagnostic.offset, cut) << out.diagnostic.ToString();
    }
    const std::string path = server.dir() + "/cut-" + std::to_string(cut) + ".rdb";
    WriteBytes(path, prefix);
    ProcessResult r = RunRedisCheckRdb(path);
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_FALSE(r.timed_out) << r.Describe();
  }
}

// The smallest dumps: no keys at all, and functions but no keys. The report must hold no
// databases (INFO keyspace lists none either) and still see the functions.
TEST(RedisRdbEdgeTest, EmptyAndFunctionsOnlyDumps) {
  RedisServer server;
  server.Start();
  for (int libraries : {0, 1}) {
    SCOPED_TRACE(std::to_string(libraries) + " function libraries");
    if (libraries == 1) {
      Reply r = server.Command("FUNCTION", "LOAD",
                               "#!lua name=only\nredis.register_function('only_f', "
                               "function(keys, args) return 1 end)");
      ASSERT_EQ(r.str, "only") << r.ToString();
    }
    ASSERT_TRUE(server.Keyspace().empty());
    std::vector<uint8_t> bytes = ReadBytes(server.Save());
    for (Chunking chunking : kAllChunkings) {
      SCOPED_TRACE("fed " + ChunkingName(chunking));
      Outcome out = Validate(bytes, chunking);
      ASSERT_EQ(out.progress, rdb::Progress::kDone) << out.diagnostic.ToString();
      EXPECT_TRUE(out.report.databases.empty());
      EXPECT_EQ(out.report.TotalKeys(), 0u);
      EXPECT_EQ(out.report.functions, static_cast<uint64_t>(libraries));
      EXPECT_EQ(out.report.checksum, rdb::ChecksumVerdict::kMatch);
      EXPECT_EQ(out.report.bytes, bytes.size());
    }
  }
}

// FillMixed makes each kind of key in the encoding its name promises (the premise of the tests
// above), and the same seed makes the same data.
TEST(FillMixedTest, KindsHaveTheirEncodings) {
  RedisServer server;
  server.Start();
  RedisContextPtr c = server.Connect();
  DatasetStats stats = FillMixed(c.get(), Keys(5, 400));
  const std::string version = server.Version();
  // Redis 7.2 brought listpack encodings for small lists and small sets.
  const bool after_7_0 = version.rfind("7.0.", 0) != 0;
  const std::map<std::string, std::string> expected = {
      {"str:int", "int"},
      {"str:empty", "embstr"},
      {"list:listpack", after_7_0 ? "listpack" : "quicklist"},
      {"list:quicklist", "quicklist"},
      {"list:plain", "quicklist"},
      {"set:intset", "intset"},
      {"set:listpack", after_7_0 ? "listpack" : "hashtable"},
      {"set:hashtable", "hashtable"},
      {"zset:listpack", "listpack"},
      {"zset:skiplist", "skiplist"},
      {"hash:listpack", "listpack"},
      {"hash:hashtable", "hashtable"},
      {"stream:groups", "stream"},
      {"stream:plain", "stream"},
      {"stream:empty", "stream"},
  };
  ASSERT_TRUE(stats.plain_list_nodes) << "DEBUG QUICKLIST-PACKED-THRESHOLD was refused";
  for (const auto& [kind, encoding] : expected) {
    SCOPED_TRACE(kind);
    ASSERT_TRUE(stats.samples.contains(kind));
    const SampleKey& sample = stats.samples.at(kind);
    ASSERT_TRUE(server.Command("SELECT", sample.db).ok());
    Reply r = server.Command("OBJECT", "ENCODING", sample.key);
    EXPECT_EQ(r.str, encoding) << sample.key << ": " << r.ToString();
  }
  // Every kind was written several times.
  for (const auto& [kind, count] : stats.keys_by_kind) EXPECT_GE(count, 3u) << kind;
  ASSERT_TRUE(server.Command("SELECT", 0).ok());
  EXPECT_EQ(server.Keyspace(), stats.databases);
}

// Every benchmark shape fills the server with what it promises: its kinds in their compact
// encodings (the point of the small-key shapes), the counts the server reports, sessions all
// with a TTL, and an RDB the validator reads with the same counts.
TEST(FillMixedTest, EveryShapeWritesWhatItPromises) {
  using Mix = DatasetOptions::Mix;
  struct Shape {
    Mix mix;
    std::map<std::string, std::string> encodings;  // kind -> OBJECT ENCODING of its first key
    uint64_t min_keys;                             // in the 2 MB (huge: 80 MB) it writes
    uint64_t max_keys;
  };
  const std::vector<Shape> shapes = {
      {Mix::kSessions, {}, 10'000, 40'000},
      {Mix::kJsonDocuments, {{"doc", "raw"}}, 5'000, 20'000},
      {Mix::kSmallHashes, {{"hash", "listpack"}}, 5'000, 40'000},
      {Mix::kSmallCollections, {{"zset", "listpack"}}, 1'000, 10'000},
      {Mix::kSmallKeys,
       {{"doc", "raw"}, {"hash", "listpack"}, {"zset", "listpack"}},
       2'000,
       20'000},
      {Mix::kHugeKeys, {{"huge:hash", "hashtable"}, {"huge:list", "quicklist"}}, 2, 10},
      {Mix::kStreams, {{"stream:groups", "stream"}}, 50, 1'000},
  };
  for (const Shape& shape : shapes) {
    const std::string name = localnode::MixName(shape.mix);
    SCOPED_TRACE(name);
    ASSERT_TRUE(localnode::MixByName(name).ok());
    EXPECT_EQ(*localnode::MixByName(name), shape.mix);
    RedisServer server;
    server.Start();
    RedisContextPtr c = server.Connect();
    DatasetOptions options;
    options.mix = shape.mix;
    options.seed = 9;
    options.with_functions = false;
    options.databases = {0};
    // Huge keys need a few of them: 300k-field hash, 500k-element list.
    options.target_bytes = shape.mix == Mix::kHugeKeys ? 80'000'000 : 2'000'000;
    const DatasetStats stats = FillMixed(c.get(), options);
    ASSERT_EQ(server.Keyspace(), stats.databases);
    for (const auto& [kind, encoding] : shape.encodings) {
      SCOPED_TRACE(kind);
      ASSERT_TRUE(stats.samples.contains(kind));
      const Reply r = server.Command("OBJECT", "ENCODING", stats.samples.at(kind).key);
      EXPECT_EQ(r.str, encoding) << r.ToString();
    }
    if (shape.mix == Mix::kSessions) {
      EXPECT_EQ(stats.expires, stats.keys);
    }
    EXPECT_GE(stats.keys, shape.min_keys);
    EXPECT_LE(stats.keys, shape.max_keys);
    const Outcome out = Validate(ReadBytes(server.Save()), Chunking::kWhole);
    ASSERT_EQ(out.progress, rdb::Progress::kDone) << out.diagnostic.ToString();
    EXPECT_EQ(out.report.databases, stats.databases);
  }
  EXPECT_FALSE(localnode::MixByName("bogus").ok());
}

TEST(FillMixedTest, SameSeedSameData) {
  auto digest = [](uint64_t seed) {
    RedisServer server;
    server.Start();
    RedisContextPtr c = server.Connect();
    FillMixed(c.get(), Keys(seed, 300));
    Reply r = server.Command("DEBUG", "DIGEST");
    if (r.type != Reply::Type::kStatus && r.type != Reply::Type::kString) {
      throw std::runtime_error("DEBUG DIGEST: " + r.ToString());
    }
    return r.str;
  };
  const std::string a = digest(21);
  EXPECT_EQ(a, digest(21));
  EXPECT_NE(a, digest(22));
}

TEST(FillMixedTest, TargetBytesIsReached) {
  RedisServer server;
  server.Start();
  RedisContextPtr c = server.Connect();
  uint64_t last_progress = 0;
  DatasetOptions options;
  options.seed = 3;
  options.target_bytes = 5'000'000;
  options.with_functions = false;
  options.progress = [&](uint64_t b) { last_progress = b; };
  DatasetStats stats = FillMixed(c.get(), options);
  EXPECT_GE(stats.bytes, 5'000'000u);
  EXPECT_LT(stats.bytes, 6'000'000u);  // it stops soon after the target
  EXPECT_EQ(last_progress, stats.bytes);
  EXPECT_EQ(stats.functions, 0u);
  EXPECT_EQ(server.Keyspace(), stats.databases);
}

TEST(RedisServerTest, MissingBinaryFailsLoudly) {
  RedisServerOptions options;
  options.binary = "/nonexistent/redis-server";
  RedisServer server(options);
  try {
    server.Start();
    FAIL() << "Start() succeeded without a binary";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/redis-server"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("apt-get install redis-server redis-tools"),
              std::string::npos)
        << e.what();
  }
}

TEST(RedisServerTest, StopShutsTheServerDown) {
  RedisServer server({{"databases", "32"}, {"requirepass", "s3cret"}});
  server.Start();
  EXPECT_TRUE(server.Command("SET", "k", "v").ok());
  EXPECT_EQ(server.Command("CONFIG", "GET", "databases").elements.at(1).str, "32");
  const int port = server.port();
  // A bare connection is refused; the server's own are authenticated.
  RedisContextPtr bare = ConnectTo(server.host(), port);
  EXPECT_EQ(Execute(bare.get(), {"GET", "k"}).str.rfind("NOAUTH", 0), 0u);
  server.Stop(std::chrono::seconds(5));
  EXPECT_FALSE(server.Running());
  EXPECT_THROW(ConnectTo("127.0.0.1", port, std::chrono::milliseconds(500)), std::runtime_error);
}

// RunCommand, which the tests above use for redis-check-rdb (and other tests for the CLI).
TEST(RunCommandTest, CapturesOutputAndExitCode) {
  ProcessResult r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_EQ(r.stdout_text, "out\n");
  EXPECT_EQ(r.stderr_text, "err\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(RunCommandTest, FeedsStdinFromDataOrFile) {
  RunOptions from_data;
  // More than a pipe buffer, so writing and reading must interleave.
  from_data.stdin_data = std::string(1 << 20, 'x');
  ProcessResult r = RunCommand({"wc", "-c"}, from_data);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(std::stoul(r.stdout_text), 1u << 20);

  RunOptions from_file;
  from_file.stdin_file = "/etc/hostname";
  r = RunCommand({"cat"}, from_file);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::ifstream in("/etc/hostname");
  EXPECT_EQ(r.stdout_text,
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

TEST(RunCommandTest, KillsTheProcessGroupAtTheDeadline) {
  RunOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  // The shell's child keeps the output pipe open: the kill must reach the whole group.
  ProcessResult r = RunCommand({"sh", "-c", "sleep 30 & sleep 30"}, options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_NE(r.exit_code, 0);
}

TEST(RunCommandTest, MissingProgramThrows) {
  EXPECT_THROW(RunCommand({"/nonexistent/program"}), std::runtime_error);
  EXPECT_THROW(RunCommand({"finalsnap-no-such-program"}), std::runtime_error);
}

}  // namespace
}  // namespace finalsnap::testing
