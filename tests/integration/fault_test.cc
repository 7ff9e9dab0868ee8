// The fault matrix's faults from outside finalsnap (its own death is crash_test.cc; the node
// killed, the stream cut, stalled and corrupted are engine_test.cc; a failover is
// group_test.cc; two processes on one target and a wrong password are permissions_test.cc and
// engine_test.cc):
//
// - the storage fills up mid-write: a real tmpfs as the storage root, which another writer
//   fills once storage-ready has found room, so that the snapshot no longer fits;
// - a replica chosen as the capture source (--from-replica) whose link to the primary breaks
//   after preflight, so that it never catches up with the paused primary.
//
// Each asserts afterwards that every node runs, that primaries take writes, that every node has
// its data and the settings it had, and that nothing is left in the storage: no snapshot, no
// partial, no journal.
//
// Mounting the tmpfs needs root (CAP_SYS_ADMIN), as the rest of the suite's set-up does: a
// failed mount fails the test, it never skips.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "support/dataset.h"
#include "support/operation_checks.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/storage_entries.h"
#include "support/temp_dir.h"

namespace finalsnap::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A tmpfs of `bytes` mounted on `dir` while the object lives.
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& dir, size_t bytes) : dir_(dir) {
    fs::create_directories(dir_);
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      throw std::runtime_error("cannot mount a tmpfs on " + dir_.string() + ": " +
                               std::strerror(errno) + " (the fault tests run as root)");
    }
  }
  ~TmpfsMount() { ::umount2(dir_.c_str(), MNT_DETACH); }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

 private:
  fs::path dir_;
};

// A loopback port with nothing listening on it (bound, read and closed again).
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

Fleet ParseOrThrow(const std::string& text, const fs::path& file) {
  auto parsed = ParseFleet(text, file);
  if (!parsed.ok()) throw std::runtime_error(parsed.error().ToString());
  return *parsed;
}

// --- ENOSPC mid-write ---------------------------------------------------------------------------

class StorageFullTest : public ::testing::TestWithParam<bool> {
 protected:
  bool destroys() const { return GetParam(); }

  // Fills the file system but for `left` bytes.
  void FillAllBut(uint64_t left) {
    const uint64_t available = fs::space(mount_dir_).available;
    ASSERT_GT(available, left);
    std::ofstream ballast(mount_dir_ / "ballast", std::ios::binary);
    const std::string chunk(1u << 20, 'b');
    for (uint64_t n = available - left; n > 0;) {
      const size_t part = std::min<uint64_t>(n, chunk.size());
      ballast.write(chunk.data(), static_cast<std::streamsize>(part));
      n -= part;
    }
    ballast.close();
    ASSERT_TRUE(ballast.good());
  }

  TempDir dir_{"finalsnap-fault"};
  fs::path mount_dir_ = dir_.path() / "full";
  // 64 MiB of storage: room for the 16 MiB value (which no compressor shrinks) when
  // storage-ready looks, 2 MiB once the ballast is written right after. The capture, which
  // writes while it streams, meets ENOSPC an eighth of the way in.
  TmpfsMount mount_{mount_dir_, 64u << 20};
  fs::path storage_ = mount_dir_ / "snapshots";
};

TEST_P(StorageFullTest, ANodeWhoseSnapshotDoesNotFitKeepsRunningAndNothingIsShown) {
  RedisServer node({{"rdbcompression", "yes"}, {"repl-diskless-sync-delay", "3"}});
  node.Start();
  SetRandomValue(node, "big", 16u << 20);
  ASSERT_TRUE(node.Command("DEBUG", "POPULATE", 1000, "key", 32).ok());
  const NodeState before = NodeStateOf(node);
  const Fleet fleet = ParseOrThrow("[storage]\npath = \"" + storage_.string() +
                                       "\"\ncompression = \"zstd\"\n[cache_clusters.c1]\n"
                                       "endpoint = \"127.0.0.1:" +
                                       std::to_string(node.port()) + "\"\n",
                                   dir_.path() / "finalsnap.toml");

  bool filled = false;
  OperationOptions options;
  options.observer = [&](const OperationEvent& e) {
    if (e.kind == OperationEvent::Kind::kGate && e.gate.gate == "storage-ready" && !filled) {
      FillAllBut(2u << 20);
      filled = true;
    }
  };
  const OperationResult r = destroys()
                                ? DeleteCacheCluster(fleet, "c1", std::string("full"), options)
                                : CreateSnapshot(fleet, "c1", "full", options);
  ASSERT_TRUE(filled) << Describe(r);
  ASSERT_FALSE(r.ok) << Describe(r);
  // Refused where the write failed, naming the cause, and not earlier: storage-ready passed.
  EXPECT_TRUE(r.failed_gate == "rdb-complete" || r.failed_gate == "durable") << Describe(r);
  RecordProperty("refused_at", r.failed_gate);
  RecordProperty("message", r.message);
  EXPECT_NE(r.message.find(std::strerror(ENOSPC)), std::string::npos) << Describe(r);
  EXPECT_FALSE(r.snapshot.has_value());
  for (const GateVerdict& g : r.gates) EXPECT_NE(g.gate, "nodes-shutdown") << Describe(r);

  ExpectRunning(node);
  ExpectWritable(node);
  EXPECT_EQ(NodeStateOf(node), before);
  // No snapshot, partial or journal: the partial was removed, which freed its space again.
  EXPECT_EQ(StorageEntries(storage_), std::vector<std::string>{});
  fs::remove(mount_dir_ / "ballast");
  EXPECT_EQ(fs::space(storage_).available, fs::space(storage_).capacity);

  // With the room back, the same snapshot is taken as usual on the same storage.
  const OperationResult small = CreateSnapshot(fleet, "c1", "small");
  EXPECT_TRUE(small.ok) << Describe(small);
  EXPECT_EQ(StorageEntries(storage_), std::vector<std::string>{"small"});
}

INSTANTIATE_TEST_SUITE_P(Fault, StorageFullTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "DeleteCacheCluster" : "CreateSnapshot";
                         });

// --- A replica that never catches up
// --------------------------------------------------------------

TEST(ReplicaBehindTest, AReplicaThatNeverCatchesUpIsRefusedAndTheGroupKeepsEverything) {
  TempDir dir("finalsnap-fault");
  ReplicationGroupFixture group(ReplicationGroupOptions{
      .replicas = 1, .config = {{"rdbcompression", "yes"}, {"repl-diskless-sync-delay", "3"}}});
  group.Start();
  RedisServer& primary = group.primary();
  RedisServer& replica = group.replica(0);
  ASSERT_TRUE(primary.Command("DEBUG", "POPULATE", 5000, "key", 64).ok());
  group.WaitForReplicasCaughtUp();
  const NodeState primary_before = NodeStateOf(primary);
  const NodeState replica_before = NodeStateOf(replica);
  const fs::path storage = dir.path() / "snapshots";
  const Fleet fleet = ParseOrThrow(
      "[storage]\npath = \"" + storage.string() + "\"\n[replication_groups.g1]\nendpoints = " +
          "[\"127.0.0.1:" + std::to_string(primary.port()) +
          "\", \"127.0.0.1:" + std::to_string(replica.port()) + "\"]\ncommand_timeout_ms = 1500\n",
      dir.path() / "finalsnap.toml");

  for (const bool destroys : {false, true}) {
    SCOPED_TRACE(destroys ? "delete-replication-group" : "create-snapshot");
    // Once preflight has passed (the link was up then), the replica's link breaks: it is
    // pointed at a port where nothing listens, so it never applies another byte.
    const int nowhere = ClosedPort();
    bool broken = false;
    OperationOptions options;
    options.snapshot_from_replica = true;
    options.observer = [&](const OperationEvent& e) {
      if (e.kind == OperationEvent::Kind::kGate && e.gate.gate == "storage-ready" && !broken) {
        broken = replica.Command("REPLICAOF", "127.0.0.1", nowhere).ok();
      }
    };
    const OperationResult r =
        destroys ? DeleteReplicationGroup(fleet, "g1", std::string("behind"), false, options)
                 : CreateReplicationGroupSnapshot(fleet, "g1", "behind", options);
    ASSERT_TRUE(broken) << Describe(r);
    ASSERT_FALSE(r.ok) << Describe(r);
    EXPECT_EQ(r.failed_gate, "writes-paused") << Describe(r);
    EXPECT_NE(r.message.find("did not catch up"), std::string::npos) << Describe(r);
    EXPECT_NE(r.message.find("127.0.0.1:" + std::to_string(replica.port())), std::string::npos)
        << Describe(r);

    // Linked again, the group has everything it had.
    ASSERT_TRUE(replica.Command("REPLICAOF", "127.0.0.1", primary.port()).ok());
    group.WaitForReplicasCaughtUp();
    for (RedisServer* n : group.nodes()) ExpectRunning(*n);
    ExpectWritable(primary);
    group.WaitForReplicasCaughtUp();
    EXPECT_EQ(NodeStateOf(primary), primary_before);
    EXPECT_EQ(NodeStateOf(replica), replica_before);
    EXPECT_EQ(StorageEntries(storage), std::vector<std::string>{});
  }
}

}  // namespace
}  // namespace finalsnap::testing
