// Tests for the snapshot store (storage.h): name rules and the manifest JSON
// (storage_store_test.cc: the store on disk and the readback gate).
#include <gtest/gtest.h>

#include "storage_helpers.h"

namespace finalsnap {
namespace {

using namespace storage_helpers;  // NOLINT: the shared helpers, as if defined here

// ---- Names ----

TEST(StorageNameTest, AcceptsElastiCacheNames) {
  for (const std::string& name :
       std::vector<std::string>{"a", "Z", "bkup-20150515-final", "myReplGroup-final-1", "A1-b2-C3",
                                std::string(255, 'x')}) {
    EXPECT_TRUE(CheckSnapshotName(name).ok()) << name;
  }
}

TEST(StorageNameTest, RefusesUnsafeOrNonElastiCacheNames) {
  const std::string with_nul("ab\0cd", 5);
  for (const std::string& name :
       {std::string(), std::string("."), std::string(".."), std::string(".hidden"),
        std::string("../x"), std::string("a/b"), std::string("/abs"), with_nul,
        std::string(256, 'x'), std::string("1backup"), std::string("-x"), std::string("a--b"),
        std::string("a-"), std::string("a_b"), std::string("a.b"), std::string("a b"),
        std::string("caf\xc3\xa9"), std::string("a\\b")}) {
    EXPECT_FALSE(CheckSnapshotName(name).ok()) << "accepted: '" << name << "'";
  }
  EXPECT_NE(CheckSnapshotName(std::string(256, 'x')).message().find("255"), std::string::npos);
}

// ---- Manifest JSON ----

Snapshot FullSnapshot() {
  Snapshot s = Initial("bkup-20150515-final");
  s.snapshot_status = "available";
  s.cache_cluster_id.clear();
  s.replication_group_id = "myReplGroup";
  s.num_node_groups = 2;
  s.final_snapshot_of = "delete-replication-group";
  for (int i = 1; i <= 2; ++i) {
    NodeSnapshot node;
    node.node_group_id = "000" + std::to_string(i);
    node.cache_node_id = node.node_group_id + "-001";
    node.cache_cluster_id = "myReplGroup-000" + std::to_string(i) + "-001";
    node.source_endpoint = "10.0.0." + std::to_string(i) + ":7000";
    node.cache_size = (uint64_t{5} << 20) + 17;
    node.snapshot_create_time = "2026-11-25T01:02:03.456Z";
    node.slots = i == 1 ? std::vector<std::pair<int, int>>{{0, 5460}, {10923, 10923}}
                        : std::vector<std::pair<int, int>>{{5461, 10922}, {10924, 16383}};
    node.file = node.node_group_id + ".rdb.zst";
    node.compression = Compression::kZstd;
    node.compression_level = 3;
    node.stored_bytes = 1000 + static_cast<uint64_t>(i);
    node.rdb_bytes = 4000;
    node.rdb_version = 10;
    node.crc64 = 0x00ab00cd00ef0012ULL * static_cast<uint64_t>(i);
    node.keyspace[0] = {519, 502};
    node.keyspace[15] = {1000, 0};
    node.repl_id = "abc";
    if (i == 1) node.repl_offset = uint64_t{1} << 40;
    s.node_snapshots.push_back(node);
  }
  GateVerdict durable;
  durable.gate = "durable";
  durable.phase = "store";
  durable.passed = true;
  durable.evidence = "fsynced 2 files";
  durable.at_ms = 1234.5;
  GateVerdict paused;
  paused.gate = "writes-paused";
  paused.phase = "quiesce";
  paused.passed = true;
  paused.evidence = "CLIENT PAUSE WRITE";
  paused.node = "10.0.0.1:7000";
  paused.at_ms = 0.25;
  s.gates = {paused, durable};
  return s;
}

TEST(StorageJsonTest, RoundTripsEveryField) {
  const Snapshot original = FullSnapshot();
  const std::string text = SnapshotToJson(original);
  const Expected<Snapshot> back = SnapshotFromJson(text);
  ASSERT_TRUE(back.ok()) << back.error().message() << "\n" << text;
  EXPECT_EQ(*back, original) << text;
  // And once more, so that what we read is also what we write.
  EXPECT_EQ(SnapshotToJson(*back), text);
}

TEST(StorageJsonTest, UsesElastiCacheFieldNames) {
  const nlohmann::json j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  EXPECT_EQ(j["SnapshotName"], "bkup-20150515-final");
  EXPECT_EQ(j["SnapshotStatus"], "available");
  EXPECT_EQ(j["SnapshotSource"], "manual");
  EXPECT_EQ(j["ReplicationGroupId"], "myReplGroup");
  EXPECT_FALSE(j.contains("CacheClusterId"));  // empty, so left out as ElastiCache does
  EXPECT_EQ(j["Engine"], "redis");
  EXPECT_EQ(j["EngineVersion"], "7.0.15");
  EXPECT_EQ(j["NumNodeGroups"], 2);
  const nlohmann::json& node = j["NodeSnapshots"][0];
  EXPECT_EQ(node["NodeGroupId"], "0001");
  EXPECT_EQ(node["CacheNodeId"], "0001-001");
  EXPECT_EQ(node["CacheClusterId"], "myReplGroup-0001-001");
  EXPECT_EQ(node["CacheSize"], "5 MB");
  EXPECT_EQ(node["SnapshotCreateTime"], "2026-11-25T01:02:03.456Z");
  EXPECT_EQ(node["NodeGroupConfiguration"]["Slots"], "0-5460,10923");
  EXPECT_EQ(node["File"], "0001.rdb.zst");
  EXPECT_EQ(node["Compression"], "zstd");
  EXPECT_EQ(node["Crc64"], "00ab00cd00ef0012");
  EXPECT_EQ(node["Keyspace"][0], nlohmann::json({{"Db", 0}, {"Keys", 519}, {"Expires", 502}}));
  EXPECT_EQ(j["Gates"][0]["Gate"], "writes-paused");
  EXPECT_EQ(j["Gates"][0]["Node"], "10.0.0.1:7000");
  EXPECT_FALSE(j["Gates"][1].contains("Node"));
  EXPECT_EQ(j["Gates"][1]["Passed"], true);
}

TEST(StorageJsonTest, RefusesBadManifestsWithTheField) {
  // The error of a manifest that must not parse ("" if it parsed after all).
  const auto error_of = [](std::string_view json) {
    const Expected<Snapshot> parsed = SnapshotFromJson(json);
    return parsed.ok() ? std::string() : parsed.error().message();
  };
  std::string error = error_of("{");
  EXPECT_NE(error.find("parse error"), std::string::npos) << error;

  error = error_of(R"({"SnapshotStatus": "available"})");
  EXPECT_NE(error.find("SnapshotName"), std::string::npos) << error;

  nlohmann::json j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  j["NodeSnapshots"][1]["Crc64"] = "12345";
  EXPECT_EQ(error_of(j.dump()), "NodeSnapshots[1].Crc64: expected 16 hex digits");

  j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  j["NodeSnapshots"][0]["Compression"] = "brotli";
  error = error_of(j.dump());
  EXPECT_NE(error.find("NodeSnapshots[0].Compression"), std::string::npos) << error;

  j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  j["NodeSnapshots"][0]["NodeGroupConfiguration"]["Slots"] = "0-16384";
  error = error_of(j.dump());
  EXPECT_NE(error.find("Slots"), std::string::npos) << error;

  j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  j["ManifestVersion"] = 2;
  error = error_of(j.dump());
  EXPECT_NE(error.find("newer finalsnap"), std::string::npos) << error;
}

TEST(StorageJsonTest, CacheSizeAndTimeStrings) {
  EXPECT_EQ(CacheSizeString(0), "0 MB");
  EXPECT_EQ(CacheSizeString((uint64_t{1} << 20) - 1), "0 MB");
  EXPECT_EQ(CacheSizeString((uint64_t{512} << 20) + 5), "512 MB");
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795568523456));
  EXPECT_EQ(SnapshotTimeString(t), "2026-11-25T01:02:03.456Z");

  // A hand-written manifest with only ElastiCache's string form still reads.
  nlohmann::json j = nlohmann::json::parse(SnapshotToJson(FullSnapshot()));
  j["NodeSnapshots"][0].erase("CacheSizeBytes");
  const Expected<Snapshot> s = SnapshotFromJson(j.dump());
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->node_snapshots[0].cache_size, uint64_t{5} << 20);
}

}  // namespace
}  // namespace finalsnap
