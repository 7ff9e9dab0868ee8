// The topology parsers: CLUSTER NODES lines (REDIS-FACTS §4) and a primary's slaveN lines
// (REDIS-FACTS §2), from text written as Redis 7.0 writes it.
#include <gtest/gtest.h>

#include "node_client.h"
#include "topology.h"

namespace finalsnap::detail {
namespace {

// A 3+3 cluster as redis-cli --cluster create leaves it, seen from 127.0.0.1:18004.
constexpr const char* kNodes =
    "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:18004@28004 myself,slave "
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1700000000000 3 connected\n"
    "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:18002@28002 master - 0 1700000000500 2 "
    "connected 5461-10922\n"
    "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:18003@28003,cache-3.example master - 0 "
    "1700000000000 3 connected 10923-16383\n"
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:18001@28001 master - 0 1700000000000 1 "
    "connected 0-5460\n"
    "6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:18005@28005 slave "
    "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1700000000000 2 connected\n"
    "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:18006@28006 slave "
    "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1700000000000 3 connected\n";

TEST(TopologyParse, ClusterNodes) {
  auto lines = ParseClusterNodes(kNodes);
  ASSERT_TRUE(lines.ok()) << lines.error().message();
  ASSERT_EQ(lines->size(), 6u);
  const ClusterNodeLine& self = (*lines)[0];
  EXPECT_EQ(self.host, "127.0.0.1");
  EXPECT_EQ(self.port, 18004);
  EXPECT_TRUE(self.flags.count("myself") && self.flags.count("slave"));
  EXPECT_EQ(self.master_id, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
  EXPECT_TRUE(self.slots.empty());
  const ClusterNodeLine& named = (*lines)[2];  // ",hostname" after the cluster bus port
  EXPECT_EQ(named.host, "127.0.0.1");
  EXPECT_EQ(named.port, 18003);
  EXPECT_EQ(named.master_id, "");
  ASSERT_EQ(named.slots.size(), 1u);
  EXPECT_EQ(named.slots[0], std::make_pair(10923, 16383));
  EXPECT_TRUE(named.link_connected);
  EXPECT_FALSE(named.migrating);
}

TEST(TopologyParse, ClusterNodesSlotsAndMarks) {
  auto lines = ParseClusterNodes(
      "abc 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0 5-9 3 [4->-def] [11-<-def]\n"
      "def [::1]:7001@17001 master,fail? - 0 0 2 disconnected 10 12-16383\n");
  ASSERT_TRUE(lines.ok()) << lines.error().message();
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].slots, (std::vector<std::pair<int, int>>{{0, 0}, {3, 3}, {5, 9}}));
  EXPECT_TRUE((*lines)[0].migrating);
  EXPECT_EQ((*lines)[1].host, "::1");
  EXPECT_EQ((*lines)[1].port, 7001);
  EXPECT_TRUE((*lines)[1].flags.count("fail?"));
  EXPECT_FALSE((*lines)[1].link_connected);
  EXPECT_EQ(SlotRangesText((*lines)[0].slots), "0,3,5-9");
}

TEST(TopologyParse, ClusterNodesRefusesWhatItCannotRead) {
  Expected<std::vector<ClusterNodeLine>> short_line =
      ParseClusterNodes("abc 127.0.0.1:7000@17000 master - 0 0\n");
  ASSERT_FALSE(short_line.ok());
  EXPECT_NE(short_line.error().message().find("line 1"), std::string::npos)
      << short_line.error().message();
  EXPECT_FALSE(ParseClusterNodes("abc noport master - 0 0 1 connected\n").ok());
  EXPECT_FALSE(ParseClusterNodes("abc 127.0.0.1:7000@1 master - 0 0 1 connected 5-16384\n").ok());
  EXPECT_FALSE(ParseClusterNodes("abc 127.0.0.1:7000@1 master - 0 0 1 connected 9-5\n").ok());
  EXPECT_FALSE(ParseClusterNodes("abc 127.0.0.1:99999@1 master - 0 0 1 connected\n").ok());
}

TEST(TopologyParse, ReplicaLinesSkipSnapshotConnections) {
  const auto info = ParseInfo(
      "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n"
      "slave0:ip=127.0.0.1,port=17002,state=online,offset=900134,lag=0\r\n"
      "slave1:ip=127.0.0.1,port=0,state=wait_bgsave,offset=0,lag=0\r\n"
      "slave2:ip=10.1.2.3,port=17003,state=send_bulk,offset=12,lag=1\r\n");
  const std::vector<ReplicaLine> lines = ParseReplicaLines(info);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].ip, "127.0.0.1");
  EXPECT_EQ(lines[0].port, 17002);
  EXPECT_EQ(lines[0].state, "online");
  EXPECT_EQ(lines[0].offset, 900134u);
  EXPECT_EQ(lines[1].ip, "10.1.2.3");
  EXPECT_EQ(lines[1].state, "send_bulk");
}

}  // namespace
}  // namespace finalsnap::detail
