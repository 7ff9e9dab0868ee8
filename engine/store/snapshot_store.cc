// SnapshotStore (storage.h): opening the root, and every store operation that reads or changes
// it: Exists, List, Describe, Delete, ReplaceManifest, Begin and the sweep. Each holds the root
// lock (root.h) for as long as it looks at the root.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "root.h"
#include "unique_fd.h"

namespace finalsnap {

namespace fs = std::filesystem;
using detail::DirSync;
using detail::ErrnoMessage;
using detail::FindCommitted;
using detail::FindLivePartial;
using detail::Flock;
using detail::FsyncDir;
using detail::FsyncFd;
using detail::kPartialNameChars;
using detail::kPartialPrefix;
using detail::kProbePrefix;
using detail::LoadCommitted;
using detail::LoadPartial;
using detail::NameTaken;
using detail::PidAlive;
using detail::Quote;
using detail::RandomHex;
using detail::RemoveDirDurably;
using detail::RootLock;
using detail::RootScan;
using detail::ScanRoot;
using detail::UniqueFd;
using detail::WriteAll;
using detail::WriteManifest;

SnapshotStore::SnapshotStore(fs::path root, Access access)
    : root_(std::move(root)), access_(access) {}

Expected<SnapshotStore> SnapshotStore::Open(fs::path root, Access access) {
  if (root.empty()) return Status::Error("the snapshot storage path is empty");
  std::error_code ec;
  // Absolute, so that the store keeps meaning the same directory if the caller changes its
  // working directory.
  root = fs::absolute(root, ec).lexically_normal();
  if (ec) return Status::Error("snapshot storage " + root.string() + ": " + ec.message());
  if (root.filename().empty()) root = root.parent_path();  // "dir/" -> "dir"
  const std::string where = "snapshot storage " + root.string();

  const fs::file_status status = fs::status(root, ec);
  if (fs::exists(status) && !fs::is_directory(status)) {
    return Status::Error(where + " exists and is not a directory");
  }
  if (access == Access::kReadOnly) {
    if (!fs::exists(status)) return Status::Error(where + ": " + ErrnoMessage(ENOENT));
    if (::access(root.c_str(), R_OK | X_OK) != 0) {
      return Status::Error(where + ": " + ErrnoMessage(errno));
    }
    return SnapshotStore(std::move(root), access);
  }

  if (!fs::exists(status)) {
    // Missing parents hold no data, only the way to it: 0755 exactly, never the umask's 0777
    // (a world-writable parent would let anyone rename the snapshots away).
    if (Status s = detail::CreateDirectories(root.parent_path(), 0755); !s.ok()) {
      return Status::Error(where + ": " + s.message());
    }
    if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Error(where + ": cannot create it: " + ErrnoMessage(errno));
    }
    // Snapshots hold the whole data set: nobody but the owner reads them, whatever the umask.
    if (::chmod(root.c_str(), 0700) != 0) {
      return Status::Error(where + ": chmod: " + ErrnoMessage(errno));
    }
    // The new directory's entry in its parent is made durable now, not at the first commit.
    if (Status s = FsyncDir(root.parent_path()); !s.ok()) {
      return Status::Error(where + ": " + s.message());
    }
    if (!fs::is_directory(root, ec)) return Status::Error(where + " exists and is not a directory");
  }
  if (::access(root.c_str(), W_OK | X_OK) != 0) {
    return Status::Error(where + " is not writable: " + ErrnoMessage(errno));
  }
  return SnapshotStore(std::move(root), access);
}

bool SnapshotStore::Exists(std::string_view name) const {
  // A reader that cannot lock (read-only media without a .lock) still answers; it just cannot
  // exclude a writer that is half way through Begin.
  const RootLock lock(root_, /*exclusive=*/false, /*may_create=*/access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  // Any entry of that name takes it, whatever it is: a symbolic link (even a dangling one), a
  // file or a directory that is not a snapshot would make the final rename fail after the
  // whole data set was captured.
  return NameTaken(scan, name) || FindLivePartial(scan, name, nullptr) != nullptr;
}

Status SnapshotStore::CheckWritable() const {
  const std::string where = "snapshot storage " + root_.string();
  if (access_ != Access::kReadWrite) return Status::Error(where + " was opened read-only");
  const std::string name =
      std::string(kProbePrefix) + std::to_string(::getpid()) + "-" + RandomHex();
  const fs::path path = root_ / name;
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    return Status::Error(where +
                         " is not writable: cannot create a file in it: " + ErrnoMessage(errno));
  }
  Status result = WriteAll(fd.get(), "finalsnap storage probe\n");
  if (result.ok()) result = FsyncFd(fd.get());
  fd.Reset();
  if (::unlink(path.c_str()) != 0 && result.ok()) {
    result = Status::Error("unlink: " + ErrnoMessage(errno));
  }
  if (!result.ok())
    return Status::Error(where + " is not writable: probe file: " + result.message());
  return Status::Ok();
}

uint64_t SnapshotStore::FreeBytes() const {
  struct statvfs st {};
  if (::statvfs(root_.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

std::vector<Snapshot> SnapshotStore::List() const {
  std::vector<Snapshot> snapshots;
  {
    const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
    const RootScan scan = ScanRoot(root_);
    for (const RootScan::Committed& committed : scan.committed) {
      snapshots.push_back(LoadCommitted(committed));
    }
    for (const RootScan::Partial& partial : scan.partials) {
      // A dead writer's leftovers are not a snapshot, not even one being created.
      if (partial.alive) snapshots.push_back(LoadPartial(partial));
    }
  }
  std::sort(snapshots.begin(), snapshots.end(), [](const Snapshot& a, const Snapshot& b) {
    const std::string la = Lower(a.snapshot_name);
    const std::string lb = Lower(b.snapshot_name);
    return la != lb ? la < lb : a.snapshot_name < b.snapshot_name;
  });
  return snapshots;
}

std::optional<Snapshot> SnapshotStore::Describe(std::string_view name) const {
  const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) {
    return LoadCommitted(*committed);
  }
  if (const RootScan::Partial* partial = FindLivePartial(scan, name, nullptr)) {
    return LoadPartial(*partial);
  }
  return std::nullopt;
}

std::optional<fs::path> SnapshotStore::SnapshotDir(std::string_view name) const {
  const RootLock lock(root_, /*exclusive=*/false, access_ == Access::kReadWrite);
  const RootScan scan = ScanRoot(root_);
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) return committed->path;
  return std::nullopt;
}

Status SnapshotStore::Delete(std::string_view name) {
  if (access_ != Access::kReadWrite) {
    return Status::Error("snapshot storage " + root_.string() + " was opened read-only");
  }
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(lock.error());
  const RootScan scan = ScanRoot(root_);
  const RootScan::Committed* committed = FindCommitted(scan, name);
  if (committed == nullptr) {
    if (FindLivePartial(scan, name, nullptr) != nullptr) {
      return Status::Error("snapshot " + Quote(name) +
                           " is still being created and cannot be deleted until it finishes");
    }
    return Status::Error("snapshot " + Quote(name) + " not found");
  }
  if (Status s = RemoveDirDurably(root_, committed->path); !s.ok()) {
    return Status::Error("delete snapshot " + Quote(committed->name) + ": " + s.message());
  }
  return Status::Ok();
}

Status SnapshotStore::ReplaceManifest(const Snapshot& snapshot) {
  const std::string what = "replace the manifest of snapshot " + Quote(snapshot.snapshot_name);
  if (access_ != Access::kReadWrite) return Status::Error(what + ": the store is read-only");
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(what + ": " + lock.error());
  const RootScan scan = ScanRoot(root_);
  const RootScan::Committed* committed = FindCommitted(scan, snapshot.snapshot_name);
  if (committed == nullptr) return Status::Error(what + ": no such committed snapshot");
  UniqueFd dir_fd(::open(committed->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return Status::Error(what + ": open: " + ErrnoMessage(errno));
  // WriteManifest's own fsync of the directory makes the new manifest durable.
  if (Status s = WriteManifest(dir_fd.get(), snapshot, DirSync::kSync); !s.ok()) {
    return Status::Error(what + ": " + s.message());
  }
  return Status::Ok();
}

Expected<std::unique_ptr<SnapshotWriter>> SnapshotStore::Begin(const Snapshot& initial) {
  const std::string& name = initial.snapshot_name;
  if (Status s = CheckSnapshotName(name); !s.ok()) {
    return Status::Error("invalid snapshot name " + Quote(name) + ": " + s.message());
  }
  if (access_ != Access::kReadWrite) {
    return Status::Error("snapshot storage " + root_.string() + " was opened read-only");
  }
  // Held until the partial directory exists, is locked and has its manifest, so that another
  // Begin for the same name (in this process or another) waits and then sees it.
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(lock.error());
  const RootScan scan = ScanRoot(root_);
  if (!scan.error.empty()) return Status::Error(scan.error);
  if (const RootScan::Committed* committed = FindCommitted(scan, name)) {
    return Status::Error("snapshot " + Quote(committed->name) + " already exists");
  }
  if (NameTaken(scan, name)) {
    return Status::Error("the name " + Quote(name) + " is taken by an entry in " + root_.string() +
                         " that is not a snapshot (remove it, or choose another name)");
  }
  std::string in_flight;
  if (const RootScan::Partial* partial = FindLivePartial(scan, name, &in_flight)) {
    return Status::Error("snapshot " + Quote(in_flight) + " is already being created (" +
                         partial->path.filename().string() + ")");
  }

  const std::string dir_name = std::string(kPartialPrefix) + name.substr(0, kPartialNameChars) +
                               "-" + std::to_string(::getpid()) + "-" + RandomHex();
  const fs::path dir = root_ / dir_name;
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return Status::Error("create " + dir.string() + ": " + ErrnoMessage(errno));
  }
  const auto fail = [&dir](std::string message) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return Status::Error(std::move(message));
  };
  if (::chmod(dir.c_str(), 0700) != 0)
    return fail("chmod " + dir.string() + ": " + ErrnoMessage(errno));
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (dir_fd.get() < 0) return fail("open " + dir.string() + ": " + ErrnoMessage(errno));
  // The "alive" mark that List, Exists and the sweep test for; the kernel drops it if we die.
  if (Flock(dir_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return fail("lock " + dir.string() + ": " + ErrnoMessage(errno));
  }
  Snapshot manifest = initial;
  manifest.snapshot_status = "creating";
  // Not yet durable, nor need it be: Commit fsyncs the directory before it is published.
  if (Status s = WriteManifest(dir_fd.get(), manifest, DirSync::kLeave); !s.ok()) {
    return fail(dir.string() + ": " + s.message());
  }
  return std::unique_ptr<SnapshotWriter>(new SnapshotWriter(root_, name, dir, dir_fd.Release()));
}

Expected<std::vector<std::string>> SnapshotStore::SweepAbandonedPartials() {
  if (access_ != Access::kReadWrite) {
    return Status::Error("snapshot storage " + root_.string() + " was opened read-only");
  }
  const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
  if (!lock.ok()) return Status::Error(lock.error());
  const RootScan scan = ScanRoot(root_);
  if (!scan.error.empty()) return Status::Error(scan.error);
  std::vector<std::string> removed;
  const auto remove = [&removed](const fs::path& path) {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) return Status::Error("remove " + path.string() + ": " + ec.message());
    removed.push_back(path.filename().string());
    return Status::Ok();
  };
  for (const RootScan::Partial& partial : scan.partials) {
    if (partial.alive) continue;
    if (Status s = remove(partial.path); !s.ok()) return s;
  }
  for (const fs::path& path : scan.deleting) {
    if (Status s = remove(path); !s.ok()) return s;
  }
  for (const auto& [path, pid] : scan.probes) {
    if (PidAlive(pid)) continue;
    if (Status s = remove(path); !s.ok()) return s;
  }
  return removed;
}

}  // namespace finalsnap
