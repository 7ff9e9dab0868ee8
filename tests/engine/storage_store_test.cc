// Tests for the snapshot store (storage.h) on disk: the layout and modes, in-flight and
// abandoned snapshots, the durable commit, delete, and the readback gate.
//
// Readback runs on a real RDB written by redis-server 7.0.15 (the shared fixtures) and on a copy
// compressed by the real `zstd` program. The tests run as root in CI, where permission bits do
// not stop a write, so "not writable" is simulated with a root path that is (or is under) a
// regular file; a chmod-based case runs only when the tests are not root.
#include <gtest/gtest.h>

#include "storage_helpers.h"

namespace finalsnap {
namespace {

using namespace storage_helpers;  // NOLINT: the shared helpers, as if defined here

// ---- The store ----

TEST(StorageStoreTest, OpenCreatesTheRoot0700) {
  TempDir tmp;
  const fs::path root = tmp.path() / "a" / "b" / "snapshots";
  SnapshotStore store = OpenStore(root);
  EXPECT_EQ(store.root(), root);
  EXPECT_TRUE(fs::is_directory(root));
  EXPECT_EQ(Mode(root), 0700u);
  EXPECT_TRUE(store.CheckWritable().ok());
  EXPECT_GT(store.FreeBytes(), 0u);
  EXPECT_TRUE(store.List().empty());
  // The probe file is gone again.
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
  // An existing root keeps its mode: it is the operator's directory.
  fs::permissions(root, fs::perms(0750));
  SnapshotStore again = OpenStore(root);
  EXPECT_EQ(Mode(root), 0750u);
}

TEST(StorageStoreTest, NotAWritableDirectory) {
  TempDir tmp;
  const fs::path file = tmp.path() / "plain-file";
  WriteText(file, "not a directory");

  // The root is a regular file.
  auto opened = SnapshotStore::Open(file);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message().find("not a directory"), std::string::npos)
      << opened.error().message();
  // The root would have to be created under a regular file.
  opened = SnapshotStore::Open(file / "snapshots");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message().find("plain-file"), std::string::npos)
      << opened.error().message();
  // Read-only access never creates anything.
  opened = SnapshotStore::Open(tmp.path() / "missing", SnapshotStore::Access::kReadOnly);
  ASSERT_FALSE(opened.ok());
  EXPECT_FALSE(fs::exists(tmp.path() / "missing"));

  // The root stops being a writable directory after Open: CheckWritable notices.
  const fs::path root = tmp.path() / "snapshots";
  SnapshotStore store = OpenStore(root);
  fs::remove_all(root);
  WriteText(root, "replaced by a file");
  const Status status = store.CheckWritable();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("not writable"), std::string::npos) << status.message();

  // A read-only store refuses to write.
  fs::remove(root);
  fs::create_directory(root);
  auto read_only = SnapshotStore::Open(root, SnapshotStore::Access::kReadOnly);
  ASSERT_TRUE(read_only.ok());
  SnapshotStore& ro = *read_only;
  EXPECT_FALSE(ro.CheckWritable().ok());
  EXPECT_FALSE(ro.Begin(Initial("bkup")).ok());

  // Permission bits only stop someone who is not root.
  if (::geteuid() != 0) {
    fs::permissions(root, fs::perms(0500));
    auto denied = SnapshotStore::Open(root);
    EXPECT_FALSE(denied.ok());
    fs::permissions(root, fs::perms(0700));
  }
}

TEST(StorageStoreTest, CommitMakesTheSnapshotAvailable) {
  TempDir tmp;
  const fs::path root = tmp.path() / "snapshots";
  SnapshotStore store = OpenStore(root);
  auto writer = BeginOrDie(store, Initial("bkup-20150515-final"));

  // While it is written: a partial directory, 0700, with a "creating" manifest.
  const fs::path partial = writer->dir();
  EXPECT_EQ(partial.parent_path(), root);
  EXPECT_TRUE(partial.filename().string().starts_with(".partial-bkup-20150515-final-" +
                                                      std::to_string(::getpid()) + "-"))
      << partial;
  EXPECT_EQ(Mode(partial), 0700u);
  const std::vector<uint8_t> manifest_bytes = ReadBytes(partial / "manifest.json");
  const Expected<Snapshot> creating =
      SnapshotFromJson(std::string(manifest_bytes.begin(), manifest_bytes.end()));
  ASSERT_TRUE(creating.ok()) << creating.error().message();
  EXPECT_EQ(creating->snapshot_status, "creating");

  const std::vector<uint8_t> fixture = ReadBytes(kFixture);
  ASSERT_FALSE(fixture.empty()) << kFixture;
  auto fd = writer->CreateFile("0001.rdb");
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  WriteFd(*fd, fixture);
  EXPECT_EQ(Mode(partial / "0001.rdb"), 0600u);
  // The same file twice, and names that are not plain, are refused.
  EXPECT_FALSE(writer->CreateFile("0001.rdb").ok());
  EXPECT_FALSE(writer->CreateFile("../0002.rdb").ok());
  EXPECT_FALSE(writer->CreateFile("manifest.json").ok());

  Snapshot final_manifest = Initial("bkup-20150515-final");
  NodeSnapshot node = NodeFor(partial / "0001.rdb", "0001.rdb", "0001");
  node.stored_bytes = 0;  // left for Commit to fill in
  final_manifest.node_snapshots.push_back(node);
  std::string evidence;
  const Status committed = writer->Commit(final_manifest, &evidence);
  ASSERT_TRUE(committed.ok()) << committed.message();
  EXPECT_EQ(evidence, "fsynced 1 file (" + std::to_string(fixture.size()) +
                          " bytes), manifest, dir; renamed " + partial.filename().string() +
                          " -> bkup-20150515-final; fsynced root");
  EXPECT_EQ(final_manifest.snapshot_status, "available");
  EXPECT_EQ(final_manifest.node_snapshots[0].stored_bytes, fixture.size());
  EXPECT_TRUE(writer->committed());

  // On disk: only the snapshot's own directory, 0700, with files 0600.
  const fs::path dir = root / "bkup-20150515-final";
  EXPECT_EQ(writer->dir(), dir);
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{"bkup-20150515-final"});
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{"0001.rdb", "manifest.json"}));
  EXPECT_EQ(Mode(dir), 0700u);
  EXPECT_EQ(Mode(dir / "0001.rdb"), 0600u);
  EXPECT_EQ(Mode(dir / "manifest.json"), 0600u);
  EXPECT_EQ(ReadBytes(dir / "0001.rdb"), fixture);

  const std::optional<Snapshot> described = store.Describe("BKUP-20150515-final");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(*described, final_manifest);
  EXPECT_EQ(described->snapshot_status, "available");
  EXPECT_EQ(described->final_snapshot_of, "delete-cache-cluster");
  const NodeSnapshot& stored = described->node_snapshots.at(0);
  EXPECT_EQ(stored.file, "0001.rdb");
  EXPECT_EQ(stored.compression, Compression::kNone);
  EXPECT_EQ(stored.stored_bytes, fixture.size());
  EXPECT_EQ(stored.rdb_bytes, fixture.size());
  EXPECT_EQ(stored.rdb_version, 10);  // redis 7.0
  // The fixture's own INFO keyspace at save time (redis-7.0.15.json).
  const std::map<uint64_t, rdb::DbCounts> expected{{0, {519, 502}}, {3, {2, 0}}, {15, {1000, 0}}};
  EXPECT_EQ(stored.keyspace, expected);

  // A committed writer ignores Abort and its destructor leaves the snapshot alone.
  writer->Abort();
  writer.reset();
  EXPECT_TRUE(fs::exists(dir / "0001.rdb"));
  EXPECT_TRUE(store.Exists("bkup-20150515-final"));
}

TEST(StorageStoreTest, ExistsIsCaseInsensitiveAndCoversInFlightSnapshots) {
  TempDir tmp;
  SnapshotStore store = OpenStore(tmp.path() / "s");
  EXPECT_FALSE(store.Exists("Bkup"));
  auto writer = BeginOrDie(store, Initial("Bkup"));
  EXPECT_TRUE(store.Exists("Bkup"));
  EXPECT_TRUE(store.Exists("bkup"));
  EXPECT_TRUE(store.Exists("BKUP"));
  EXPECT_FALSE(store.Exists("bkup2"));
  // A second writer for the same name, in any case, is refused while the first one writes.
  auto second = store.Begin(Initial("bKUP"));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("already being created"), std::string::npos)
      << second.error().message();
  // So is one from a second store object on the same root (its own lock file description).
  SnapshotStore other = OpenStore(tmp.path() / "s");
  EXPECT_TRUE(other.Exists("bkup"));
  EXPECT_FALSE(other.Begin(Initial("bkup")).ok());

  std::vector<Snapshot> listed = store.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].snapshot_name, "Bkup");
  EXPECT_EQ(listed[0].snapshot_status, "creating");
  ASSERT_TRUE(store.Describe("bkup").has_value());
  EXPECT_EQ(store.Describe("bkup")->snapshot_status, "creating");

  Snapshot final_manifest = Initial("Bkup");
  ASSERT_TRUE(writer->Commit(final_manifest, nullptr).ok());
  EXPECT_TRUE(store.Exists("bkup"));
  auto after = store.Begin(Initial("BKUP"));
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.error().message().find("'Bkup' already exists"), std::string::npos)
      << after.error().message();
  // Invalid names are refused by Begin with the rule that failed.
  auto invalid = store.Begin(Initial("../etc"));
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.error().message().find("invalid snapshot name"), std::string::npos);
}

TEST(StorageStoreTest, ListSortsAndNeverShowsAPartialAsAvailable) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  for (const std::string& name : {std::string("charlie"), std::string("Alpha")}) {
    auto writer = BeginOrDie(store, Initial(name));
    Snapshot m = Initial(name);
    ASSERT_TRUE(writer->Commit(m, nullptr).ok());
  }
  auto in_flight = BeginOrDie(store, Initial("bravo"));

  // A writer caught between writing its final manifest and the rename: the manifest inside
  // already says "available", and the writer still holds its lock.
  Snapshot almost = Initial("delta");
  almost.snapshot_status = "available";
  const fs::path live =
      root / (".partial-delta-" + std::to_string(::getpid()) + "-00000000000000aa");
  fs::create_directory(live);
  WriteText(live / "manifest.json", SnapshotToJson(almost));
  const int live_fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(live_fd, 0);
  ASSERT_EQ(::flock(live_fd, LOCK_EX), 0);

  // A committed directory whose manifest is unreadable shows as failed, so it can be deleted.
  fs::create_directory(root / "echo");
  WriteText(root / "echo" / "manifest.json", "{ not json");
  // Things in the root that are not snapshots are ignored.
  fs::create_directory(root / "not_a_snapshot_name");
  WriteText(root / "stray-file", "x");

  std::vector<std::string> names;
  std::vector<std::string> statuses;
  for (const Snapshot& s : store.List()) {
    names.push_back(s.snapshot_name);
    statuses.push_back(s.snapshot_status);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"Alpha", "bravo", "charlie", "delta", "echo"}));
  EXPECT_EQ(statuses,
            (std::vector<std::string>{"available", "creating", "available", "creating", "failed"}));
  EXPECT_EQ(store.Describe("delta")->snapshot_status, "creating");

  // Once that writer is gone (its lock released, as when a process dies), the partial is
  // abandoned: not listed, not taken, and swept.
  ::close(live_fd);
  names.clear();
  for (const Snapshot& s : store.List()) names.push_back(s.snapshot_name);
  EXPECT_EQ(names, (std::vector<std::string>{"Alpha", "bravo", "charlie", "echo"}));
  EXPECT_FALSE(store.Exists("delta"));
  EXPECT_FALSE(store.Describe("delta").has_value());
  auto swept = store.SweepAbandonedPartials();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, std::vector<std::string>{live.filename().string()});
  EXPECT_FALSE(fs::exists(live));
  // The live writer's partial directory survives the sweep.
  EXPECT_TRUE(fs::exists(in_flight->dir()));
  EXPECT_TRUE(store.Exists("bravo"));
}

TEST(StorageStoreTest, AbortAndDestructorRemoveEverything) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  {
    auto writer = BeginOrDie(store, Initial("aborted"));
    auto fd = writer->CreateFile("0001.rdb.zst");
    ASSERT_TRUE(fd.ok());
    WriteFd(*fd, std::vector<uint8_t>(4096, 7));
    writer->Abort();
    EXPECT_FALSE(fs::exists(writer->dir()));
    writer->Abort();  // idempotent
    EXPECT_FALSE(writer->CreateFile("0002.rdb").ok());
    Snapshot m = Initial("aborted");
    EXPECT_FALSE(writer->Commit(m, nullptr).ok());
  }
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
  EXPECT_FALSE(store.Exists("aborted"));
  {
    auto writer = BeginOrDie(store, Initial("dropped"));
    auto fd = writer->CreateFile("0001.rdb");
    ASSERT_TRUE(fd.ok());
    WriteFd(*fd, std::vector<uint8_t>(100, 1));
  }  // destroyed without Commit
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
  EXPECT_FALSE(store.Exists("dropped"));
  EXPECT_TRUE(store.List().empty());
}

TEST(StorageStoreTest, CommitRefusesANameThatAppearedMeanwhile) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  auto writer = BeginOrDie(store, Initial("bkup"));
  auto fd = writer->CreateFile("0001.rdb");
  ASSERT_TRUE(fd.ok());
  WriteFd(*fd, ReadBytes(kFixture));
  // Someone makes the directory by hand, with a different case, while the snapshot is written.
  fs::create_directory(root / "BKUP");
  Snapshot m = Initial("bkup");
  m.node_snapshots.push_back(NodeFor(writer->dir() / "0001.rdb", "0001.rdb", "0001"));
  const Status status = writer->Commit(m, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("'BKUP' appeared"), std::string::npos) << status.message();
  // Nothing of ours is left; theirs is untouched.
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{"BKUP"});
  EXPECT_TRUE(fs::is_empty(root / "BKUP"));
  EXPECT_EQ(m.snapshot_status, "creating");  // the caller's manifest was not marked available
}

TEST(StorageStoreTest, CommitRequiresTheManifestToMatchTheFiles) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  {
    // A file written but not in the manifest.
    auto writer = BeginOrDie(store, Initial("orphan"));
    ASSERT_TRUE(writer->CreateFile("0001.rdb").ok());
    Snapshot m = Initial("orphan");
    const Status status = writer->Commit(m, nullptr);
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find("no NodeSnapshot names it"), std::string::npos)
        << status.message();
  }
  {
    // A manifest entry for a file that was never written.
    auto writer = BeginOrDie(store, Initial("ghost"));
    Snapshot m = Initial("ghost");
    NodeSnapshot node;
    node.node_group_id = "0001";
    node.file = "0001.rdb";
    m.node_snapshots.push_back(node);
    const Status status = writer->Commit(m, nullptr);
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find("which was not created"), std::string::npos)
        << status.message();
  }
  {
    // A stored size that disagrees with the file.
    auto writer = BeginOrDie(store, Initial("short"));
    auto fd = writer->CreateFile("0001.rdb");
    ASSERT_TRUE(fd.ok());
    WriteFd(*fd, std::vector<uint8_t>(10, 0));
    Snapshot m = Initial("short");
    NodeSnapshot node;
    node.node_group_id = "0001";
    node.file = "0001.rdb";
    node.stored_bytes = 11;
    m.node_snapshots.push_back(node);
    const Status status = writer->Commit(m, nullptr);
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find("holds 10 bytes"), std::string::npos) << status.message();
  }
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
}

TEST(StorageStoreTest, DeleteRemovesTheDirectory) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  auto writer = BeginOrDie(store, Initial("gone"));
  Snapshot m = Initial("gone");
  ASSERT_TRUE(writer->Commit(m, nullptr).ok());
  ASSERT_TRUE(store.Exists("gone"));

  const Status missing = store.Delete("never-was");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.message(), "snapshot 'never-was' not found");

  auto in_flight = BeginOrDie(store, Initial("busy"));
  const Status busy = store.Delete("busy");
  EXPECT_FALSE(busy.ok());
  EXPECT_NE(busy.message().find("still being created"), std::string::npos) << busy.message();
  EXPECT_TRUE(fs::exists(in_flight->dir()));
  in_flight.reset();

  const Status deleted = store.Delete("GONE");
  ASSERT_TRUE(deleted.ok()) << deleted.message();
  EXPECT_FALSE(store.Exists("gone"));
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
  EXPECT_FALSE(store.Delete("gone").ok());

  // Leftovers of a delete interrupted after its rename are swept.
  fs::create_directories(root / ".deleting-0123456789abcdef" / "x");
  auto swept = store.SweepAbandonedPartials();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, std::vector<std::string>{".deleting-0123456789abcdef"});
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
}

TEST(StorageStoreTest, AWriterThatDiesLeavesAnAbandonedPartial) {
  TempDir tmp;
  const fs::path root = tmp.path() / "s";
  SnapshotStore store = OpenStore(root);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child begins a snapshot, says so, and waits to be killed. It never returns into
    // GoogleTest, and _exit skips every destructor, as a crash would.
    ::close(ready[0]);
    auto opened = SnapshotStore::Open(root);
    if (!opened.ok()) ::_exit(1);
    auto begun = opened->Begin(Initial("crashy"));
    if (!begun.ok()) ::_exit(2);
    std::unique_ptr<SnapshotWriter>& writer = *begun;
    auto fd = writer->CreateFile("0001.rdb");
    if (!fd.ok()) ::_exit(3);
    (void)!::write(*fd, "REDIS", 5);
    (void)!::write(ready[1], "r", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the child did not begin its snapshot";
  ::close(ready[0]);

  // Alive in another process: taken, and listed as creating.
  EXPECT_TRUE(store.Exists("crashy"));
  ASSERT_EQ(store.List().size(), 1u);
  EXPECT_EQ(store.List()[0].snapshot_status, "creating");
  auto swept = store.SweepAbandonedPartials();
  ASSERT_TRUE(swept.ok());
  EXPECT_TRUE(swept->empty());

  ::kill(child, SIGKILL);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);

  // Dead: its directory is still there, but it is nobody's snapshot.
  EXPECT_EQ(SnapshotEntries(root).size(), 1u);
  EXPECT_FALSE(store.Exists("crashy"));
  EXPECT_TRUE(store.List().empty());
  swept = store.SweepAbandonedPartials();
  ASSERT_TRUE(swept.ok());
  ASSERT_EQ(swept->size(), 1u);
  EXPECT_TRUE((*swept)[0].starts_with(".partial-crashy-"));
  EXPECT_EQ(SnapshotEntries(root), std::vector<std::string>{});
  // And the name can be used again.
  auto again = BeginOrDie(store, Initial("crashy"));
  EXPECT_TRUE(store.Exists("crashy"));
}

TEST(StorageStoreTest, ReplaceManifestRecordsLaterVerdicts) {
  TempDir tmp;
  SnapshotStore store = OpenStore(tmp.path() / "s");
  auto writer = BeginOrDie(store, Initial("later"));
  Snapshot m = Initial("later");
  ASSERT_TRUE(writer->Commit(m, nullptr).ok());
  GateVerdict readback;
  readback.gate = "readback";
  readback.phase = "store";
  readback.passed = true;
  readback.evidence = "read back";
  m.gates.push_back(readback);
  ASSERT_TRUE(store.ReplaceManifest(m).ok());
  EXPECT_EQ(store.Describe("later")->gates, m.gates);
  Snapshot unknown = Initial("unknown");
  EXPECT_FALSE(store.ReplaceManifest(unknown).ok());
}

// ---- The readback gate ----

class StorageReadbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = ReadBytes(kFixture);
    ASSERT_FALSE(fixture_.empty()) << kFixture;
    // Compressed by the real zstd program, as an operator's own tools would.
    const fs::path zst = tmp_.path() / "fixture.rdb.zst";
    const testing::ProcessResult r =
        testing::RunCommand({"zstd", "-q", "-f", "-3", kFixture, "-o", zst.string()});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    zst_ = ReadBytes(zst);
    ASSERT_FALSE(zst_.empty());
  }

  // Commits a two-shard snapshot: 0001.rdb (plain) and 0002.rdb.zst. `edit` may change the
  // manifest before the commit.
  void CommitSnapshot(
      const std::string& name, const std::function<void(Snapshot&)>& edit = [](Snapshot&) {}) {
    auto writer = BeginOrDie(store_, Initial(name));
    Snapshot m = Initial(name);
    m.num_node_groups = 2;
    for (const auto& [file, bytes] :
         {std::pair<std::string, const std::vector<uint8_t>*>{"0001.rdb", &fixture_},
          std::pair<std::string, const std::vector<uint8_t>*>{"0002.rdb.zst", &zst_}}) {
      auto fd = writer->CreateFile(file);
      ASSERT_TRUE(fd.ok()) << fd.error().message();
      WriteFd(*fd, *bytes);
      m.node_snapshots.push_back(NodeFor(writer->dir() / file, file, file.substr(0, 4)));
    }
    edit(m);
    std::string evidence;
    const Status status = writer->Commit(m, &evidence);
    ASSERT_TRUE(status.ok()) << status.message();
    EXPECT_NE(evidence.find("fsynced 2 files"), std::string::npos) << evidence;
  }

  // Flips one byte of a stored file, in place.
  void FlipByte(const fs::path& path, uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x20));
    ASSERT_TRUE(f.good()) << path;
  }

  TempDir tmp_;
  SnapshotStore store_ = OpenStore(tmp_.path() / "s");
  std::vector<uint8_t> fixture_;
  std::vector<uint8_t> zst_;
};

TEST_F(StorageReadbackTest, PassesOnAnIntactSnapshot) {
  CommitSnapshot("good");
  std::string evidence;
  const Status status = Readback(store_, "GOOD", &evidence);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(evidence, "read back 2 files (" + std::to_string(fixture_.size() + zst_.size()) +
                          " stored bytes, " + std::to_string(2 * fixture_.size()) +
                          " RDB bytes), page cache dropped; CRC-64 and key counts match the "
                          "manifest");
  const Snapshot described = *store_.Describe("good");
  EXPECT_EQ(described.node_snapshots[1].compression, Compression::kZstd);
  EXPECT_EQ(described.node_snapshots[1].crc64, described.node_snapshots[0].crc64);
}

TEST_F(StorageReadbackTest, FailsOnAFlippedByteInAPlainFile) {
  CommitSnapshot("flip-plain");
  FlipByte(*store_.SnapshotDir("flip-plain") / "0001.rdb", fixture_.size() / 2);
  std::string evidence;
  const Status status = Readback(store_, "flip-plain", &evidence);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(status.message().starts_with("readback: 0001.rdb: ")) << status.message();
  EXPECT_TRUE(evidence.empty());
}

TEST_F(StorageReadbackTest, FailsOnAFlippedByteInAZstdFile) {
  CommitSnapshot("flip-zstd");
  FlipByte(*store_.SnapshotDir("flip-zstd") / "0002.rdb.zst", zst_.size() / 2);
  const Status status = Readback(store_, "flip-zstd", nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(status.message().starts_with("readback: 0002.rdb.zst: ")) << status.message();
}

TEST_F(StorageReadbackTest, FailsWhenTheManifestDisagrees) {
  CommitSnapshot("bad-crc", [](Snapshot& m) { m.node_snapshots[1].crc64 ^= 1; });
  Status status = Readback(store_, "bad-crc", nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("readback: 0002.rdb.zst: CRC-64 "), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("does not match the manifest's"), std::string::npos)
      << status.message();

  CommitSnapshot("bad-keys", [](Snapshot& m) { m.node_snapshots[0].keyspace[3].keys = 3; });
  status = Readback(store_, "bad-keys", nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.message(), "readback: 0001.rdb: db3 has 2 keys in the file, 3 in the manifest");

  status = Readback(store_, "no-such-snapshot", nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("not committed"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace finalsnap
