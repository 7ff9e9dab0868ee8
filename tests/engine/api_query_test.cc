// The Query protocol below the actions: the wire format (engine/api/query_api.h: forms in, XML
// out, typed parameters read by an action's rules) and the ElastiCache shapes both front ends
// print (finalsnap/elasticache.h). Pure: no I/O.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "finalsnap/elasticache.h"
#include "finalsnap/storage.h"
#include "query_api.h"

namespace finalsnap::detail {
namespace {

// ---- The wire format ----

TEST(ApiQueryTest, DecodesFormsAsTheAwsCliSendsThem) {
  QueryParams p;
  ASSERT_TRUE(p.AddForm("Action=DeleteCacheCluster&Version=2015-02-02&"
                        "CacheClusterId=my%2DCluster&Message=a+b%21&Empty=&Flag")
                  .ok());
  EXPECT_EQ(p.Get("CacheClusterId"), "my-Cluster");
  EXPECT_EQ(p.Get("Message"), "a b!");
  EXPECT_EQ(p.Get("Empty"), "");
  EXPECT_EQ(p.Get("Flag"), "");
  EXPECT_FALSE(p.Get("Missing").has_value());
  // The query string and the body together: a name given twice is refused, not chosen from.
  Expected<void, ApiError> twice = p.AddForm("CacheClusterId=other");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, "InvalidParameterCombination");
  QueryParams bad;
  Expected<void, ApiError> escape = bad.AddForm("a=%4");
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.error().code, "MalformedQueryString");
  EXPECT_EQ(escape.error().http_status, 404);
}

TEST(ApiQueryTest, TypedParametersAndUnknownOnes) {
  QueryParams p;
  ASSERT_TRUE(p.AddForm("Action=DescribeEvents&Version=2015-02-02&MaxRecords=20&Duration=abc&"
                        "ShowCacheNodeInfo=yes&StartTime=2015-02-02T19:23:17Z&"
                        "FinalSnapshotIdentifer=typo")
                  .ok());
  AcceptProtocolParams(p);
  auto max = p.OptionalInt("MaxRecords", 20, 100);
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, 20);
  auto bounded = p.OptionalInt("MaxRecords", 21, 100);
  ASSERT_FALSE(bounded.ok());
  EXPECT_EQ(bounded.error().code, "InvalidParameterValue");
  EXPECT_FALSE(p.OptionalInt("Duration", 0, 10).ok());
  EXPECT_FALSE(p.OptionalBool("ShowCacheNodeInfo").ok());
  auto start = p.OptionalTime("StartTime");
  ASSERT_TRUE(start.ok());
  auto missing = p.Required("CacheClusterId");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "MissingParameter");
  // The misspelt FinalSnapshotIdentifier must not be dropped silently.
  Expected<void, ApiError> unknown = p.RejectUnknown();
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "InvalidParameterValue");
  EXPECT_NE(unknown.error().message.find("FinalSnapshotIdentifer"), std::string::npos);
}

// An action's parameters read by its rules: in order (the first problem is the one reported),
// typed, with unsupported model parameters refused by name and everything else refused too.
TEST(ApiQueryTest, ReadsAnActionsParametersByItsRules) {
  using Kind = ParamRule::Kind;
  const ParamRule rules[] = {
      {.name = "SnapshotName", .required = true},
      {.name = "MaxRecords", .kind = Kind::kInt, .min = 20, .max = 50},
      {.name = "ShowNodeGroupConfig", .kind = Kind::kBool},
      {.name = "StartTime", .kind = Kind::kTime},
      {.name = "Marker"},
      {.name = "Tags.", .kind = Kind::kUnsupported, .refusal = "no tags"},
  };
  auto read = [&](const std::string& form) {
    QueryParams p;
    EXPECT_TRUE(p.AddForm(form).ok()) << form;
    AcceptProtocolParams(p);
    return ActionArgs::Read(p, rules);
  };
  auto error_of = [&](const std::string& form) {
    auto read_back = read(form);
    return read_back.ok() ? ApiError{} : read_back.error();
  };

  auto ok = read(
      "Action=A&SnapshotName=s&MaxRecords=20&ShowNodeGroupConfig=true&"
      "StartTime=2015-02-02T19:23:17Z");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  const ActionArgs& args = *ok;
  EXPECT_EQ(args.Required("SnapshotName"), "s");
  EXPECT_EQ(args.Get<int>("MaxRecords"), 20);
  EXPECT_EQ(args.Get<bool>("ShowNodeGroupConfig"), true);
  EXPECT_EQ(args.Get<std::chrono::system_clock::time_point>("StartTime"),
            ParseIsoTimestamp("2015-02-02T19:23:17Z"));
  EXPECT_FALSE(args.Get<std::string>("Marker").has_value());
  EXPECT_THROW(args.Get<std::string>("MaxRecords"), std::bad_variant_access);

  EXPECT_EQ(error_of("MaxRecords=20").code, "MissingParameter");
  // The required one is read first, so its absence is reported over a bad MaxRecords.
  EXPECT_EQ(error_of("MaxRecords=1").code, "MissingParameter");
  ApiError bad = error_of("SnapshotName=s&MaxRecords=51");
  EXPECT_EQ(bad.code, "InvalidParameterValue");
  EXPECT_NE(bad.message.find("MaxRecords"), std::string::npos) << bad.message;
  bad = error_of("SnapshotName=s&Tags.Tag.1.Key=k&Tags.Tag.1.Value=v");
  EXPECT_EQ(bad.code, "InvalidParameterValue");
  EXPECT_EQ(bad.message, "no tags");
  bad = error_of("SnapshotName=s&Markr=x");
  EXPECT_EQ(bad.code, "InvalidParameterValue");
  EXPECT_NE(bad.message.find("Markr"), std::string::npos) << bad.message;
  bad = error_of("SnapshotName=s&Marker=+");
  EXPECT_EQ(bad.code, "InvalidParameterValue");
  EXPECT_NE(bad.message.find("Marker"), std::string::npos) << bad.message;
}

TEST(ApiQueryTest, XmlEscapesAndReplacesWhatXmlCannotCarry) {
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(XmlEscape("tab\there\nnew"), "tab\there\nnew");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9"), "caf\xC3\xA9");
  // A control character, a lone continuation byte, an overlong '/', a surrogate.
  EXPECT_EQ(XmlEscape(std::string("a\x01z", 3)), "a\xEF\xBF\xBDz");
  EXPECT_EQ(XmlEscape("\x80"), "\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ApiQueryTest, RendersResponsesWithTheModelsListMemberNames) {
  ModelJson result;
  result["Marker"] = "next";
  ModelJson snapshot;
  snapshot["SnapshotName"] = "a&b";
  snapshot["NumCacheNodes"] = 1;
  snapshot["Missing"] = nullptr;
  ModelJson group;
  group["MemberClusters"] = ModelJson::array({"g-001", "g-002"});
  group["ClusterEnabled"] = false;
  result["Snapshots"] = ModelJson::array({snapshot});
  result["ReplicationGroups"] = ModelJson::array({group});
  EXPECT_EQ(RenderResponse("DescribeSnapshots", result, "rid-1"),
            "<DescribeSnapshotsResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\">"
            "<DescribeSnapshotsResult><Marker>next</Marker><Snapshots><Snapshot>"
            "<SnapshotName>a&amp;b</SnapshotName><NumCacheNodes>1</NumCacheNodes></Snapshot>"
            "</Snapshots><ReplicationGroups><ReplicationGroup><MemberClusters>"
            "<ClusterId>g-001</ClusterId><ClusterId>g-002</ClusterId></MemberClusters>"
            "<ClusterEnabled>false</ClusterEnabled></ReplicationGroup></ReplicationGroups>"
            "</DescribeSnapshotsResult><ResponseMetadata><RequestId>rid-1</RequestId>"
            "</ResponseMetadata></DescribeSnapshotsResponse>\n");
}

TEST(ApiQueryTest, RendersErrorsWithTheModelsCodesAndStatuses) {
  // The model's error codes are not always the shape names.
  const ApiError group = ApiError::Of("InvalidReplicationGroupStateFault", "busy");
  EXPECT_EQ(group.code, "InvalidReplicationGroupState");
  EXPECT_EQ(group.http_status, 400);
  EXPECT_EQ(ApiError::Of("CacheClusterNotFoundFault", "").code, "CacheClusterNotFound");
  EXPECT_EQ(ApiError::Of("CacheClusterNotFound", "").http_status, 404);
  EXPECT_EQ(ApiError::Of("ReplicationGroupNotFoundFault", "").http_status, 404);
  EXPECT_EQ(ApiError::Of("SnapshotNotFoundFault", "").http_status, 404);
  EXPECT_EQ(ApiError::Of("SnapshotAlreadyExistsFault", "").http_status, 400);
  EXPECT_EQ(ApiError::Of("MissingAuthenticationToken", "").http_status, 403);
  const ApiError internal = ApiError::Of("InternalFailure", "x");
  EXPECT_EQ(internal.http_status, 500);
  EXPECT_FALSE(internal.sender);
  EXPECT_EQ(RenderError(ApiError::Of("CacheClusterNotFound", "CacheCluster x not found."), "r"),
            "<ErrorResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><Error>"
            "<Type>Sender</Type><Code>CacheClusterNotFound</Code><Message>CacheCluster x not "
            "found.</Message></Error><RequestId>r</RequestId></ErrorResponse>\n");
}

TEST(ApiQueryTest, Timestamps) {
  const auto t = ParseIsoTimestamp("2015-02-02T19:23:17Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(IsoTimestamp(*t), "2015-02-02T19:23:17.000Z");
  EXPECT_EQ(IsoTimestamp(*ParseIsoTimestamp("2015-02-02T19:23:17.123456Z")),
            "2015-02-02T19:23:17.123Z");
  EXPECT_EQ(IsoTimestamp(*ParseIsoTimestamp("2015-02-02T20:23:17+01:00")),
            "2015-02-02T19:23:17.000Z");
  EXPECT_EQ(IsoTimestamp(*ParseIsoTimestamp("2015-02-02")), "2015-02-02T00:00:00.000Z");
  for (const char* bad : {"", "2015-02-30T00:00:00Z", "2015-2-2", "yesterday",
                          "2015-02-02T19:23:17Zjunk", "2015-02-02T25:00:00Z"}) {
    EXPECT_FALSE(ParseIsoTimestamp(bad).has_value()) << bad;
  }
  EXPECT_EQ(NewRequestId().size(), 36u);
  EXPECT_NE(NewRequestId(), NewRequestId());
}

TEST(ApiQueryTest, PagesByMarker) {
  const std::vector<std::string> items = {"a", "b", "c", "d", "e"};
  auto key = [](const std::string& s) { return s; };
  auto [first, marker] = Page(items, key, "", 2);
  EXPECT_EQ(first, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(marker, "c");
  auto [second, marker2] = Page(items, key, marker, 2);
  EXPECT_EQ(second, (std::vector<std::string>{"c", "d"}));
  auto [last, end] = Page(items, key, marker2, 2);
  EXPECT_EQ(last, (std::vector<std::string>{"e"}));
  EXPECT_EQ(end, "");
}

// ---- Shapes ----

TEST(ApiShapeTest, HoldOnlyModelMembers) {
  CacheClusterInfo info;
  info.cache_cluster_id = "myRedisCluster";
  info.status = "available";
  info.engine = "redis";
  info.engine_version = "7.0.15";
  info.endpoint = "127.0.0.1:6379";
  info.role = "master";  // finalsnap's own: not in the shape
  info.used_memory = 123;
  const ModelJson j = CacheClusterShape(info, "deleting", true);
  EXPECT_EQ(
      j.dump(),
      R"({"CacheClusterId":"myRedisCluster","Engine":"redis","EngineVersion":"7.0.15",)"
      R"("CacheClusterStatus":"deleting","NumCacheNodes":1,"CacheNodes":[{"CacheNodeId":)"
      R"("0001","CacheNodeStatus":"deleting","Endpoint":{"Address":"127.0.0.1","Port":6379}}]})");
  Snapshot s;
  s.snapshot_name = "bkup";
  s.snapshot_status = "available";
  s.cache_cluster_id = "myRedisCluster";
  s.num_node_groups = 1;
  NodeSnapshot n;
  n.node_group_id = "0001";
  n.cache_node_id = "0001";
  n.cache_size = 5u << 20;
  n.slots = {{0, 16383}};
  s.node_snapshots.push_back(n);
  s.gates.push_back(GateVerdict{"durable", "store", true, "ok", "", 1.0});
  const ModelJson shape = SnapshotShape(s, false);
  EXPECT_FALSE(shape.contains("Gates"));
  EXPECT_EQ(shape["NodeSnapshots"][0]["CacheSize"], "5 MB");
  EXPECT_FALSE(shape["NodeSnapshots"][0].contains("NodeGroupConfiguration"));
  EXPECT_EQ(SnapshotShape(s, true)["NodeSnapshots"][0]["NodeGroupConfiguration"]["Slots"],
            "0-16383");
}

// The CLI prints the same shapes in its own style: every member present (null without a value,
// lists always), and its node always shown.
TEST(ApiShapeTest, CliStyleKeepsOneSchema) {
  CacheClusterInfo info;
  info.cache_cluster_id = "c";
  info.status = "unreachable";
  info.endpoint = "127.0.0.1:1";
  const ModelJson api = CacheClusterShape(info, "", false);
  EXPECT_EQ(api.dump(),
            R"({"CacheClusterId":"c","CacheClusterStatus":"unreachable","NumCacheNodes":1})");
  const ModelJson cli = CacheClusterShape(info, "", true, ShapeStyle::kCli);
  EXPECT_EQ(cli.dump(),
            R"({"CacheClusterId":"c","ConfigurationEndpoint":{"Address":"127.0.0.1","Port":1},)"
            R"("Engine":null,"EngineVersion":null,"CacheClusterStatus":"unreachable",)"
            R"("NumCacheNodes":1,"CacheNodes":[{"CacheNodeId":"0001","CacheNodeStatus":)"
            R"("unreachable","Endpoint":{"Address":"127.0.0.1","Port":1}}]})");

  ReplicationGroupInfo group;
  group.replication_group_id = "g";
  group.status = "unreachable";
  group.discovered_via = "sentinel";
  const ModelJson api_group = ReplicationGroupShape(group, "");
  EXPECT_FALSE(api_group.contains("MemberClusters"));
  EXPECT_FALSE(api_group.contains("NodeGroups"));
  EXPECT_FALSE(api_group.contains("Engine"));
  EXPECT_EQ(api_group["AutomaticFailover"], "enabled");
  const ModelJson cli_group = ReplicationGroupShape(group, "deleting", ShapeStyle::kCli);
  EXPECT_EQ(cli_group["Status"], "deleting");
  EXPECT_EQ(cli_group["MemberClusters"], ModelJson::array());
  EXPECT_EQ(cli_group["NodeGroups"], ModelJson::array());
  EXPECT_TRUE(cli_group["Engine"].is_null());

  NodeGroupInfo shard;
  shard.node_group_id = "0001";
  shard.status = "available";
  GroupMember primary;
  primary.cache_cluster_id = "g-001";
  primary.endpoint = "127.0.0.1:6379";
  primary.current_role = "primary";
  GroupMember replica;
  replica.cache_cluster_id = "g-002";
  replica.cache_node_id = "";
  shard.members = {primary, replica};
  group.node_groups = {shard};
  const ModelJson api_shard = ReplicationGroupShape(group, "")["NodeGroups"][0];
  EXPECT_EQ(api_shard["PrimaryEndpoint"]["Port"], 6379);
  EXPECT_EQ(api_shard["NodeGroupMembers"][1].dump(), R"({"CacheClusterId":"g-002"})");
  const ModelJson cli_shard = ReplicationGroupShape(group, "", ShapeStyle::kCli)["NodeGroups"][0];
  EXPECT_EQ(cli_shard["NodeGroupMembers"][1].dump(),
            R"({"CacheClusterId":"g-002","CacheNodeId":null,"ReadEndpoint":null,)"
            R"("CurrentRole":null})");
}

// A shard's slots read the same in every answer: a single slot is "5", as in the manifest and in
// NodeGroup Slots.
TEST(ApiShapeTest, WritesSlotsAsTheManifestDoes) {
  Snapshot s;
  s.snapshot_name = "bkup";
  s.replication_group_id = "g";
  NodeSnapshot n;
  n.node_group_id = "0001";
  n.slots = {{0, 4}, {5, 5}, {7, 16383}};
  s.node_snapshots.push_back(n);
  EXPECT_EQ(SnapshotShape(s, true)["NodeSnapshots"][0]["NodeGroupConfiguration"]["Slots"],
            "0-4,5,7-16383");
}

}  // namespace
}  // namespace finalsnap::detail
