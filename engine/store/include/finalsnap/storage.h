// The snapshot store: the on-disk layout of snapshots, the manifest that describes each one, and
// the two store-phase gates, `durable` (SnapshotWriter::Commit) and `readback` (Readback).
//
// Start with SnapshotStore (open a root; list, describe and delete snapshots) and SnapshotWriter
// (one snapshot being written). The layout under the root:
//
//   <root>/<SnapshotName>/manifest.json      the Snapshot below, as JSON with ElastiCache's names
//   <root>/<SnapshotName>/0001.rdb.zst       one file per shard, named by NodeGroupId (.rdb, .lz4)
//   <root>/.partial-<name>-<pid>-<hex>/      a snapshot being written (<name> cut to 64 chars)
//   <root>/.deleting-<hex>/                  a snapshot being deleted
//   <root>/.lock                             flock(2)ed by every operation that changes the root
//   <root>/.probe-<pid>-<hex>                CheckWritable's probe file, unlinked at once
//
// The life of a snapshot:
//
//   Expected<std::unique_ptr<SnapshotWriter>> begun = store.Begin(initial);  // "creating"
//   if (!begun.ok()) return begun.error();
//   std::unique_ptr<SnapshotWriter> writer = *std::move(begun);
//   Expected<int> fd = writer->CreateFile("0001.rdb.zst");   // the pipeline writes *fd
//   if (!fd.ok()) return fd.error();
//   writer->Commit(final_manifest, &evidence);       // the `durable` gate: "available"
//   Readback(store, name, &evidence);                // the `readback` gate
//
// or, with the file read back while it is written (StreamingReadback, driven by the capture
// pipeline), so that the gate adds no serial tail:
//
//   Expected<std::unique_ptr<StreamingReadback>> started =
//       StreamingReadback::Start(writer->dir() / file, codec);
//   if (!started.ok()) return started.error();
//   std::unique_ptr<StreamingReadback> rb = *std::move(started);      // a WriteFollower
//   Pipeline pipeline(loop, pool, {codec, level}, *fd, rb.get());      // tells it every write
//   co_await pipeline.Finish();                       // the file is written and read back
//   ReadbackReport report = rb->Wait();               // what the device gave back
//   writer->Commit(final_manifest, &evidence);       // `durable`
//   CheckReadback({&report, 1}, final_manifest, &evidence);   // `readback`
//
// A directory under a snapshot's own name only ever appears by an atomic rename of a partial
// directory whose files and manifest were already fsynced, so it always holds a complete snapshot.
// Nothing in a partial directory is ever reported as "available".
//
// Crashes and concurrency. A writer holds an exclusive flock(2) on its partial directory for as
// long as it lives, and the kernel drops that lock when the process dies, so "is this partial
// directory still being written?" has an exact answer that does not depend on pid reuse (the pid
// in the name is for people). Partial directories of dead writers are ignored by List, Exists
// and Describe, and SweepAbandonedPartials removes them. Begin, Commit, Delete and the sweep hold
// an exclusive lock on <root>/.lock while they check and change the root, so two processes cannot
// both begin (or commit) snapshots of the same name; readers hold it shared.
//
// Nothing here prints or exits; every failure comes back as a Status or an Expected.
#ifndef FINALSNAP_STORAGE_H_
#define FINALSNAP_STORAGE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "finalsnap/decoder.h"
#include "finalsnap/gate.h"
#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"
#include "finalsnap/write_follower.h"

namespace finalsnap {

// One shard of a snapshot: the node it was captured from and the file that holds its RDB.
struct NodeSnapshot {
  std::string node_group_id;     // "0001", "0002", ...
  std::string cache_node_id;     // "0001" for a standalone cluster; "<group>-001" for members
  std::string cache_cluster_id;  // the member's cluster id
  std::string source_endpoint;   // host:port the RDB came from
  // The node's used_memory at capture time, in bytes. ElastiCache's CacheSize is a string such
  // as "5 MB"; the manifest holds that form (CacheSizeString) and the exact byte count beside it.
  uint64_t cache_size = 0;
  std::string snapshot_create_time;        // ISO 8601 UTC, "2026-11-25T01:02:03.456Z"
  std::vector<std::pair<int, int>> slots;  // Redis Cluster slot ranges, inclusive; else empty

  // The stored file, relative to the snapshot's directory: "0001.rdb.zst".
  std::string file;
  Compression compression = Compression::kNone;
  int compression_level = 0;
  uint64_t stored_bytes = 0;  // size of the file on disk; Commit fills it in when left at 0
  uint64_t rdb_bytes = 0;     // size of the RDB inside, magic to checksum
  int rdb_version = 0;
  uint64_t crc64 = 0;  // CRC-64 over the RDB up to and including EOF (Report::computed_crc)
  std::map<uint64_t, rdb::DbCounts> keyspace;  // keys and expires per database, from the RDB
  std::string repl_id;                         // the primary's replication id, if known
  std::optional<uint64_t> repl_offset;         // the replication offset of the RDB, if known

  friend bool operator==(const NodeSnapshot&, const NodeSnapshot&) = default;
};

// A snapshot, with ElastiCache's Snapshot fields plus the gate verdicts.
struct Snapshot {
  std::string snapshot_name;
  // "creating" while it is written, "available" once committed, "failed" for a snapshot
  // directory whose manifest cannot be read. Never "available" unless committed.
  std::string snapshot_status = "creating";
  // ElastiCache's SnapshotSource: "manual" for create-snapshot and for final snapshots alike
  // ("automated" is for scheduled backups, which finalsnap does not take).
  std::string snapshot_source = "manual";
  std::string cache_cluster_id;      // for a snapshot of a cache cluster, else empty
  std::string replication_group_id;  // for a snapshot of a replication group, else empty
  std::string engine;                // "redis" or "valkey"
  std::string engine_version;        // "7.0.15"
  int num_node_groups = 0;
  std::vector<NodeSnapshot> node_snapshots;
  std::vector<GateVerdict> gates;
  // The operation this is the final snapshot of ("delete-cache-cluster",
  // "delete-replication-group"), or empty for create-snapshot.
  std::string final_snapshot_of;
  // Why the status is "failed" (the manifest or a file it names is unusable), for messages; not
  // part of the manifest.
  std::string status_message;

  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

// Pretty-printed JSON with ElastiCache's field names: SnapshotName, SnapshotStatus,
// SnapshotSource, CacheClusterId, ReplicationGroupId, Engine, EngineVersion, NumNodeGroups,
// NodeSnapshots [{NodeGroupId, CacheNodeId, CacheClusterId, CacheSize ("5 MB"), CacheSizeBytes,
// SnapshotCreateTime, NodeGroupConfiguration {NodeGroupId, Slots "0-5460,10923-16383"} (Cluster
// only), SourceEndpoint, File, Compression, CompressionLevel, StoredBytes, RdbBytes, RdbVersion,
// Crc64 (16 lowercase hex digits), Keyspace [{Db, Keys, Expires}], ReplicationId,
// ReplicationOffset}], Gates [{Gate, Phase, Passed, Evidence, Node, AtMs}], FinalSnapshotOf, and
// ManifestVersion (1). Empty optional strings are left out.
std::string SnapshotToJson(const Snapshot& snapshot);
// The inverse of SnapshotToJson. On failure the error says which field was wrong
// ("NodeSnapshots[0].Crc64: expected 16 hex digits").
Expected<Snapshot> SnapshotFromJson(std::string_view json);

// ElastiCache's form of a cache size: whole MiB, rounded down, as "<n> MB" ("0 MB" for less).
std::string CacheSizeString(uint64_t bytes);
// "2026-11-25T01:02:03.456Z": UTC with milliseconds, the form SnapshotCreateTime uses.
std::string SnapshotTimeString(std::chrono::system_clock::time_point time);

// Checks a snapshot name: ok, or an error saying why it is not acceptable.
// The rules are ElastiCache's identifier rules, which also make every name a safe single path
// component: 1 to 255 ASCII letters, digits and hyphens; the first character a letter; no
// trailing hyphen and no two hyphens in a row. So "", ".", "..", ".hidden", "a/b", "../x" and
// names with '.', '_', spaces or NUL are all refused.
Status CheckSnapshotName(std::string_view name);

class SnapshotWriter;

class SnapshotStore {
 public:
  enum class Access {
    kReadWrite,  // creates the root (0700) if missing; fails unless it is a writable directory
    kReadOnly,   // for describe, verify and restore: the root must exist; nothing is created
  };

  // Opens (and for kReadWrite creates, with any missing parents) the store at `root`. Returns
  // the store, or an error naming the path and the reason.
  static Expected<SnapshotStore> Open(std::filesystem::path root,
                                      Access access = Access::kReadWrite);

  const std::filesystem::path& root() const { return root_; }

  // Whether `name` is taken, compared case-insensitively as ElastiCache ids are: by a committed
  // snapshot, by a snapshot being written by a live writer, or by any other entry of the root
  // with that name (a symbolic link, even a dangling one, a file, a directory).
  bool Exists(std::string_view name) const;
  // Proves the root is writable now: creates, writes, fsyncs and unlinks a probe file.
  Status CheckWritable() const;
  // Bytes available to an unprivileged writer on the root's file system (statvfs f_bavail), or
  // 0 if it cannot be determined, which a caller checking for room treats as "no room".
  uint64_t FreeBytes() const;

  // Committed snapshots (status from their manifests; "failed" when a manifest is unreadable)
  // and snapshots being written (always "creating"), sorted by name, case-insensitively.
  std::vector<Snapshot> List() const;
  // The snapshot called `name` (case-insensitively), committed or being written, as List shows
  // it; nullopt if there is none.
  std::optional<Snapshot> Describe(std::string_view name) const;
  // The directory of the committed snapshot called `name` (case-insensitively), if any.
  std::optional<std::filesystem::path> SnapshotDir(std::string_view name) const;

  // Deletes the committed snapshot called `name` (case-insensitively). It is first renamed out
  // of sight, so a crash part way never leaves a half-deleted snapshot under its name. Fails if
  // there is no such snapshot (the CLI's SnapshotNotFoundFault; a snapshot that is still being
  // written is not deleted either: check Describe() to tell the two apart).
  Status Delete(std::string_view name);

  // Replaces the manifest of the committed snapshot `snapshot.snapshot_name` (write to a temp
  // file, fsync, rename, fsync the directory): for recording verdicts reached after the commit,
  // such as `readback`, or for marking a snapshot "failed".
  Status ReplaceManifest(const Snapshot& snapshot);

  // Begins a snapshot named initial.snapshot_name: checks the name, refuses it if Exists(), and
  // creates the partial directory (0700) holding `initial` as its manifest, status "creating".
  Expected<std::unique_ptr<SnapshotWriter>> Begin(const Snapshot& initial);

  // Removes partial directories left by writers that died, leftovers of interrupted deletes and
  // probe files of dead processes. Returns the names of the entries removed, or the first error.
  Expected<std::vector<std::string>> SweepAbandonedPartials();

 private:
  SnapshotStore(std::filesystem::path root, Access access);

  std::filesystem::path root_;
  Access access_;
};

// One snapshot being written, in its partial directory. Not thread-safe: call it from one
// thread; only the descriptors it hands out may be written from others. Destroying a writer
// that was not committed aborts it.
class SnapshotWriter {
 public:
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Creates `file_name` (a plain name such as "0001.rdb.zst") in the partial directory with
  // O_CREAT|O_EXCL|O_WRONLY|O_CLOEXEC and mode 0600, and returns its descriptor for the pipeline
  // to write. The writer keeps owning the descriptor: write to it, but do not close it; Commit
  // fsyncs and closes it, Abort closes it. All writes must have finished before either is called.
  Expected<int> CreateFile(const std::string& file_name);

  // The `durable` gate. Checks that `final_manifest` names every file created (and only those),
  // fills in each StoredBytes left at 0 and checks the others against the files' sizes, sets its
  // status to "available", then: fsyncs every file, writes manifest.json (temp file, fsync,
  // rename), fsyncs the partial directory, renames it to <root>/<name> (refusing to replace
  // anything, also a name that differs only in case) and fsyncs the root. On success `evidence`
  // says what was done: "fsynced 2 files (123456 bytes), manifest, dir; renamed
  // .partial-bkup-1234-0123456789abcdef -> bkup; fsynced root". On failure everything the writer
  // made is removed (as by Abort) and the error says which step failed.
  Status Commit(Snapshot& final_manifest, std::string* evidence);

  // Closes the descriptors and removes the partial directory with everything in it. Idempotent;
  // does nothing after a successful Commit.
  void Abort();

  // The partial directory while writing; after Commit, the snapshot's own directory.
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& name() const { return name_; }
  bool committed() const { return committed_; }

 private:
  friend class SnapshotStore;
  struct File {
    std::string name;
    int fd = -1;
  };

  SnapshotWriter(std::filesystem::path root, std::string name, std::filesystem::path dir,
                 int dir_fd);

  std::filesystem::path root_;
  std::string name_;
  std::filesystem::path dir_;
  int dir_fd_;  // open on dir_ and flock()ed for the writer's life: the "alive" mark
  std::vector<File> files_;
  bool committed_ = false;
  bool aborted_ = false;
};

// The `readback` gate. For each file of the committed snapshot `name`: asks the kernel to drop
// its cached pages (posix_fadvise DONTNEED, so the read comes from the device where it can),
// decompresses and validates it with VerifyFile, and compares the stored size, compression, RDB
// size and version, CRC-64 and keys and expires per database with the manifest. On success
// `evidence` sums it up ("read back 2 files (1234 stored bytes, 5678 RDB bytes), page cache
// dropped; CRC-64 and key counts match the manifest"); on failure the error names the file and
// the first difference.
//
// This reads every file after the commit, so it is a serial tail of the operation. A capture
// that writes through a Pipeline reads its file back while it is written instead
// (StreamingReadback below) and ends with CheckReadback.
Status Readback(const SnapshotStore& store, std::string_view name, std::string* evidence);

// What a readback of one stored file found: the same facts VerifyFile reports, plus how and
// from where the bytes were read.
struct ReadbackReport {
  std::string path;                              // the file as opened (its partial directory)
  Compression compression = Compression::kNone;  // as detected from the stored bytes
  uint64_t stored_bytes = 0;                     // bytes read back: the whole file on success
  rdb::Report report;                            // what the validator saw in the decoded bytes
  std::optional<rdb::Diagnostic> rdb_error;      // the first RDB error in the decoded bytes
  std::string io_error;  // open, sync, read or decompression error; "" if none
  // How the bytes were read. direct: O_DIRECT, so every byte came from the device, never from
  // the page cache. Otherwise (a file system without O_DIRECT) each stretch was synced and its
  // cached pages dropped (POSIX_FADV_DONTNEED) before it was read; cache_dropped is false if
  // the kernel refused a drop.
  bool direct = false;
  bool cache_dropped = true;
  bool deep = false;       // the RDB has no CRC-64, so a second, deep pass walked every LZF string
  uint64_t stretches = 0;  // synced-then-read pieces the file was read back in
  // The serial tail: what was still to read when the writer finished, and how long it took.
  uint64_t tail_bytes = 0;
  double tail_seconds = 0;

  bool ok() const { return io_error.empty() && !rdb_error.has_value(); }
};

// Reads a snapshot file back while it is being written, so that the `readback` gate is not a
// serial tail. The writer (any one thread) reports how far the file is written; a thread of this
// class follows it a stretch at a time:
//
//   sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)   the stretch is on the device
//   read it with O_DIRECT                           from the device, not the page cache
//     (no O_DIRECT: POSIX_FADV_DONTNEED, then a buffered read)
//   VerifySink (StreamDecoder -> rdb::Validator)    one sink for the whole file, the one
//                                                   VerifyFile reads through, so the CRC-64 and
//                                                   the key counts are those of everything
//                                                   stored, in order
//
// Stretches end on 4 KiB boundaries (the last one at the end of the file), so every byte is read
// exactly once, after its page was synced. Memory is one 1 MiB aligned buffer plus the decoder's
// window, whatever the file size.
//
//   Expected<std::unique_ptr<StreamingReadback>> started =
//       StreamingReadback::Start(path, Compression::kZstd);
//   if (!started.ok()) return started.error();
//   std::unique_ptr<StreamingReadback> rb = *std::move(started);
//   rb->Written(n);    // after each write(2): bytes [0, n) of the file are written
//   rb->Close(size);   // the file is complete
//   ReadbackReport r = rb->Wait();
//   CheckReadback({&r, 1}, committed_manifest, &evidence);   // the gate, after Commit
class StreamingReadback final : public WriteFollower {
 public:
  struct Options {
    // How much written data (at least) makes a stretch. Smaller: a shorter tail, more syscalls.
    uint64_t stretch_bytes = uint64_t{4} << 20;
    // Read with O_DIRECT where the file system supports it. Tests turn it off to exercise the
    // page-cache path.
    bool direct = true;
    // Tests: runs on the readback thread after a stretch [offset, offset + length) was synced
    // and before it is read (to change the stored bytes under the readback).
    std::function<void(uint64_t offset, uint64_t length)> before_read;
  };

  // Opens `path` (the file being written) for reading and starts the readback thread.
  // `compression` is what the writer writes; the stored bytes are sniffed as well, and the
  // report says what they turned out to be. Returns an error if the file cannot be opened.
  static Expected<std::unique_ptr<StreamingReadback>> Start(const std::filesystem::path& path,
                                                            Compression compression,
                                                            Options options);
  static Expected<std::unique_ptr<StreamingReadback>> Start(const std::filesystem::path& path,
                                                            Compression compression) {
    return Start(path, compression, Options{});
  }
  ~StreamingReadback() override;  // stops the thread (as Abort) if it is still running
  StreamingReadback(const StreamingReadback&) = delete;
  StreamingReadback& operator=(const StreamingReadback&) = delete;

  // The writer: bytes [0, end) of the file have been written (write(2) returned). Cheap; call
  // it after every write.
  void Written(uint64_t end) override;
  // The writer: the file is complete and `size` bytes long. The thread reads what is left.
  void Close(uint64_t size) override;
  // Called once, on the readback thread, when the report is final (after Close, or at the first
  // error). Set it before Close.
  void OnDone(std::function<void()> fn) override;
  bool done() const;
  // Stored bytes read back so far (whole stretches, synced, read and validated): for progress.
  // Any thread.
  uint64_t read_bytes() const;
  // Blocks until the report is final (call Close first), then returns it.
  ReadbackReport Wait();
  // Stops the thread without finishing (a refused capture); Wait() then reports "aborted".
  void Abort() override;

 private:
  struct State;
  explicit StreamingReadback(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The `readback` gate for files read back while they were written: each NodeSnapshot of the
// committed `manifest` must have its report (matched by file name), and each report must be
// clean and agree with its NodeSnapshot on stored size, compression, RDB size and version,
// CRC-64 and keys and expires per database. On success `evidence` says what was read back and
// from where ("read back 0001.rdb.zst while it was written: 134388015 stored bytes in 33
// stretches, each synced to the device (sync_file_range) and read with O_DIRECT; decoded (zstd)
// to 302453107 RDB bytes; CRC-64 ... and key counts match the manifest; 1.2 MiB read after the
// transfer, in 9 ms"); on failure the error names the file and the first difference.
Status CheckReadback(std::span<const ReadbackReport> readbacks, const Snapshot& manifest,
                     std::string* evidence);

// Writes each shard's RDB of snapshot `name`, decompressed and validated on the way (read
// through a VerifySink whose tap writes the file; one that fails is removed again), as
// `<target>/dump.rdb` (one shard) or `<target>/<NodeGroupId>/dump.rdb` (several), ready for
// redis-server. Refuses to overwrite an existing dump.rdb.
struct RestoreResult {
  Status status;
  std::vector<std::filesystem::path> files;
  uint64_t rdb_bytes = 0;
};
RestoreResult RestoreSnapshot(const SnapshotStore& store, std::string_view name,
                              const std::filesystem::path& target_dir);

}  // namespace finalsnap

#endif  // FINALSNAP_STORAGE_H_
