// Runs the real `finalsnap` binary against real redis-server processes: create-snapshot,
// describe-snapshots, verify by name, delete-cache-cluster (dry run and real), restore into a
// fresh server, delete-snapshot, the demo, and the aws-CLI-style failures (fault names on
// stderr, exit codes 252 and 254); then the replication-group commands on a primary with a
// replica: describe-replication-groups, describe-cache-clusters of members, create-snapshot
// --replication-group-id, delete-replication-group (dry run and real).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/process.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ProcessResult;
using testing::RedisServer;
using testing::RunCommand;
using testing::RunOptions;

constexpr char kCluster[] = "myCluster";

// Parses stdout, failing the test (not crashing it) when it is not JSON.
json ParseStdout(const ProcessResult& r) {
  try {
    return json::parse(r.stdout_text);
  } catch (const json::parse_error& e) {
    ADD_FAILURE() << "stdout is not JSON: " << e.what() << "\n" << r.Describe();
  }
  return json();
}

// The error line: one line, the aws CLI's prefix, the fault and the operation.
void ExpectError(const ProcessResult& r, const std::string& fault, const std::string& operation) {
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  const std::string prefix =
      "An error occurred (" + fault + ") when calling the " + operation + " operation: ";
  EXPECT_EQ(r.stderr_text.rfind(prefix, 0), 0u) << r.Describe();
  ASSERT_FALSE(r.stderr_text.empty());
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1) << r.Describe();
}

bool AllGatesPassed(const json& gates) {
  if (!gates.is_array() || gates.empty()) return false;
  for (const json& g : gates) {
    if (!g.value("Passed", false)) return false;
  }
  return true;
}

class CliClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/finalsnap-cluster-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    server_.Start();
    // A little of every common type, and keys in two databases.
    ASSERT_TRUE(server_.Command("DEBUG", "POPULATE", 2000, "key", 64).ok());
    ASSERT_FALSE(server_.Command("HSET", "h", "f1", "v1", "f2", "v2").is_error());
    ASSERT_FALSE(server_.Command("RPUSH", "l", "a", "b", "c").is_error());
    ASSERT_FALSE(server_.Command("ZADD", "z", 1, "one", 2, "two").is_error());
    ASSERT_FALSE(server_.Command("XADD", "s", "*", "f", "v").is_error());
    ASSERT_TRUE(server_.Command("SET", "ttl", "v", "EX", 3600).ok());
    WriteFleet("[storage]\npath = \"snapshots\"\n\n[cache_clusters." + std::string(kCluster) +
               "]\nendpoint = \"" + server_.host() + ":" + std::to_string(server_.port()) + "\"\n");
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void WriteFleet(const std::string& text) {
    std::ofstream out(fleet_path());
    out << text;
  }

  std::string fleet_path() const { return (dir_ / "finalsnap.toml").string(); }

  // The CLI with this test's fleet file; $FINALSNAP_FLEET is cleared so that the caller's
  // environment cannot point it elsewhere.
  ProcessResult Cli(std::vector<std::string> args, bool with_fleet = true) {
    if (with_fleet) args.insert(args.begin(), {"--fleet", fleet_path()});
    args.insert(args.begin(), FINALSNAP_CLI);
    RunOptions options;
    options.env.emplace_back("FINALSNAP_FLEET", std::nullopt);
    options.timeout = std::chrono::milliseconds(60'000);
    return RunCommand(args, options);
  }

  // True when the server answers PING and takes a write within two seconds (a write left
  // paused would block past that).
  bool AnswersAndWritable() {
    try {
      auto c = testing::ConnectTo(server_.host(), server_.port(), std::chrono::milliseconds(2000));
      return testing::Execute(c.get(), {"PING"}).str == "PONG" &&
             testing::Execute(c.get(), {"SET", "probe", "1"}).ok() &&
             testing::Execute(c.get(), {"DEL", "probe"}).integer == 1;
    } catch (const std::exception&) {
      return false;
    }
  }

  long long DbSize(RedisServer& server) { return server.Command("DBSIZE").integer; }

  fs::path dir_;
  RedisServer server_;
};

TEST_F(CliClusterTest, CreateSnapshotKeepsTheNodeRunningAndIsListed) {
  const long long dbsize = DbSize(server_);
  ProcessResult r =
      Cli({"create-snapshot", "--cache-cluster-id", "MYCLUSTER", "--snapshot-name", "s1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc["Snapshot"]["SnapshotName"], "s1");
  EXPECT_EQ(doc["Snapshot"]["SnapshotStatus"], "available");
  EXPECT_EQ(doc["Snapshot"]["CacheClusterId"], kCluster);
  EXPECT_TRUE(AllGatesPassed(doc["Gates"])) << doc["Gates"].dump(2);
  EXPECT_TRUE(doc["Notes"].is_array());
  EXPECT_TRUE(AnswersAndWritable()) << "the node must keep running, unpaused";
  EXPECT_EQ(DbSize(server_), dbsize);

  // describe-snapshots: all, by name (any case), by cluster, and a miss.
  r = Cli({"describe-snapshots"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json list = ParseStdout(r)["Snapshots"];
  ASSERT_EQ(list.size(), 1u) << r.Describe();
  EXPECT_EQ(list[0]["SnapshotName"], "s1");
  EXPECT_EQ(list[0]["SnapshotStatus"], "available");
  r = Cli({"describe-snapshots", "--snapshot-name", "S1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ParseStdout(r)["Snapshots"].size(), 1u);
  r = Cli({"describe-snapshots", "--cache-cluster-id", "mycluster"});
  EXPECT_EQ(ParseStdout(r)["Snapshots"].size(), 1u) << r.Describe();
  r = Cli({"describe-snapshots", "--cache-cluster-id", "other"});
  EXPECT_EQ(ParseStdout(r)["Snapshots"].size(), 0u) << r.Describe();
  ExpectError(Cli({"describe-snapshots", "--snapshot-name", "nope"}), "SnapshotNotFoundFault",
              "DescribeSnapshots");
  r = Cli({"--output", "text", "describe-snapshots"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stdout_text.find("SNAPSHOTS\t"), std::string::npos) << r.Describe();

  // verify by name: the files check out and match the manifest's CRC-64.
  r = Cli({"verify", "s1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json verified = ParseStdout(r);
  EXPECT_EQ(verified["SnapshotName"], "s1");
  EXPECT_EQ(verified["Valid"], true);
  ASSERT_EQ(verified["Files"].size(), 1u);
  EXPECT_EQ(verified["Files"][0]["MatchesManifest"], true);

  // The same name again is taken, and the node is still left running.
  ExpectError(Cli({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "S1"}),
              "SnapshotAlreadyExistsFault", "CreateSnapshot");
  ExpectError(
      Cli({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "bad_name!"}),
      "InvalidParameterValue", "CreateSnapshot");
  EXPECT_TRUE(AnswersAndWritable());

  // delete-snapshot answers with the snapshot, status "deleting"; then it is gone.
  r = Cli({"delete-snapshot", "--snapshot-name", "s1", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ParseStdout(r)["Snapshot"]["SnapshotStatus"], "deleting");
  ExpectError(Cli({"delete-snapshot", "--snapshot-name", "s1", "--yes"}), "SnapshotNotFoundFault",
              "DeleteSnapshot");
  r = Cli({"describe-snapshots"});
  EXPECT_EQ(ParseStdout(r)["Snapshots"].size(), 0u) << r.Describe();
}

TEST_F(CliClusterTest, VerifyByNameFailsWhenTheManifestCrcDiffers) {
  ASSERT_EQ(
      Cli({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "s1"}).exit_code,
      0);
  const fs::path manifest = dir_ / "snapshots" / "s1" / "manifest.json";
  json m = json::parse(std::ifstream(manifest));
  std::string crc = m["NodeSnapshots"][0]["Crc64"];
  crc.back() = crc.back() == '0' ? '1' : '0';
  m["NodeSnapshots"][0]["Crc64"] = crc;
  std::ofstream(manifest) << m.dump(2);

  const ProcessResult r = Cli({"verify", "s1"});
  ExpectError(r, "InvalidSnapshotState", "Verify");
  EXPECT_NE(r.stderr_text.find("differs from the manifest"), std::string::npos) << r.Describe();
  EXPECT_EQ(ParseStdout(r)["Files"][0]["MatchesManifest"], false);
}

TEST_F(CliClusterTest, DeleteWithFinalSnapshotThenRestore) {
  const long long dbsize = DbSize(server_);

  // A dry run runs the preflight gates and changes nothing.
  ProcessResult r = Cli({"delete-cache-cluster", "--cache-cluster-id", kCluster,
                         "--final-snapshot-identifier", "final", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json doc = ParseStdout(r);
  EXPECT_EQ(doc["DryRun"], true);
  EXPECT_FALSE(doc["Plan"].empty());
  EXPECT_TRUE(AllGatesPassed(doc["Gates"])) << r.Describe();
  EXPECT_FALSE(fs::exists(dir_ / "snapshots" / "final"));
  EXPECT_TRUE(AnswersAndWritable());
  EXPECT_EQ(DbSize(server_), dbsize);

  // Without a terminal there is no prompt: --yes says the delete is meant.
  r = Cli({"delete-cache-cluster", "--cache-cluster-id", kCluster, "--final-snapshot-identifier",
           "final", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  doc = ParseStdout(r);
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterId"], kCluster);
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterStatus"], "deleted");
  EXPECT_EQ(doc["CacheCluster"]["NumCacheNodes"], 1);
  EXPECT_EQ(doc["CacheCluster"]["ConfigurationEndpoint"]["Port"], server_.port());
  EXPECT_EQ(doc["Snapshot"]["SnapshotName"], "final");
  EXPECT_EQ(doc["Snapshot"]["SnapshotStatus"], "available");
  EXPECT_TRUE(AllGatesPassed(doc["Gates"])) << doc["Gates"].dump(2);
  EXPECT_EQ(doc["Gates"].back()["Gate"], "nodes-shutdown");

  // The node is gone: the process exited and the port refuses connections.
  EXPECT_TRUE(server_.WaitForExit().has_value());
  EXPECT_THROW(testing::ConnectTo(server_.host(), server_.port(), std::chrono::milliseconds(1000)),
               std::runtime_error);

  // Restore writes a dump.rdb that a fresh server loads, with the same keys.
  const fs::path target = dir_ / "restore";
  r = Cli({"restore", "--snapshot-name", "FINAL", "--target-dir", target.string()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  doc = ParseStdout(r);
  EXPECT_EQ(doc["SnapshotName"], "final");
  ASSERT_EQ(doc["Files"].size(), 1u);
  EXPECT_EQ(doc["Files"][0], (target / "dump.rdb").string());
  EXPECT_GT(doc["RdbBytes"].get<uint64_t>(), 0u);
  // A second restore to the same place never overwrites.
  ExpectError(Cli({"restore", "--snapshot-name", "final", "--target-dir", target.string()}),
              "InvalidParameterValue", "Restore");
  ExpectError(Cli({"restore", "--snapshot-name", "final", "--endpoint", "127.0.0.1:1"}),
              "InvalidParameterCombination", "Restore");
  ExpectError(Cli({"restore", "--snapshot-name", "nope", "--target-dir", target.string()}),
              "SnapshotNotFoundFault", "Restore");

  RedisServer restored({{"dir", target.string()}, {"dbfilename", "dump.rdb"}});
  restored.Start();
  EXPECT_EQ(DbSize(restored), dbsize);
  EXPECT_EQ(restored.Command("HGET", "h", "f2").str, "v2");
  EXPECT_GT(restored.Command("TTL", "ttl").integer, 0);
}

TEST_F(CliClusterTest, RefusalsNameTheFault) {
  ExpectError(Cli({"delete-cache-cluster", "--cache-cluster-id", "nope", "--yes"}),
              "CacheClusterNotFound", "DeleteCacheCluster");
  ExpectError(Cli({"create-snapshot", "--cache-cluster-id", "nope", "--snapshot-name", "s1"}),
              "CacheClusterNotFound", "CreateSnapshot");
  ExpectError(Cli({"describe-cache-clusters", "--cache-cluster-id", "nope"}),
              "CacheClusterNotFound", "DescribeCacheClusters");
  ExpectError(Cli({"create-snapshot", "--replication-group-id", "rg", "--snapshot-name", "s1"}),
              "ReplicationGroupNotFoundFault", "CreateSnapshot");

  // describe-cache-clusters sees the live node. (Asked before any snapshot: for a moment after
  // one the server still reports its fork child, and the status is "snapshotting".)
  ProcessResult r = Cli({"describe-cache-clusters"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json doc = ParseStdout(r);
  ASSERT_EQ(doc["CacheClusters"].size(), 1u);
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available");
  EXPECT_EQ(doc["CacheClusters"][0]["Engine"], "redis");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheNodes"][0]["CacheNodeId"], "0001");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Port"], server_.port());

  // A refused delete prints its gates, leaves the node running and names the gate.
  ASSERT_EQ(Cli({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "taken"})
                .exit_code,
            0);
  r = Cli({"delete-cache-cluster", "--cache-cluster-id", kCluster, "--final-snapshot-identifier",
           "taken", "--yes"});
  ExpectError(r, "SnapshotAlreadyExistsFault", "DeleteCacheCluster");
  EXPECT_NE(r.stderr_text.find("snapshot-name-free"), std::string::npos) << r.Describe();
  doc = ParseStdout(r);
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterStatus"], "available");
  EXPECT_EQ(doc["Gates"].back()["Gate"], "snapshot-name-free");
  EXPECT_EQ(doc["Gates"].back()["Passed"], false);
  EXPECT_TRUE(AnswersAndWritable());
}

TEST_F(CliClusterTest, BadCommandLinesAndFleetFiles) {
  EXPECT_EQ(Cli({"delete-cache-cluster"}).exit_code, 252);
  EXPECT_EQ(Cli({"create-snapshot", "--cache-cluster-id", kCluster}).exit_code, 252);
  EXPECT_EQ(Cli({"create-snapshot", "--snapshot-name", "s1"}).exit_code, 252);
  EXPECT_EQ(Cli({"restore", "--snapshot-name", "s1"}).exit_code, 252);
  EXPECT_EQ(Cli({"delete-snapshot"}).exit_code, 252);

  // A typo in the fleet file is refused with its place, and nothing is touched.
  WriteFleet("[storage]\npath = \"snapshots\"\n\n[cache_clusters.c]\nendpont = \"127.0.0.1:1\"\n");
  ProcessResult r = Cli({"describe-snapshots"});
  ExpectError(r, "InvalidParameterValue", "DescribeSnapshots");
  EXPECT_NE(r.stderr_text.find("finalsnap.toml:5:"), std::string::npos) << r.Describe();
  EXPECT_NE(r.stderr_text.find("endpont"), std::string::npos) << r.Describe();
  r = Cli({"delete-cache-cluster", "--cache-cluster-id", "c"});
  ExpectError(r, "InvalidParameterValue", "DeleteCacheCluster");
  EXPECT_TRUE(AnswersAndWritable());

  // A missing fleet file says so; verify of a real path still needs none.
  r = Cli({"describe-snapshots"}, /*with_fleet=*/false);
  ExpectError(r, "InvalidParameterValue", "DescribeSnapshots");
}

TEST_F(CliClusterTest, DemoRoundTripsItsData) {
  // JSON for scripts on stdout when --output is given; the narrative moves to stderr.
  const ProcessResult r = Cli({"--output", "json", "demo", "--size-mb", "2"}, false);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json doc = ParseStdout(r);
  EXPECT_EQ(doc["Demo"]["DataIdentical"], true);
  EXPECT_EQ(doc["Demo"]["DigestBefore"], doc["Demo"]["DigestAfter"]);
  EXPECT_GT(doc["Demo"]["KeysBefore"].get<uint64_t>(), 1000u);
  EXPECT_TRUE(AllGatesPassed(doc["Gates"]));
  EXPECT_NE(r.stderr_text.find("data identical: yes"), std::string::npos) << r.Describe();
}

// --- Replication groups ------------------------------------------------------------------------

class CliGroupTest : public CliClusterTest {
 protected:
  void SetUp() override {
    CliClusterTest::SetUp();
    group_.Start();
    ASSERT_TRUE(group_.primary().Command("DEBUG", "POPULATE", 1000, "g", 32).ok());
    group_.WaitForReplicasCaughtUp();
    WriteFleet("[storage]\npath = \"snapshots\"\n\n[replication_groups.myReplGroup]\n"
               "endpoints = [\"127.0.0.1:" + std::to_string(group_.replica(0).port()) + "\"]\n");
  }
  testing::ReplicationGroupFixture group_{{.replicas = 1}};
};

TEST_F(CliGroupTest, DescribeShowsTheGroupAndItsMembers) {
  ProcessResult r = Cli({"describe-replication-groups"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json groups = ParseStdout(r)["ReplicationGroups"];
  ASSERT_EQ(groups.size(), 1u) << r.Describe();
  EXPECT_EQ(groups[0]["ReplicationGroupId"], "myReplGroup");
  EXPECT_EQ(groups[0]["Status"], "available");
  EXPECT_EQ(groups[0]["MemberClusters"], json({"myReplGroup-001", "myReplGroup-002"}));
  const json members = groups[0]["NodeGroups"][0]["NodeGroupMembers"];
  ASSERT_EQ(members.size(), 2u);
  int primaries = 0;
  for (const json& m : members) {
    primaries += m["CurrentRole"] == "primary";
    EXPECT_EQ(m["ReadEndpoint"]["Address"], "127.0.0.1");
  }
  EXPECT_EQ(primaries, 1);

  r = Cli({"describe-cache-clusters", "--cache-cluster-id", "MYREPLGROUP-002"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const json clusters = ParseStdout(r)["CacheClusters"];
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0]["ReplicationGroupId"], "myReplGroup");

  ExpectError(Cli({"describe-replication-groups", "--replication-group-id", "nope"}),
              "ReplicationGroupNotFoundFault", "DescribeReplicationGroups");
  ExpectError(Cli({"delete-replication-group", "--replication-group-id", "nope", "--yes"}),
              "ReplicationGroupNotFoundFault", "DeleteReplicationGroup");
  ExpectError(Cli({"delete-cache-cluster", "--cache-cluster-id", "myReplGroup-009", "--yes"}),
              "CacheClusterNotFound", "DeleteCacheCluster");
}

TEST_F(CliGroupTest, SnapshotThenDeleteTheGroup) {
  ProcessResult r = Cli({"create-snapshot", "--replication-group-id", "myreplgroup",
                         "--snapshot-name", "g1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json doc = ParseStdout(r);
  EXPECT_EQ(doc["Snapshot"]["ReplicationGroupId"], "myReplGroup");
  EXPECT_TRUE(AllGatesPassed(doc["Gates"])) << doc["Gates"].dump(2);

  // The dry run names every step, the replica's shutdown before the primary's.
  r = Cli({"delete-replication-group", "--replication-group-id", "myReplGroup",
           "--final-snapshot-identifier", "bkup-20150515-final", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::string plan = ParseStdout(r)["Plan"].dump();
  const size_t replica = plan.find(std::to_string(group_.replica(0).port()) + " (replica)");
  const size_t primary = plan.find(std::to_string(group_.primary().port()) + " (primary)");
  ASSERT_NE(replica, std::string::npos) << plan;
  ASSERT_NE(primary, std::string::npos) << plan;
  EXPECT_LT(replica, primary) << plan;
  EXPECT_TRUE(group_.primary().Running());

  // Taken name: refused before anything is touched.
  ExpectError(Cli({"delete-replication-group", "--replication-group-id", "myReplGroup",
                   "--final-snapshot-identifier", "g1", "--yes"}),
              "SnapshotAlreadyExistsFault", "DeleteReplicationGroup");
  EXPECT_TRUE(group_.primary().Running());

  r = Cli({"delete-replication-group", "--replication-group-id", "myReplGroup",
           "--final-snapshot-identifier", "bkup-20150515-final", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  doc = ParseStdout(r);
  EXPECT_EQ(doc["ReplicationGroup"]["Status"], "deleted");
  EXPECT_EQ(doc["Snapshot"]["SnapshotStatus"], "available");
  EXPECT_EQ(doc["Snapshot"]["FinalSnapshotOf"], "delete-replication-group");
  EXPECT_TRUE(group_.replica(0).WaitForExit(std::chrono::milliseconds(10'000)).has_value());
  EXPECT_TRUE(group_.primary().WaitForExit(std::chrono::milliseconds(10'000)).has_value());

  r = Cli({"restore", "--snapshot-name", "bkup-20150515-final", "--target-dir",
           (dir_ / "restored").string()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(fs::is_regular_file(dir_ / "restored" / "dump.rdb"));
}

}  // namespace
}  // namespace finalsnap
