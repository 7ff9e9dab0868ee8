// The node client's pure parsers: INFO, INFO keyspace, the server facts the engine decides on,
// and ROLE in both shapes (REDIS-FACTS §2), from replies written as the servers write them.
#include <gtest/gtest.h>

#include "node_client.h"

namespace finalsnap::detail {
namespace {

Reply Str(std::string s) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(s);
  return r;
}
Reply Int(long long v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}
Reply Arr(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(e);
  return r;
}

TEST(NodeClientParse, InfoKeyspaceAndFacts) {
  const std::string info =
      "# Server\r\nredis_version:7.0.15\r\n\r\n# Replication\r\nrole:master\r\n"
      "connected_slaves:2\r\nmaster_repl_offset:3107\r\n# Memory\r\nused_memory:1048576\r\n"
      "# Keyspace\r\ndb0:keys=519,expires=502,avg_ttl=0\r\ndb15:keys=1000,expires=0,avg_ttl=0\r\n";
  const auto fields = ParseInfo(info);
  EXPECT_EQ(fields.at("redis_version"), "7.0.15");
  const auto keyspace = ParseKeyspace(fields);
  ASSERT_EQ(keyspace.size(), 2u);
  EXPECT_EQ(keyspace.at(0), (rdb::DbCounts{519, 502}));
  EXPECT_EQ(keyspace.at(15), (rdb::DbCounts{1000, 0}));
  const ServerFacts f = ParseServerFacts(fields);
  EXPECT_EQ(f.engine, "redis");
  EXPECT_EQ(f.major, 7);
  EXPECT_TRUE(f.AtLeast(6, 2));
  EXPECT_FALSE(f.AtLeast(7, 2));
  EXPECT_EQ(f.connected_replicas, 2);
  EXPECT_EQ(f.master_repl_offset, 3107u);
  EXPECT_EQ(f.used_memory, 1048576u);

  const ServerFacts v = ParseServerFacts(ParseInfo("valkey_version:8.0.1\r\nredis_version:7.2.4\r\n"));
  EXPECT_EQ(v.engine, "valkey");
  EXPECT_EQ(v.version, "8.0.1");
}

TEST(NodeClientParse, RoleOfAPrimaryAndAReplica) {
  const auto primary = ParseRole(Arr({Str("master"), Int(3129),
                                      Arr({Arr({Str("127.0.0.1"), Str("9001"), Str("3129")}),
                                           Arr({Str("127.0.0.1"), Str("9002"), Str("3100")})})}));
  ASSERT_TRUE(primary.has_value());
  EXPECT_EQ(primary->role, "master");
  EXPECT_EQ(primary->offset, 3129);
  ASSERT_EQ(primary->replicas.size(), 2u);
  EXPECT_EQ(primary->replicas[1].port, 9002);
  EXPECT_EQ(primary->replicas[1].offset, 3100u);

  const auto replica =
      ParseRole(Arr({Str("slave"), Str("127.0.0.1"), Int(9000), Str("connect"), Int(-1)}));
  ASSERT_TRUE(replica.has_value());
  EXPECT_EQ(replica->master_port, 9000);
  EXPECT_EQ(replica->link_state, "connect");
  EXPECT_EQ(replica->offset, -1);

  EXPECT_FALSE(ParseRole(Str("master")).has_value());
  EXPECT_FALSE(ParseRole(Arr({Str("master"), Str("x"), Arr({})})).has_value());
  EXPECT_FALSE(ParseRole(Arr({Str("slave"), Str("h")})).has_value());
}

}  // namespace
}  // namespace finalsnap::detail
