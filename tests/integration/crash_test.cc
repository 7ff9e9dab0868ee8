// The fault matrix for finalsnap's own death: the real `finalsnap` binary killed with SIGKILL at
// each phase boundary, exactly there, by a named failpoint (FINALSNAP_FAILPOINT, core/failpoint.h),
// for create-snapshot and delete-cache-cluster of a standalone node and delete-replication-group
// of a primary with a replica; each point five times, followed by `finalsnap recover` (odd runs)
// or straight by the same command again (even runs, which recover first on their own).
//
// After the recovery, every node still running takes writes (no pause left: the pause timeout is
// long, so only CLIENT UNPAUSE lifts it), has the settings it had before (rdbcompression yes,
// repl-diskless-sync-delay 3, never the values the capture set) and its data; no partial
// snapshot, and no snapshot that was not read back, is shown. A delete killed after its point of
// no return (readback passed) is shown as "deleting" and the re-run finishes it; any other one is
// undone and the re-run does it all again. Every final snapshot kept restores to the source's
// DEBUG DIGEST. Nothing of the operations (partial, journal) is left at the end.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "localnode/client.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/storage_entries.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::ProcessResult;
using testing::RedisServer;
using testing::ReplicationGroupFixture;
using testing::RunCommand;
using testing::RunOptions;
using testing::TempDir;

enum class Cmd { kCreateSnapshot, kDeleteCacheCluster, kDeleteReplicationGroup };

struct Case {
  Cmd cmd;
  const char* failpoint;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.cmd == Cmd::kCreateSnapshot       ? "CreateSnapshot_"
                     : info.param.cmd == Cmd::kDeleteCacheCluster ? "DeleteCacheCluster_"
                                                                  : "DeleteReplicationGroup_";
  for (const char* p = info.param.failpoint; *p != '\0'; ++p) {
    name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  }
  return name;
}

// Whether the point lies past the delete's point of no return: the journal says `proven`.
bool PastNoReturn(const char* failpoint) {
  const std::string p = failpoint;
  return p == "store/readback" || p == "destroy/replicas-shutdown";
}

class CrashTest : public ::testing::TestWithParam<Case> {
 protected:
  static constexpr const char* kName = "final-crash";

  void StartNodes() {
    const std::vector<std::pair<std::string, std::string>> config = {
        {"rdbcompression", "yes"}, {"repl-diskless-sync-delay", "3"}};
    if (GetParam().cmd == Cmd::kDeleteReplicationGroup) {
      group_ = std::make_unique<ReplicationGroupFixture>(
          testing::ReplicationGroupOptions{.replicas = 1, .config = config});
      group_->Start();
      nodes_ = group_->nodes();
    } else {
      standalone_ = std::make_unique<RedisServer>(config);
      standalone_->Start();
      nodes_ = {standalone_.get()};
    }
    RedisServer& primary = *nodes_[0];
    ASSERT_TRUE(primary.Command("DEBUG", "POPULATE", 20000, "key", 64).ok());
    if (group_) group_->WaitForReplicasCaughtUp();
    digest_ = primary.Command("DEBUG", "DIGEST").str;
    std::ofstream fleet(dir_ / "finalsnap.toml");
    fleet << "[storage]\npath = \"snapshots\"\n\n[defaults]\npause_timeout_ms = 30000\n\n";
    if (group_) {
      fleet << "[replication_groups.g1]\nendpoints = [";
      for (size_t i = 0; i < nodes_.size(); ++i) {
        fleet << (i ? ", " : "") << "\"127.0.0.1:" << nodes_[i]->port() << "\"";
      }
      fleet << "]\n";
    } else {
      fleet << "[cache_clusters.c1]\nendpoint = \"127.0.0.1:" << nodes_[0]->port() << "\"\n";
    }
  }

  std::vector<std::string> Argv() const {
    std::vector<std::string> a = {FINALSNAP_CLI, "--fleet", dir_ / "finalsnap.toml"};
    switch (GetParam().cmd) {
      case Cmd::kCreateSnapshot:
        a.insert(a.end(),
                 {"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name", kName});
        break;
      case Cmd::kDeleteCacheCluster:
        a.insert(a.end(), {"delete-cache-cluster", "--cache-cluster-id", "c1",
                           "--final-snapshot-identifier", kName, "--yes"});
        break;
      case Cmd::kDeleteReplicationGroup:
        a.insert(a.end(), {"delete-replication-group", "--replication-group-id", "g1",
                           "--final-snapshot-identifier", kName, "--yes"});
        break;
    }
    return a;
  }

  ProcessResult Run(const std::vector<std::string>& argv, const char* failpoint = nullptr) {
    RunOptions options;
    options.env.emplace_back("FINALSNAP_FLEET", std::nullopt);
    options.env.emplace_back("FINALSNAP_FAILPOINT",
                             failpoint ? std::optional<std::string>(failpoint) : std::nullopt);
    options.timeout = milliseconds(60'000);
    return RunCommand(argv, options);
  }

  ProcessResult Cli(std::vector<std::string> args) {
    std::vector<std::string> a = {FINALSNAP_CLI, "--fleet", dir_ / "finalsnap.toml"};
    a.insert(a.end(), args.begin(), args.end());
    return Run(a);
  }

  // A node runs, has the settings it had before the operation and, the primary, takes writes
  // within a second (a paused node would block the SET; a replica refuses every write).
  void ExpectPutBack(RedisServer& node) {
    ASSERT_TRUE(node.Running());
    if (&node == nodes_[0]) {
      Expected<localnode::Context> c =
          localnode::Connect(node.host(), node.port(), milliseconds(2000));
      ASSERT_TRUE(c.ok()) << c.error().message();
      Expected<localnode::Reply> set = localnode::Command(c->get(), {"SET", "probe", "1"});
      ASSERT_TRUE(set.ok() && set->ok()) << "writes are still paused on " << node.port();
      EXPECT_EQ(localnode::Command(c->get(), {"DEL", "probe"})->integer, 1);
    }
    EXPECT_EQ(Config(node, "rdbcompression"), "yes") << node.port();
    EXPECT_EQ(Config(node, "repl-diskless-sync-delay"), "3") << node.port();
  }

  static std::string Config(RedisServer& node, const std::string& name) {
    const auto reply = node.Command("CONFIG", "GET", name);
    return reply.elements.size() == 2 ? reply.elements[1].str : "";
  }

  // The snapshots describe-snapshots lists, with their status.
  std::vector<std::string> Snapshots() {
    ProcessResult r = Cli({"describe-snapshots"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::vector<std::string> out;
    const auto doc = nlohmann::json::parse(r.stdout_text, nullptr, false);
    if (doc.is_discarded()) return out;
    for (const auto& s : doc["Snapshots"]) {
      out.push_back(s["SnapshotName"].get<std::string>() + " " +
                    s["SnapshotStatus"].get<std::string>());
    }
    return out;
  }

  std::string ClusterStatus() {
    ProcessResult r = Cli({"describe-cache-clusters"});
    const auto doc = nlohmann::json::parse(r.stdout_text, nullptr, false);
    if (doc.is_discarded() || doc["CacheClusters"].empty()) return "?";
    return doc["CacheClusters"][0]["CacheClusterStatus"].get<std::string>();
  }

  // The snapshot, restored by the CLI and loaded into a fresh server, has the source's digest.
  void ExpectRestores(int round) {
    const fs::path target = dir_.path() / ("restored-" + std::to_string(round));
    ProcessResult r = Cli({"restore", "--snapshot-name", kName, "--target-dir", target.string()});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    RedisServer loaded({{"dir", target.string()}, {"dbfilename", "dump.rdb"}});
    loaded.Start();
    EXPECT_EQ(loaded.Command("DEBUG", "DIGEST").str, digest_);
  }

  void Round(int round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Case c = GetParam();
    const bool destroys = c.cmd != Cmd::kCreateSnapshot;
    StartNodes();
    if (HasFatalFailure()) return;

    ProcessResult killed = Run(Argv(), c.failpoint);
    ASSERT_EQ(killed.term_signal, SIGKILL)
        << "the failpoint was not reached: " << killed.Describe();

    const bool past = PastNoReturn(c.failpoint);
    if (round % 2 == 1) {
      ProcessResult recovered = Cli({"recover"});
      ASSERT_EQ(recovered.exit_code, 0) << recovered.Describe();
      for (RedisServer* n : nodes_) {
        if (n->Running()) ExpectPutBack(*n);
      }
      // A snapshot is shown only once it was read back; nothing half-made is.
      const bool kept = std::string(c.failpoint) == "store/readback" || past;
      EXPECT_EQ(Snapshots(), kept ? std::vector<std::string>{std::string(kName) + " available"}
                                  : std::vector<std::string>{});
      if (destroys && past) {
        if (c.cmd == Cmd::kDeleteCacheCluster) {
          EXPECT_EQ(ClusterStatus(), "deleting");
        }
        EXPECT_NE(recovered.stdout_text.find("\"PendingDelete\": true"), std::string::npos)
            << recovered.stdout_text;
      }
      // Nothing is left of the operation but, for a pending delete, its journal.
      for (const std::string& e : testing::StorageEntries(dir_.path() / "snapshots")) {
        EXPECT_TRUE(e == kName || (destroys && past && e.rfind(".journal/", 0) == 0)) << e;
      }
    }

    if (destroys || !(std::string(c.failpoint) == "store/readback")) {
      // The same command again: a delete is finished (past its point of no return) or done
      // afresh; a create-snapshot not read back is done afresh.
      ProcessResult again = Run(Argv());
      ASSERT_EQ(again.exit_code, 0) << again.Describe();
      if (destroys && past) {
        EXPECT_NE(again.stdout_text.find("snapshot-available"), std::string::npos)
            << "the re-run did not finish the interrupted delete: " << again.stdout_text;
      }
    } else if (round % 2 == 0) {
      // A create-snapshot killed once its snapshot was proven has nothing to redo: any command
      // that reads the storage or the nodes repairs it first.
      ProcessResult describe = Cli({"describe-cache-clusters"});
      ASSERT_EQ(describe.exit_code, 0) << describe.Describe();
      EXPECT_NE(describe.stderr_text.find("put rdbcompression"), std::string::npos)
          << describe.Describe();
    }
    for (RedisServer* n : nodes_) {
      if (destroys) {
        EXPECT_FALSE(n->Running()) << "node " << n->port() << " was not shut down";
      } else {
        ExpectPutBack(*n);
      }
    }
    EXPECT_EQ(Snapshots(), std::vector<std::string>{std::string(kName) + " available"});
    ExpectRestores(round);
    EXPECT_EQ(testing::StorageEntries(dir_.path() / "snapshots"), std::vector<std::string>{kName});
    group_.reset();
    standalone_.reset();
    nodes_.clear();
    fs::remove_all(dir_.path() / "snapshots");
  }

  TempDir dir_{"finalsnap-crash"};
  std::unique_ptr<ReplicationGroupFixture> group_;
  std::unique_ptr<RedisServer> standalone_;
  std::vector<RedisServer*> nodes_;
  std::string digest_;
};

TEST_P(CrashTest, KilledAtAPhaseBoundaryLosesNothingAndFinishesOnReRun) {
  for (int round = 1; round <= 5 && !HasFatalFailure(); ++round) Round(round);
}

const char* const kPoints[] = {"journal-written", "quiesce/writes-paused", "capture/mid-capture",
                               "store/durable", "store/readback"};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (Cmd cmd : {Cmd::kCreateSnapshot, Cmd::kDeleteCacheCluster, Cmd::kDeleteReplicationGroup}) {
    for (const char* p : kPoints) cases.push_back({cmd, p});
  }
  cases.push_back({Cmd::kDeleteReplicationGroup, "destroy/replicas-shutdown"});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Matrix, CrashTest, ::testing::ValuesIn(Cases()), CaseName);

// Finishing an interrupted delete passes the same preflight gates as any operation, for what is
// left to do.
class ResumeTest : public CrashTest {
 protected:
  void SetUp() override {
    // A delete killed past its point of no return: pending, its node put back and up.
    StartNodes();
    ASSERT_FALSE(HasFatalFailure());
    ProcessResult killed = Run(Argv(), GetParam().failpoint);
    ASSERT_EQ(killed.term_signal, SIGKILL) << killed.Describe();
  }
};

// It is claimed: while another finalsnap holds the node (a connection named finalsnap:<id>), the
// re-run is refused and shuts nothing down; once it is gone, the re-run finishes the delete.
TEST_P(ResumeTest, ASecondFinisherIsRefusedUntilTheFirstIsGone) {
  RedisServer& node = *nodes_[0];
  Expected<localnode::Context> other =
      localnode::Connect(node.host(), node.port(), milliseconds(2000));
  ASSERT_TRUE(other.ok()) << other.error().message();
  ASSERT_TRUE(
      localnode::Command(other->get(), {"CLIENT", "SETNAME", "finalsnap:0123456789abcdef"})->ok());
  ProcessResult refused = Run(Argv());
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_NE(refused.stderr_text.find("InvalidCacheClusterState"), std::string::npos)
      << refused.Describe();
  EXPECT_NE(refused.stderr_text.find("another finalsnap operation: finalsnap:0123456789abcdef"),
            std::string::npos)
      << refused.Describe();
  EXPECT_TRUE(node.Running()) << "the refused re-run shut the node down";
  EXPECT_EQ(ClusterStatus(), "deleting");

  other->reset();
  ProcessResult finished = Run(Argv());
  ASSERT_EQ(finished.exit_code, 0) << finished.Describe();
  EXPECT_NE(finished.stdout_text.find("snapshot-available"), std::string::npos)
      << finished.Describe();
  EXPECT_TRUE(node.WaitForExit(milliseconds(10'000)).has_value());
  EXPECT_EQ(Snapshots(), std::vector<std::string>{std::string(kName) + " available"});
  ExpectRestores(1);
}

// Its permissions are checked again: a user who lost +shutdown since the interruption is refused
// at preflight, the node stays up and the delete stays pending; given it back, the re-run
// finishes.
TEST_P(ResumeTest, AUserWhoLostShutdownIsRefusedBeforeAnythingIsShutDown) {
  RedisServer& node = *nodes_[0];
  ASSERT_TRUE(node.Command("ACL", "SETUSER", "default", "-shutdown").ok());
  ProcessResult refused = Run(Argv());
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_NE(refused.stderr_text.find("gate permissions refused"), std::string::npos)
      << refused.Describe();
  EXPECT_NE(refused.stderr_text.find("NOPERM"), std::string::npos) << refused.Describe();
  EXPECT_NE(refused.stderr_text.find("shutdown"), std::string::npos) << refused.Describe();
  EXPECT_TRUE(node.Running()) << "the refused re-run shut the node down";
  EXPECT_EQ(ClusterStatus(), "deleting");

  ASSERT_TRUE(node.Command("ACL", "SETUSER", "default", "+shutdown").ok());
  ProcessResult finished = Run(Argv());
  ASSERT_EQ(finished.exit_code, 0) << finished.Describe();
  EXPECT_TRUE(node.WaitForExit(milliseconds(10'000)).has_value());
  ExpectRestores(1);
}

INSTANTIATE_TEST_SUITE_P(Resume, ResumeTest,
                         ::testing::Values(Case{Cmd::kDeleteCacheCluster, "store/readback"}),
                         CaseName);

}  // namespace
}  // namespace finalsnap
