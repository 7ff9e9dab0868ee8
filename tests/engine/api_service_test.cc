// The API server's pieces below HTTP and above the wire format (api_query_test.cc has that and
// the shapes): the persisted registry (engine/api/api_state.h) and the actions' table, parameter
// handling and paging (engine/api/api_service.h), called directly. Snapshots come from a real
// SnapshotStore on disk; the fleet's node is not running (a describe sees it refuse
// connections), which is all these cases need.
#include "api_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "api_state.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "query_api.h"
#include "support/temp_dir.h"

namespace finalsnap::detail {
namespace {

namespace fs = std::filesystem;
using finalsnap::testing::TempDir;

unsigned Mode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// ---- The registry ----

ApiOperation DeleteOp(const std::string& id, const std::string& snapshot) {
  ApiOperation op;
  op.action = "DeleteCacheCluster";
  op.source_type = kSourceCacheCluster;
  op.target_id = id;
  op.identity = "127.0.0.1:6379";
  op.snapshot_name = snapshot;
  return op;
}

std::unique_ptr<ApiState> OpenState(const fs::path& dir) {
  auto opened = ApiState::Open(dir);
  if (!opened.ok()) {
    ADD_FAILURE() << opened.error().message();
    return nullptr;
  }
  return std::move(opened).value();
}

TEST(ApiStateTest, ItsDirectoryAndFilesHaveTheirModesWhateverTheUmask) {
  TempDir dir("finalsnap-api-state");
  const mode_t old = ::umask(0);
  std::unique_ptr<ApiState> state = OpenState(dir.path() / "parent" / "state");
  ::umask(old);
  ASSERT_NE(state, nullptr);
  auto mode = [](const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(dir.path() / "parent"), 0755u);
  EXPECT_EQ(mode(dir.path() / "parent" / "state"), 0700u);
  EXPECT_EQ(mode(dir.path() / "parent" / "state" / ".lock"), 0600u);
}

TEST(ApiStateTest, RefusesConflictsAtomically) {
  TempDir dir("finalsnap-api-state");
  std::unique_ptr<ApiState> state = OpenState(dir.path() / "state");
  ASSERT_NE(state, nullptr);
  auto first = state->Begin(DeleteOp("myRedisCluster", "bkup"), "accepted");
  ASSERT_TRUE(first.ok());
  const ApiOperation op = *first;
  EXPECT_EQ(op.status, "running");
  // The same cluster in another case, and the same snapshot name for another cluster.
  auto again = state->Begin(DeleteOp("MYREDISCLUSTER", ""), "accepted");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "InvalidCacheClusterState");
  auto name = state->Begin(DeleteOp("other", "BKUP"), "accepted");
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.error().code, "SnapshotAlreadyExistsFault");
  ApiOperation group = DeleteOp("myReplGroup", "");
  group.action = "DeleteReplicationGroup";
  group.source_type = kSourceReplicationGroup;
  ASSERT_TRUE(state->Begin(group, "accepted").ok());
  auto group_again = state->Begin(group, "accepted");
  ASSERT_FALSE(group_again.ok());
  EXPECT_EQ(group_again.error().code, "InvalidReplicationGroupState");

  EXPECT_EQ(state->Running(kSourceCacheCluster, "myrediscluster")->id, op.id);
  EXPECT_EQ(state->RunningForSnapshot("Bkup")->id, op.id);

  // A refusal: the gate that refused is in the events, and the cluster is not deleted.
  OperationResult refused;
  refused.fault = "InvalidCacheClusterState";
  refused.failed_gate = "rdb-checksum";
  refused.message = "CRC-64 mismatch";
  refused.gates.push_back(GateVerdict{"target-resolved", "preflight", true, "answered", "n", 1});
  refused.gates.push_back(GateVerdict{"rdb-checksum", "capture", false, "mismatch", "n", 5});
  state->Finish(op.id, refused);
  EXPECT_FALSE(state->Running(kSourceCacheCluster, "myRedisCluster").has_value());
  EXPECT_FALSE(state->IsDeleted(kSourceCacheCluster, "myRedisCluster", "127.0.0.1:6379"));
  const std::vector<ApiEvent> events = state->Events();
  ASSERT_GE(events.size(), 4u);
  EXPECT_NE(events.back().message.find("refused at gate rdb-checksum"), std::string::npos)
      << events.back().message;
  EXPECT_NE(events.back().message.find("available again"), std::string::npos);
  EXPECT_NE(events[events.size() - 2].message.find("Gate rdb-checksum (capture) REFUSED"),
            std::string::npos);

  // Now a success: the cluster is deleted (this incarnation only).
  auto retry = state->Begin(DeleteOp("myRedisCluster", "bkup"), "accepted");
  ASSERT_TRUE(retry.ok());
  OperationResult ok;
  ok.ok = true;
  state->Finish(retry->id, ok);
  EXPECT_TRUE(state->IsDeleted(kSourceCacheCluster, "MyRedisCluster", "127.0.0.1:6379"));
  EXPECT_FALSE(state->IsDeleted(kSourceCacheCluster, "myRedisCluster", "127.0.0.1:6380"));
  auto after = state->Begin(DeleteOp("myRedisCluster", ""), "accepted");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, "CacheClusterNotFound");
}

TEST(ApiStateTest, SurvivesARestartAndReportsRunningOperationsAsInterrupted) {
  TempDir dir("finalsnap-api-state");
  const fs::path path = dir.path() / "state";
  std::string running_id;
  {
    std::unique_ptr<ApiState> state = OpenState(path);
    ASSERT_NE(state, nullptr);
    // A second server on the same state is locked out.
    auto second = ApiState::Open(path);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message().find("another finalsnap serve"), std::string::npos);

    auto done = state->Begin(DeleteOp("gone", ""), "accepted");
    OperationResult ok;
    ok.ok = true;
    state->Finish(done->id, ok);
    auto running = state->Begin(DeleteOp("myRedisCluster", "bkup"), "accepted");
    running_id = running->id;
    // The server "crashes" here: the operation never finishes.
  }
  EXPECT_EQ(Mode(path), 0700u);
  std::unique_ptr<ApiState> state = OpenState(path);
  ASSERT_NE(state, nullptr);
  ASSERT_EQ(state->recovered().size(), 1u);
  EXPECT_NE(state->recovered()[0].find(running_id), std::string::npos);
  EXPECT_TRUE(state->Running().empty());
  EXPECT_TRUE(state->IsDeleted(kSourceCacheCluster, "gone", "127.0.0.1:6379"));
  // Interrupted is not done: the cluster is not deleted and can be acted on again.
  EXPECT_FALSE(state->IsDeleted(kSourceCacheCluster, "myRedisCluster", "127.0.0.1:6379"));
  const std::vector<ApiEvent> events = state->Events();
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back().message.find("was interrupted"), std::string::npos);
  EXPECT_NE(events.back().message.find("outcome is unknown"), std::string::npos);
  EXPECT_TRUE(state->Begin(DeleteOp("myRedisCluster", "bkup"), "accepted").ok());
  // Sequence numbers keep increasing across the restart.
  for (size_t i = 1; i < state->Events().size(); ++i) {
    EXPECT_LT(state->Events()[i - 1].seq, state->Events()[i].seq);
  }
}

TEST(ApiStateTest, RefusesACorruptStateFile) {
  TempDir dir("finalsnap-api-state");
  fs::create_directories(dir.path() / "state");
  std::ofstream(dir.path() / "state" / "state.json") << "{not json";
  auto opened = ApiState::Open(dir.path() / "state");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message().find("state.json"), std::string::npos);
}

// ---- The actions, without HTTP ----

class ApiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Port 1 on loopback refuses connections at once: describes see an unreachable node.
    const std::string toml =
        "[storage]\npath = \"snapshots\"\n\n[cache_clusters.myRedisCluster]\n"
        "endpoint = \"127.0.0.1:1\"\nconnect_timeout_ms = 500\n";
    auto parsed = ParseFleet(toml, dir_.path() / "finalsnap.toml");
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    fleet_ = *parsed;
    std::unique_ptr<ApiState> state = OpenState(dir_.path() / "state");
    ASSERT_NE(state, nullptr);
    service_ = std::make_unique<ApiService>(fleet_, std::move(state), nullptr, nullptr);
  }

  // Answers a form-encoded request; returns {status, body}.
  std::pair<int, std::string> Call(const std::string& form) {
    QueryParams params;
    if (Expected<void, ApiError> e = params.AddForm(form); !e.ok()) {
      return {e.error().http_status, e.error().code};
    }
    ApiService::Answer a = service_->Handle(std::move(params), "rid", Caller{"AKID", "us-west-2"});
    return {a.response.status, a.response.body};
  }

  void CommitSnapshot(SnapshotStore& store, const std::string& name) {
    Snapshot s;
    s.snapshot_name = name;
    s.cache_cluster_id = "myRedisCluster";
    s.engine = "redis";
    auto begun = store.Begin(s);
    ASSERT_TRUE(begun.ok()) << begun.error().message();
    ASSERT_TRUE((*begun)->Commit(s, nullptr).ok());
  }

  static std::string Between(const std::string& s, const std::string& open,
                             const std::string& close) {
    const size_t a = s.find(open);
    if (a == std::string::npos) return "";
    const size_t b = s.find(close, a + open.size());
    return s.substr(a + open.size(), b - a - open.size());
  }

  static int Count(const std::string& s, const std::string& what) {
    int n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  }

  TempDir dir_{"finalsnap-api-service"};
  Fleet fleet_;
  std::unique_ptr<ApiService> service_;
};

TEST_F(ApiServiceTest, RefusesBadRequestsWithTheMatchingErrors) {
  const std::string v = "&Version=2015-02-02";
  auto expect = [&](const std::string& form, int status, const std::string& code) {
    auto [s, body] = Call(form);
    EXPECT_EQ(s, status) << form << "\n" << body;
    EXPECT_NE(body.find("<Code>" + code + "</Code>"), std::string::npos) << form << "\n" << body;
  };
  expect("Version=2015-02-02", 400, "MissingAction");
  expect("Action=RebootCacheCluster" + v, 400, "InvalidAction");
  expect("Action=DescribeSnapshots", 400, "MissingParameter");
  expect("Action=DescribeSnapshots&Version=2012-01-01", 400, "NoSuchVersion");
  expect("Action=DescribeSnapshots&Bogus=1" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeSnapshots&MaxRecords=19" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeSnapshots&MaxRecords=51" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeSnapshots&SnapshotSource=mine" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeSnapshots&SnapshotName=nope" + v, 404, "SnapshotNotFoundFault");
  expect("Action=DeleteCacheCluster" + v, 400, "MissingParameter");
  expect("Action=DeleteCacheCluster&CacheClusterId=nope" + v, 404, "CacheClusterNotFound");
  expect("Action=DeleteCacheCluster&CacheClusterId=myRedisCluster&FinalSnapshotIdentifier=a_b" + v,
         400, "InvalidParameterValue");
  expect("Action=DeleteCacheCluster&CacheClusterId=myRedisCluster&FinalSnapshotIdentifer=a" + v,
         400, "InvalidParameterValue");
  expect("Action=DeleteReplicationGroup&ReplicationGroupId=nope" + v, 404,
         "ReplicationGroupNotFoundFault");
  expect("Action=DeleteReplicationGroup&ReplicationGroupId=g&RetainPrimaryCluster=maybe" + v, 400,
         "InvalidParameterValue");
  expect("Action=CreateSnapshot&SnapshotName=s" + v, 400, "InvalidParameterCombination");
  expect("Action=CreateSnapshot&SnapshotName=s&CacheClusterId=a&ReplicationGroupId=b" + v, 400,
         "InvalidParameterCombination");
  expect("Action=CreateSnapshot&SnapshotName=s&CacheClusterId=nope" + v, 404,
         "CacheClusterNotFound");
  expect("Action=CreateSnapshot&SnapshotName=s&CacheClusterId=myRedisCluster&KmsKeyId=k" + v, 400,
         "InvalidParameterValue");
  expect("Action=DeleteSnapshot&SnapshotName=nope" + v, 404, "SnapshotNotFoundFault");
  expect("Action=DescribeCacheClusters&CacheClusterId=nope" + v, 404, "CacheClusterNotFound");
  expect("Action=DescribeReplicationGroups&ReplicationGroupId=nope" + v, 404,
         "ReplicationGroupNotFoundFault");
  expect("Action=DescribeEvents&SourceType=cluster" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeEvents&StartTime=yesterday" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeEvents&Marker=zz" + v, 400, "InvalidParameterValue");
  expect("Action=DescribeEvents&StartTime=2030-01-01T00:00:00Z&EndTime=2029-01-01T00:00:00Z" + v,
         400, "InvalidParameterCombination");
}

// Every string, number, boolean and time parameter of every action, given empty or blank, is
// refused with InvalidParameterValue before the action does anything: giving a parameter means
// "I want this", so FinalSnapshotIdentifier= is never "no final snapshot" and CacheClusterId=
// never "every cluster". Each base request is valid on its own (or fails only later, for a
// reason other than the blank value), so the refusal seen is the blank value's.
// One table routes every action: the InvalidAction message lists what it holds, and the server
// asks it which actions may wait on nodes.
TEST_F(ApiServiceTest, RoutesEveryActionThroughOneTable) {
  auto [status, body] = Call("Action=RebootCacheCluster&Version=2015-02-02");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("(finalsnap serves DeleteCacheCluster, DeleteReplicationGroup, "
                      "CreateSnapshot, DescribeSnapshots, DeleteSnapshot, DescribeCacheClusters, "
                      "DescribeReplicationGroups and DescribeEvents)."),
            std::string::npos)
      << body;
  // Action names compare exactly, as AWS compares them.
  EXPECT_EQ(Call("Action=describesnapshots&Version=2015-02-02").first, 400);
  EXPECT_EQ(ApiService::FindAction("describesnapshots"), nullptr);
  for (const char* action : {"DeleteCacheCluster", "DeleteReplicationGroup", "CreateSnapshot",
                             "DescribeCacheClusters", "DescribeReplicationGroups"}) {
    EXPECT_TRUE(ApiService::TalksToNodes(action)) << action;
  }
  for (const char* action :
       {"DescribeSnapshots", "DeleteSnapshot", "DescribeEvents", "RebootCacheCluster", ""}) {
    EXPECT_FALSE(ApiService::TalksToNodes(action)) << action;
  }
  // Exactly the three that start an operation say how it runs.
  for (const char* action : {"DeleteCacheCluster", "DeleteReplicationGroup", "CreateSnapshot"}) {
    ASSERT_NE(ApiService::FindAction(action), nullptr) << action;
    EXPECT_NE(ApiService::FindAction(action)->run, nullptr) << action;
  }
  for (const char* action : {"DescribeSnapshots", "DeleteSnapshot", "DescribeCacheClusters",
                             "DescribeReplicationGroups", "DescribeEvents"}) {
    ASSERT_NE(ApiService::FindAction(action), nullptr) << action;
    EXPECT_EQ(ApiService::FindAction(action)->run, nullptr) << action;
  }
  // The answer names its action and error code for the log, without reading the XML back.
  QueryParams params;
  ASSERT_TRUE(params.AddForm("Action=DeleteSnapshot&Version=2015-02-02&SnapshotName=nope").ok());
  ApiService::Answer answer = service_->Handle(std::move(params), "rid", Caller{"AKID", "r"});
  EXPECT_EQ(answer.action, "DeleteSnapshot");
  EXPECT_EQ(answer.error_code, "SnapshotNotFoundFault");
  EXPECT_EQ(answer.response.status, 404);
  // Parameters a model defines but finalsnap does not implement are refused by name.
  auto [tags_status, tags] = Call(
      "Action=CreateSnapshot&Version=2015-02-02&SnapshotName=s&CacheClusterId=myRedisCluster&"
      "Tags.Tag.1.Key=k&Tags.Tag.1.Value=v");
  EXPECT_EQ(tags_status, 400);
  EXPECT_NE(tags.find("Tags are not supported on snapshots."), std::string::npos) << tags;
  auto [kms_status, kms] = Call(
      "Action=CreateSnapshot&Version=2015-02-02&SnapshotName=s&CacheClusterId=myRedisCluster&"
      "KmsKeyId=k");
  EXPECT_EQ(kms_status, 400);
  EXPECT_NE(kms.find("KmsKeyId is not supported"), std::string::npos) << kms;
  EXPECT_FALSE(fs::exists(fleet_.storage.path / "s"));
}

TEST_F(ApiServiceTest, RefusesEveryParameterGivenEmptyOrBlank) {
  struct Case {
    std::string action;
    std::string base;  // a request that gets past parameter checks
    std::vector<std::string> parameters;
  };
  const std::vector<Case> cases = {
      {"DeleteCacheCluster", "CacheClusterId=myRedisCluster",
       {"CacheClusterId", "FinalSnapshotIdentifier"}},
      {"DeleteReplicationGroup", "ReplicationGroupId=g",
       {"ReplicationGroupId", "FinalSnapshotIdentifier", "RetainPrimaryCluster"}},
      {"CreateSnapshot", "SnapshotName=s&CacheClusterId=myRedisCluster",
       {"SnapshotName", "CacheClusterId", "ReplicationGroupId"}},
      {"DeleteSnapshot", "SnapshotName=s", {"SnapshotName"}},
      {"DescribeSnapshots", "",
       {"SnapshotName", "CacheClusterId", "ReplicationGroupId", "SnapshotSource", "Marker",
        "MaxRecords", "ShowNodeGroupConfig"}},
      {"DescribeCacheClusters", "",
       {"CacheClusterId", "Marker", "MaxRecords", "ShowCacheNodeInfo",
        "ShowCacheClustersNotInReplicationGroups"}},
      {"DescribeReplicationGroups", "", {"ReplicationGroupId", "Marker", "MaxRecords"}},
      {"DescribeEvents", "",
       {"SourceIdentifier", "SourceType", "StartTime", "EndTime", "Duration", "MaxRecords",
        "Marker"}},
  };
  // Empty, a space, spaces and a tab, a newline (form-encoded).
  const std::vector<std::string> blanks = {"", "+", "++%09", "%0A", "%20%0D%0A"};
  for (const Case& c : cases) {
    for (const std::string& parameter : c.parameters) {
      for (const std::string& blank : blanks) {
        // The base without this parameter, then the parameter with the blank value.
        std::string form = "Action=" + c.action + "&Version=2015-02-02";
        std::stringstream base(c.base);
        for (std::string pair; std::getline(base, pair, '&');) {
          if (!pair.empty() && pair.rfind(parameter + "=", 0) != 0) form += "&" + pair;
        }
        form += "&" + parameter + "=" + blank;
        auto [status, body] = Call(form);
        EXPECT_EQ(status, 400) << form << "\n" << body;
        EXPECT_NE(body.find("<Code>InvalidParameterValue</Code>"), std::string::npos)
            << form << "\n" << body;
        EXPECT_NE(body.find(parameter), std::string::npos) << form << "\n" << body;
      }
    }
  }
  // Nothing was started or stored on the way.
  auto [status, body] = Call("Action=DescribeEvents&Version=2015-02-02");
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(body.find("deleting"), std::string::npos) << body;
  EXPECT_FALSE(fs::exists(fleet_.storage.path / "s"));
}

TEST_F(ApiServiceTest, DescribeSnapshotsPagesThroughTheStore) {
  auto opened = SnapshotStore::Open(fleet_.storage.path);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  SnapshotStore& store = *opened;
  for (int i = 0; i < 25; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "snap-%02d", i);
    CommitSnapshot(store, name);
  }
  // The default page is 50; 20 per page gives two pages and a marker between them.
  auto [s1, page1] = Call("Action=DescribeSnapshots&Version=2015-02-02&MaxRecords=20");
  ASSERT_EQ(s1, 200) << page1;
  EXPECT_EQ(Count(page1, "<Snapshot>"), 20);
  const std::string marker = Between(page1, "<Marker>", "</Marker>");
  ASSERT_FALSE(marker.empty()) << page1;
  auto [s2, page2] =
      Call("Action=DescribeSnapshots&Version=2015-02-02&MaxRecords=20&Marker=" + marker);
  ASSERT_EQ(s2, 200) << page2;
  EXPECT_EQ(Count(page2, "<Snapshot>"), 5);
  EXPECT_EQ(page2.find("<Marker>"), std::string::npos);
  EXPECT_NE(page2.find("<SnapshotName>snap-20</SnapshotName>"), std::string::npos);
  EXPECT_NE(page2.find("<SnapshotName>snap-24</SnapshotName>"), std::string::npos);
  auto [s3, all] = Call("Action=DescribeSnapshots&Version=2015-02-02");
  EXPECT_EQ(Count(all, "<Snapshot>"), 25);
  // Filters.
  auto [s4, one] = Call("Action=DescribeSnapshots&Version=2015-02-02&SnapshotName=SNAP-07");
  EXPECT_EQ(Count(one, "<Snapshot>"), 1);
  auto [s5, none] =
      Call("Action=DescribeSnapshots&Version=2015-02-02&CacheClusterId=other&SnapshotSource=user");
  EXPECT_EQ(s5, 200);
  EXPECT_EQ(Count(none, "<Snapshot>"), 0);
  auto [s6, system] = Call("Action=DescribeSnapshots&Version=2015-02-02&SnapshotSource=system");
  EXPECT_EQ(Count(system, "<Snapshot>"), 0);

  // DeleteSnapshot answers with the snapshot "deleting" and it is gone.
  auto [s7, deleted] = Call("Action=DeleteSnapshot&Version=2015-02-02&SnapshotName=snap-03");
  EXPECT_EQ(s7, 200) << deleted;
  EXPECT_NE(deleted.find("<SnapshotStatus>deleting</SnapshotStatus>"), std::string::npos);
  EXPECT_EQ(Call("Action=DescribeSnapshots&Version=2015-02-02&SnapshotName=snap-03").first, 404);
  // A snapshot name that exists refuses a new final snapshot of that name, synchronously.
  auto [s8, taken] = Call(
      "Action=DeleteCacheCluster&Version=2015-02-02&"
      "CacheClusterId=myRedisCluster&FinalSnapshotIdentifier=Snap-04");
  EXPECT_EQ(s8, 400);
  EXPECT_NE(taken.find("<Code>SnapshotAlreadyExistsFault</Code>"), std::string::npos);
}

TEST_F(ApiServiceTest, DescribesAnUnreachableClusterAndPagesEvents) {
  auto [status, body] =
      Call("Action=DescribeCacheClusters&Version=2015-02-02&ShowCacheNodeInfo=true");
  ASSERT_EQ(status, 200) << body;
  EXPECT_NE(body.find("<CacheClusterStatus>unreachable</CacheClusterStatus>"), std::string::npos);
  EXPECT_NE(body.find("<CacheNodes><CacheNode><CacheNodeId>0001</CacheNodeId>"), std::string::npos);
  for (int i = 0; i < 25; ++i) {
    service_->state().AddEvent(kSourceCacheCluster, i % 2 ? "myRedisCluster" : "other",
                               "event " + std::to_string(i));
  }
  auto [s1, page1] = Call("Action=DescribeEvents&Version=2015-02-02&MaxRecords=20");
  EXPECT_EQ(Count(page1, "<Event>"), 20);
  const std::string marker = Between(page1, "<Marker>", "</Marker>");
  auto [s2, page2] =
      Call("Action=DescribeEvents&Version=2015-02-02&MaxRecords=20&Marker=" + marker);
  EXPECT_EQ(Count(page2, "<Event>"), 5);
  EXPECT_NE(page2.find("<Message>event 24</Message>"), std::string::npos);
  auto [s3, mine] = Call(
      "Action=DescribeEvents&Version=2015-02-02&SourceType=cache-cluster&"
      "SourceIdentifier=MYREDISCLUSTER");
  EXPECT_EQ(Count(mine, "<Event>"), 12);
  auto [s4, old] = Call("Action=DescribeEvents&Version=2015-02-02&EndTime=2015-01-01T00:00:00Z");
  EXPECT_EQ(Count(old, "<Event>"), 0);
  auto [s5, groups] = Call("Action=DescribeEvents&Version=2015-02-02&SourceType=replication-group");
  EXPECT_EQ(Count(groups, "<Event>"), 0);
}

}  // namespace
}  // namespace finalsnap::detail
