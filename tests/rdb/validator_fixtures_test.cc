// Every RDB in ../shared/fixtures/rdb (Redis 7.0.15 RDB 10, Redis unstable RDB 12, Valkey RDB 11;
// SAVE, replication payloads, LZF off, checksums off, modules, cluster slot info) validates, fed
// whole, in 1-byte pieces and in random pieces, with the key counts the server reported.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "support/feed.h"

namespace finalsnap::rdb {
namespace {

namespace fs = std::filesystem;
using testing::Chunking;

const fs::path kFixtures = FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb";

std::vector<uint8_t> ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::map<uint64_t, DbCounts> Keyspace(const nlohmann::json& j) {
  std::map<uint64_t, DbCounts> m;
  for (const auto& [db, c] : j.items()) {
    m[std::stoull(db.substr(2))] = DbCounts{c.at("keys").get<uint64_t>(),
                                            c.at("expires").get<uint64_t>()};
  }
  return m;
}

struct Fixture {
  std::string file;
  std::map<uint64_t, DbCounts> keyspace;
  bool checksum_zero = false;
  std::string server;
};

// Reads the JSON files beside the fixtures: which file holds which keys.
std::vector<Fixture> LoadFixtures() {
  std::vector<Fixture> out;
  for (const auto& entry : fs::directory_iterator(kFixtures)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream f(entry.path());
    const nlohmann::json j = nlohmann::json::parse(f);
    std::vector<std::string> zero;
    if (j.contains("checksum_zero")) zero = j["checksum_zero"].get<std::vector<std::string>>();
    for (const std::string& file : j.at("files").get<std::vector<std::string>>()) {
      Fixture fx{file, {}, false, j.at("server").get<std::string>()};
      fx.keyspace = j.contains("keyspace") ? Keyspace(j["keyspace"])
                                           : Keyspace(j.at("keyspace_by_file").at(file));
      fx.checksum_zero = std::find(zero.begin(), zero.end(), file) != zero.end();
      out.push_back(fx);
    }
  }
  return out;
}

TEST(ValidatorFixtures, EveryFixtureIsDescribedAndPresent) {
  const std::vector<Fixture> fixtures = LoadFixtures();
  size_t rdb_files = 0;
  for (const auto& entry : fs::directory_iterator(kFixtures)) {
    rdb_files += entry.path().extension() == ".rdb";
  }
  ASSERT_GE(fixtures.size(), 14u) << "fixtures missing from " << kFixtures;
  EXPECT_EQ(fixtures.size(), rdb_files) << "an .rdb fixture has no expected counts";
}

TEST(ValidatorFixtures, ValidatesWithServerKeyCountsInEveryChunking) {
  for (const Fixture& fx : LoadFixtures()) {
    const std::vector<uint8_t> data = ReadFile(kFixtures / fx.file);
    ASSERT_FALSE(data.empty()) << fx.file;
    for (Chunking c : testing::kAllChunkings) {
      SCOPED_TRACE(fx.file + " fed " + testing::ChunkingName(c));
      const testing::Outcome out = testing::Validate(data, c, 7);
      ASSERT_EQ(out.progress, Progress::kDone) << out.diagnostic.ToString();
      EXPECT_EQ(out.report.databases, fx.keyspace);
      EXPECT_EQ(out.report.bytes, data.size());
      EXPECT_EQ(out.report.checksum,
                fx.checksum_zero ? ChecksumVerdict::kDisabled : ChecksumVerdict::kMatch);
      const int expected_version = fx.server.starts_with("redis-7.0") ? 10
                                   : fx.server.starts_with("valkey")  ? 11
                                                                      : 12;
      EXPECT_EQ(out.report.rdb_version, expected_version);
    }
    // Deep mode also walks every LZF stream of the real files.
    Options deep;
    deep.deep = true;
    const testing::Outcome out = testing::Validate(data, Chunking::kRandom, 8, deep);
    ASSERT_EQ(out.progress, Progress::kDone) << fx.file << ": " << out.diagnostic.ToString();
    EXPECT_EQ(out.report.databases, fx.keyspace) << fx.file;
  }
}

TEST(ValidatorFixtures, ReportsAuxFieldsFunctionsAndSpecialRecords) {
  const auto r70 = testing::Validate(ReadFile(kFixtures / "redis-7.0.15-default.rdb"),
                                     Chunking::kWhole);
  ASSERT_EQ(r70.progress, Progress::kDone);
  EXPECT_EQ(r70.report.Aux("redis-ver"), "7.0.15");
  EXPECT_EQ(r70.report.Aux("redis-bits"), "64");  // an INT8-encoded value, given as text
  ASSERT_TRUE(r70.report.Aux("ctime").has_value());
  EXPECT_GT(std::stoll(*r70.report.Aux("ctime")), 1600000000);
  EXPECT_EQ(r70.report.functions, 1u);

  const auto sync = testing::Validate(ReadFile(kFixtures / "redis-7.0.15-sync.rdb"),
                                      Chunking::kWhole);
  ASSERT_EQ(sync.progress, Progress::kDone);
  EXPECT_TRUE(sync.report.Aux("repl-id").has_value());
  EXPECT_TRUE(sync.report.Aux("repl-offset").has_value());

  const auto modules = testing::Validate(
      ReadFile(kFixtures / "redis-unstable-2024-10-modules.rdb"), Chunking::kOneByte);
  ASSERT_EQ(modules.progress, Progress::kDone);
  EXPECT_EQ(modules.report.module_aux, 1u);  // the file holds one MODULE_AUX record

  const auto cluster = testing::Validate(
      ReadFile(kFixtures / "redis-unstable-2024-10-cluster.rdb"), Chunking::kWhole);
  ASSERT_EQ(cluster.progress, Progress::kDone);
  EXPECT_GT(cluster.report.slot_info, 0u);

  const auto valkey = testing::Validate(
      ReadFile(kFixtures / "valkey-unstable-2024-10-default.rdb"), Chunking::kWhole);
  ASSERT_EQ(valkey.progress, Progress::kDone);
  EXPECT_TRUE(valkey.report.Aux("valkey-ver").has_value());
}

}  // namespace
}  // namespace finalsnap::rdb
