// What the snapshot store's files share (store-private): the names under the root, the root's
// lock and its scan, and reading and writing a snapshot's manifest. The layout itself is
// described in finalsnap/storage.h. The store's files:
//
//   manifest.cc            the manifest's JSON, its file, and the name rules
//   root.cc                RootLock, ScanRoot and what is looked up in a scan (this header)
//   snapshot_store.cc      SnapshotStore: open, list, describe, delete, begin, sweep
//   writer.cc              SnapshotWriter and its commit, the `durable` gate
//   readback.cc            the `readback` gate: Readback and CheckReadback
//   streaming_readback.cc  StreamingReadback, the file read back while it is written
//   restore.cc             RestoreSnapshot
//
// Every change to what a reader can see under the root is one rename(2): a partial directory
// becomes a snapshot (Commit), a snapshot becomes a .deleting- directory (Delete), a temp file
// becomes manifest.json. Each rename is preceded by fsyncs of what it publishes and followed by
// an fsync of the directory that holds it, so after a crash a reader sees either the old state
// or the new one, never a snapshot whose files are not all on disk.
#ifndef FINALSNAP_ENGINE_STORE_ROOT_H_
#define FINALSNAP_ENGINE_STORE_ROOT_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "file_io.h"
#include "finalsnap/storage.h"

namespace finalsnap::detail {

inline constexpr std::string_view kManifestName = "manifest.json";
inline constexpr std::string_view kPartialPrefix = ".partial-";
inline constexpr std::string_view kDeletingPrefix = ".deleting-";
inline constexpr std::string_view kProbePrefix = ".probe-";
inline constexpr std::string_view kLockName = ".lock";
// How much of the snapshot name goes into a partial directory's name. The full name would not
// fit in NAME_MAX beside the prefix, pid and random suffix; the manifest inside has it whole.
inline constexpr size_t kPartialNameChars = 64;

inline bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
inline std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// 16 random hex digits: enough that two writers never pick the same partial directory.
std::string RandomHex();

// ---- manifest.cc ----

// Ok if `name` is a plain file name inside a snapshot directory; else an error saying why not
// (a path, hidden, the manifest's own).
Status CheckFileName(std::string_view name);
// Reads and parses `dir`/manifest.json, refusing a file too large to be a manifest. On failure
// the error names the path and the reason.
Expected<Snapshot> LoadManifest(const std::filesystem::path& dir);
// Writes `snapshot` as `dir_fd`/manifest.json with WriteFileAtomic.
Status WriteManifest(int dir_fd, const Snapshot& snapshot, DirSync dir_sync);

// ---- root.cc ----

// Whether a process with this pid exists (EPERM counts: it exists, as someone else's).
bool PidAlive(long pid);
// flock(2) that retries when a signal interrupts it.
int Flock(int fd, int operation);

// <root>/.lock, held shared by readers and exclusively by anything that changes the root, for
// the duration of one store operation. Locks are per open file, so two stores in one process
// exclude each other as two processes do.
class RootLock {
 public:
  RootLock(const std::filesystem::path& root, bool exclusive, bool may_create);
  ~RootLock();
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

// What a scan of the root found. Only names are inspected, except for partial directories,
// whose writer is asked whether it still lives.
struct RootScan {
  struct Committed {
    std::string name;  // the directory name, which is the snapshot name
    std::filesystem::path path;
  };
  struct Partial {
    std::string name_hint;  // the (possibly cut) snapshot name in the directory name
    long pid = 0;
    std::filesystem::path path;
    bool alive = false;
  };
  std::vector<Committed> committed;
  std::vector<Partial> partials;
  std::vector<std::filesystem::path> deleting;
  // Probe files, each with the pid that made it.
  std::vector<std::pair<std::filesystem::path, long>> probes;
  // Every entry's name, whatever it is (symbolic links, files and dot-entries included): a
  // snapshot name is taken by any of them.
  std::vector<std::string> names;
  std::string error;  // set if the root could not be listed
};

RootScan ScanRoot(const std::filesystem::path& root);

// The committed snapshot called `name`: the exact spelling if there is one, else the first
// that matches case-insensitively (two such directories only exist if made by hand).
const RootScan::Committed* FindCommitted(const RootScan& scan, std::string_view name);
// The partial directory of a live writer for `name`, if any; `actual_name` (if not null) gets
// the name as its manifest spells it.
const RootScan::Partial* FindLivePartial(const RootScan& scan, std::string_view name,
                                         std::string* actual_name);
// Whether any entry of the root has `name`, ignoring case.
bool NameTaken(const RootScan& scan, std::string_view name);
// A committed snapshot as List shows it: "failed" (with status_message saying why) when its
// manifest cannot be read or a file it names is not a regular file in the snapshot.
Snapshot LoadCommitted(const RootScan::Committed& committed);
// A snapshot being written, as List shows it: always "creating".
Snapshot LoadPartial(const RootScan::Partial& partial);

// Moves a directory out of sight (one rename), makes that durable, then removes it. The
// removal may fail part way without harm: a .deleting- directory is never listed, and the sweep
// finishes it.
Status RemoveDirDurably(const std::filesystem::path& root, const std::filesystem::path& dir);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_STORE_ROOT_H_
