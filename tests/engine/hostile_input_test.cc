// Hostile input to the store, the decoders and the fleet loader (issue 11): nothing read from a
// manifest or the storage is trusted as a path, a snapshot file that is not a regular file is
// refused promptly, any entry of a snapshot's name takes the name, modes do not depend on the
// umask, a zstd frame cannot demand a huge window, and no fleet or secret error echoes a value.
//
// Snapshots are committed through the real writer from a real redis-server 7.0.15 RDB (the shared
// fixtures), then changed by hand as an operator, or an attacker, could change them on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "finalsnap/decoder.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "finalsnap/verify.h"
#include "support/big_window_zstd.h"
#include "support/files.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using finalsnap::testing::TempDir;
using Clock = std::chrono::steady_clock;

const std::string kFixture =
    FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-default.rdb";

std::vector<uint8_t> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using finalsnap::testing::DumpsUnder;
using finalsnap::testing::Mode;
using finalsnap::testing::ReadText;
using finalsnap::testing::WriteText;

// Runs `body` in a child process and reports whether it returned true within `limit`; a child
// still running then is killed. This bounds a call that would hang (on a FIFO, say) without
// hanging the test binary.
bool FinishesWithin(std::chrono::seconds limit, const std::function<bool()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body() ? 0 : 1);
  const auto deadline = Clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Sets the umask for one test and puts the old one back.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

// A snapshot store with one committed snapshot of `shards` shards, each the fixture as a plain
// .rdb, committed by the real writer.
class HostileStoreTest : public ::testing::Test {
 protected:
  void Commit(const std::string& name, int shards) {
    Expected<SnapshotStore> opened = SnapshotStore::Open(root());
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    store_.emplace(*std::move(opened));
    Snapshot m;
    m.snapshot_name = name;
    m.replication_group_id = "g";
    m.engine = "redis";
    m.num_node_groups = shards;
    Expected<std::unique_ptr<SnapshotWriter>> begun = store_->Begin(m);
    ASSERT_TRUE(begun.ok()) << begun.error().message();
    std::unique_ptr<SnapshotWriter> writer = *std::move(begun);
    const std::vector<uint8_t> bytes = ReadBytes(kFixture);
    for (int i = 1; i <= shards; ++i) {
      const std::string group = "000" + std::to_string(i);
      Expected<int> fd = writer->CreateFile(group + ".rdb");
      ASSERT_TRUE(fd.ok()) << fd.error().message();
      ASSERT_EQ(::write(*fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
      const FileVerification v = VerifyFile(kFixture);
      NodeSnapshot node;
      node.node_group_id = group;
      node.file = group + ".rdb";
      node.stored_bytes = bytes.size();
      node.rdb_bytes = v.report.bytes;
      node.rdb_version = v.report.rdb_version;
      node.crc64 = v.report.computed_crc;
      node.keyspace = v.report.databases;
      m.node_snapshots.push_back(node);
    }
    const Status committed = writer->Commit(m, nullptr);
    ASSERT_TRUE(committed.ok()) << committed.message();
  }

  // Rewrites the committed manifest's JSON by hand.
  void EditManifest(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    const fs::path path = root() / name / "manifest.json";
    nlohmann::json j = nlohmann::json::parse(ReadText(path));
    edit(j);
    WriteText(path, j.dump(2));
  }

  fs::path root() const { return tmp_.path() / "storage"; }

  TempDir tmp_;
  std::optional<SnapshotStore> store_;
};

// ---- The manifest is not trusted as a path ----

// The manifest of a one-shard snapshot "snap" (0001, 0001.rdb), as JSON for a test to spoil.
nlohmann::json OneShardManifest() {
  Snapshot s;
  s.snapshot_name = "snap";
  s.snapshot_status = "available";
  NodeSnapshot node;
  node.node_group_id = "0001";
  node.file = "0001.rdb";
  s.node_snapshots.push_back(node);
  return nlohmann::json::parse(SnapshotToJson(s));
}

TEST(HostileManifestTest, RefusesANodeGroupIdThatIsNotFourDigits) {
  nlohmann::json j = OneShardManifest();
  for (const std::string bad : {"../../escaped", "1", "00001", "000a", "/tmp", "", ".."}) {
    j["NodeSnapshots"][0]["NodeGroupId"] = bad;
    const Expected<Snapshot> parsed = SnapshotFromJson(j.dump());
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message().find("NodeSnapshots[0].NodeGroupId"), std::string::npos)
        << parsed.error().message();
  }
  // A huge value is named by its field and its size, never echoed.
  j["NodeSnapshots"][0]["NodeGroupId"] = std::string(100000, 'A');
  const Expected<Snapshot> huge = SnapshotFromJson(j.dump());
  ASSERT_FALSE(huge.ok());
  EXPECT_LT(huge.error().message().size(), 200u) << huge.error().message().substr(0, 300);
  EXPECT_NE(huge.error().message().find("NodeSnapshots[0].NodeGroupId"), std::string::npos);
}

TEST(HostileManifestTest, RefusesAFileThatIsNotAPlainName) {
  nlohmann::json j = OneShardManifest();
  for (const std::string bad : {"/elsewhere/x.rdb.zst", "../x.rdb", "a/b.rdb", ".hidden.rdb",
                                "manifest.json", "", "..", "x\n.rdb", "x .rdb"}) {
    j["NodeSnapshots"][0]["File"] = bad;
    const Expected<Snapshot> parsed = SnapshotFromJson(j.dump());
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message().find("NodeSnapshots[0].File"), std::string::npos)
        << parsed.error().message();
  }
}

TEST(HostileManifestTest, RefusesOtherFieldsOutOfBounds) {
  Snapshot s;
  s.snapshot_name = "snap";
  s.snapshot_status = "available";
  NodeSnapshot node;
  node.node_group_id = "0001";
  node.file = "0001.rdb";
  s.node_snapshots.push_back(node);
  const nlohmann::json good = nlohmann::json::parse(SnapshotToJson(s));
  ASSERT_TRUE(SnapshotFromJson(good.dump()).ok());
  const auto refused_at = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    const Expected<Snapshot> parsed = SnapshotFromJson(j.dump());
    return parsed.ok() ? std::string("accepted") : parsed.error().message();
  };
  EXPECT_EQ(refused_at([](auto& j) { j["SnapshotName"] = "../x"; }).rfind("SnapshotName", 0), 0u);
  EXPECT_EQ(refused_at([](auto& j) { j["SnapshotStatus"] = "bogus"; }).rfind("SnapshotStatus", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) { j["NumNodeGroups"] = -1; }).rfind("NumNodeGroups", 0), 0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["NodeSnapshots"][0]["StoredBytes"] = uint64_t{1} << 62;
            }).rfind("NodeSnapshots[0].StoredBytes", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["NodeSnapshots"][0]["Keyspace"] = {{{"Db", uint64_t{1} << 40}, {"Keys", 1}}};
            }).rfind("NodeSnapshots[0].Keyspace[0].Db", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["NodeSnapshots"].push_back(j["NodeSnapshots"][0]);
              j["NodeSnapshots"][1]["NodeGroupId"] = "0002";
            }).rfind("NodeSnapshots[1].File", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["NodeSnapshots"].push_back(j["NodeSnapshots"][0]);
              j["NodeSnapshots"][1]["File"] = "0002.rdb";
            }).rfind("NodeSnapshots[1].NodeGroupId", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["NodeSnapshots"] = nlohmann::json::array();
              for (int i = 0; i < 2000; ++i) j["NodeSnapshots"].push_back(nullptr);
            }).rfind("NodeSnapshots: 2000 entries", 0),
            0u);
  EXPECT_EQ(refused_at([](auto& j) {
              j["Gates"] = {{{"Gate", "g"}, {"Passed", true}, {"AtMs", -1}}};
            }).rfind("Gates[0].AtMs", 0),
            0u);
}

TEST_F(HostileStoreTest, AnEscapingNodeGroupIdIsFailedAndRestoresNothing) {
  Commit("snap", 2);
  EditManifest("snap",
               [](nlohmann::json& j) { j["NodeSnapshots"][1]["NodeGroupId"] = "../../escaped"; });

  const std::optional<Snapshot> described = store_->Describe("snap");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->snapshot_status, "failed");
  EXPECT_NE(described->status_message.find("NodeGroupId"), std::string::npos)
      << described->status_message;
  for (const Snapshot& listed : store_->List()) EXPECT_NE(listed.snapshot_status, "available");

  const fs::path target = tmp_.path() / "restore" / "a" / "b";
  const RestoreResult result = RestoreSnapshot(*store_, "snap", target);
  EXPECT_FALSE(result.status.ok());
  EXPECT_TRUE(result.files.empty());
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());
  EXPECT_FALSE(fs::exists(tmp_.path() / "restore" / "escaped"));
  EXPECT_FALSE(fs::exists(tmp_.path() / "escaped"));
}

TEST_F(HostileStoreTest, AnAbsoluteFileIsFailedAndNeverRead) {
  Commit("snap", 1);
  // The file outside is a perfectly good RDB: reading it would "succeed".
  const fs::path outside = tmp_.path() / "elsewhere" / "x.rdb";
  fs::create_directories(outside.parent_path());
  fs::copy_file(kFixture, outside);
  EditManifest("snap",
               [&](nlohmann::json& j) { j["NodeSnapshots"][0]["File"] = outside.string(); });

  const std::optional<Snapshot> described = store_->Describe("snap");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->snapshot_status, "failed");
  EXPECT_NE(described->status_message.find("NodeSnapshots[0].File"), std::string::npos)
      << described->status_message;
  const RestoreResult result = RestoreSnapshot(*store_, "snap", tmp_.path() / "restore");
  EXPECT_FALSE(result.status.ok());
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());
  std::string evidence;
  EXPECT_FALSE(Readback(*store_, "snap", &evidence).ok());
}

TEST_F(HostileStoreTest, ASymlinkToAFifoIsRefusedPromptly) {
  Commit("snap", 1);
  const fs::path fifo = tmp_.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const fs::path file = root() / "snap" / "0001.rdb";
  fs::remove(file);
  fs::create_symlink(fifo, file);

  const std::optional<Snapshot> described = store_->Describe("snap");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->snapshot_status, "failed");
  EXPECT_NE(described->status_message.find("symbolic link"), std::string::npos)
      << described->status_message;

  // Each call must end, with an error, well within the deadline (a reader blocked on the FIFO's
  // open would never end: nobody writes to it).
  const SnapshotStore& store = *store_;
  const fs::path target = tmp_.path() / "restore";
  EXPECT_TRUE(FinishesWithin(std::chrono::seconds(10),
                             [&] { return !RestoreSnapshot(store, "snap", target).status.ok(); }));
  EXPECT_TRUE(FinishesWithin(std::chrono::seconds(10), [&] {
    std::string evidence;
    return !Readback(store, "snap", &evidence).ok();
  }));
  EXPECT_TRUE(FinishesWithin(std::chrono::seconds(10), [&] {
    const FileVerification v = VerifyFile(file.string(), {}, FileKind::kRegular);
    return v.path_error && v.io_error.find("symbolic link") != std::string::npos;
  }));
  // The FIFO itself in the snapshot's place: not a regular file.
  fs::remove(file);
  ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);
  EXPECT_EQ(store_->Describe("snap")->snapshot_status, "failed");
  EXPECT_TRUE(FinishesWithin(std::chrono::seconds(10), [&] {
    const FileVerification v = VerifyFile(file.string(), {}, FileKind::kRegular);
    return v.path_error && v.io_error.find("not a regular file (a FIFO)") != std::string::npos;
  }));
  EXPECT_TRUE(FinishesWithin(std::chrono::seconds(10),
                             [&] { return !RestoreSnapshot(store, "snap", target).status.ok(); }));
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());
}

// ---- Any entry of a snapshot's name takes the name ----

TEST_F(HostileStoreTest, AnyEntryOfTheNameTakesIt) {
  Commit("snap", 1);
  fs::create_symlink(tmp_.path() / "nowhere", root() / "dangling");
  fs::create_symlink(root() / "snap", root() / "linked");
  WriteText(root() / "plainfile", "x");
  fs::create_directory(root() / ".journal");
  for (const std::string name : {"dangling", "DANGLING", "linked", "plainfile"}) {
    EXPECT_TRUE(store_->Exists(name)) << name;
    Snapshot s;
    s.snapshot_name = name;
    const auto begun = store_->Begin(s);
    ASSERT_FALSE(begun.ok()) << name;
    EXPECT_NE(begun.error().message().find("taken"), std::string::npos) << begun.error().message();
  }
  EXPECT_FALSE(store_->Exists("free"));
  // Neither the links nor the dot-entry is listed as a snapshot.
  const std::vector<Snapshot> listed = store_->List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].snapshot_name, "snap");
  EXPECT_EQ(listed[0].snapshot_status, "available");
}

// ---- Modes do not depend on the umask ----

TEST_F(HostileStoreTest, ModesDoNotDependOnTheUmask) {
  const ScopedUmask umask(0);
  const fs::path deep_root = tmp_.path() / "parent" / "storage";
  Expected<SnapshotStore> opened = SnapshotStore::Open(deep_root);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(Mode(tmp_.path() / "parent"), 0755u);
  EXPECT_EQ(Mode(deep_root), 0700u);

  Commit("snap", 2);
  EXPECT_EQ(Mode(root()), 0700u);
  EXPECT_EQ(Mode(root() / "snap"), 0700u);
  EXPECT_EQ(Mode(root() / "snap" / "0001.rdb"), 0600u);
  EXPECT_EQ(Mode(root() / "snap" / "manifest.json"), 0600u);
  const fs::path target = tmp_.path() / "restore" / "into";
  const RestoreResult result = RestoreSnapshot(*store_, "snap", target);
  ASSERT_TRUE(result.status.ok()) << result.status.message();
  EXPECT_EQ(Mode(tmp_.path() / "restore"), 0700u);
  EXPECT_EQ(Mode(target), 0700u);
  EXPECT_EQ(Mode(target / "0001"), 0700u);
  EXPECT_EQ(Mode(target / "0002"), 0700u);
  EXPECT_EQ(Mode(target / "0001" / "dump.rdb"), 0600u);
  EXPECT_EQ(Mode(target / "0002" / "dump.rdb"), 0600u);
}

// ---- The zstd window ----

TEST(HostileZstdTest, AFrameWithAHugeWindowIsRefusedAtItsHeader) {
  TempDir tmp;
  const std::vector<uint8_t> frame = testing::BigWindowZstd();
  ASSERT_LT(frame.size(), 8u << 10);
  const fs::path path = tmp.path() / "big.rdb.zst";
  WriteText(path, std::string(frame.begin(), frame.end()));
  // The real zstd, allowed 128 MiB, takes it as a valid frame: it is refused for its window
  // only.
  const testing::ProcessResult real =
      testing::RunCommand({"zstd", "-t", "-q", "--memory=128MB", path.string()});
  ASSERT_EQ(real.exit_code, 0) << real.Describe();

  std::unique_ptr<StreamDecoder> decoder = StreamDecoder::Create(Compression::kZstd);
  uint64_t produced = 0;
  const Status status = decoder->Decode(
      frame, [&produced](std::span<const uint8_t> bytes) { produced += bytes.size(); });
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("window larger than 8 MiB"), std::string::npos)
      << status.message();
  EXPECT_EQ(produced, 0u);

  const FileVerification v = VerifyFile(path.string());
  EXPECT_FALSE(v.ok());
  EXPECT_NE(v.io_error.find("window"), std::string::npos) << v.io_error;
}

TEST(HostileZstdTest, TheLimitFitsTheHighestLevelFinalsnapWrites) {
  // zstd -19 on a pipe (size unknown) keeps its full 8 MiB window, the largest the fleet file's
  // levels (1-19) can give.
  TempDir tmp;
  const fs::path path = tmp.path() / "l19.rdb.zst";
  const testing::ProcessResult r = testing::RunCommand(
      {"sh", "-c", "cat '" + kFixture + "' | zstd -q -19 -c > '" + path.string() + "'"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const FileVerification v = VerifyFile(path.string());
  EXPECT_TRUE(v.ok()) << v.io_error;
}

// ---- Verify reads each input once ----

TEST(HostileVerifyTest, AChecksumLessRdbOnAPipeVerifiesInOnePass) {
  const std::string nochecksum =
      FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-nochecksum.rdb";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::vector<uint8_t> bytes = ReadBytes(nochecksum);
  std::thread writer([&] {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fds[1], bytes.data() + done, bytes.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fds[1]);
  });
  const FileVerification v = VerifyFile("/proc/self/fd/" + std::to_string(fds[0]));
  writer.join();
  ::close(fds[0]);
  EXPECT_TRUE(v.ok()) << v.io_error << (v.rdb_error ? v.rdb_error->ToString() : "");
  EXPECT_TRUE(v.deep);
  EXPECT_EQ(v.stored_bytes, bytes.size());
  EXPECT_EQ(v.report.checksum, rdb::ChecksumVerdict::kDisabled);
  // A regular file still gets the fast pass and then the deep one, through one descriptor.
  const FileVerification file = VerifyFile(nochecksum);
  EXPECT_TRUE(file.ok()) << file.io_error;
  EXPECT_TRUE(file.deep);
  EXPECT_EQ(file.report.bytes, v.report.bytes);
}

}  // namespace
}  // namespace finalsnap
