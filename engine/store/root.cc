// The snapshot store's root (root.h): its lock, its scan, and what is looked up in a scan.
#include "root.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <random>
#include <system_error>

#include "finalsnap/text.h"
#include "unique_fd.h"

namespace finalsnap::detail {
namespace {

namespace fs = std::filesystem;

// Parses "<prefix><name>-<pid>-<hex>" from the right, as the name may hold hyphens itself.
void ParsePidSuffix(std::string_view rest, std::string* name, long* pid) {
  const size_t last = rest.rfind('-');
  if (last == std::string_view::npos) {
    *name = std::string(rest);
    return;
  }
  const std::string_view head = rest.substr(0, last);
  const size_t pid_dash = head.rfind('-');
  const std::string_view pid_text =
      pid_dash == std::string_view::npos ? head : head.substr(pid_dash + 1);
  long value = 0;
  const auto [ptr, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), value);
  if (ec == std::errc() && ptr == pid_text.data() + pid_text.size()) *pid = value;
  *name =
      pid_dash == std::string_view::npos ? std::string() : std::string(head.substr(0, pid_dash));
}

// A writer holds an exclusive flock on its partial directory until it commits, aborts or dies.
// If a shared lock can be taken, nobody is writing there any more.
bool PartialWriterAlive(const fs::path& path, long pid) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return false;  // gone, or replaced by something that is not a directory
  if (Flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;
  if (errno == EWOULDBLOCK) return true;
  // A file system without flock support: the pid is the best evidence left.
  return PidAlive(pid);
}

}  // namespace

std::string RandomHex() {
  std::random_device device;
  return Hex64((uint64_t{device()} << 32) ^ uint64_t{device()});
}

bool PidAlive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

int Flock(int fd, int operation) {
  int rc;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

RootLock::RootLock(const fs::path& root, bool exclusive, bool may_create) {
  const fs::path path = root / kLockName;
  const int flags = may_create ? (O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW)
                               : (O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (fd.get() < 0) {
    error_ = "open " + path.string() + ": " + ErrnoMessage(errno);
    return;
  }
  if (Flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
    error_ = "lock " + path.string() + ": " + ErrnoMessage(errno);
    return;
  }
  fd_ = fd.Release();
}

RootLock::~RootLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

RootScan ScanRoot(const fs::path& root) {
  RootScan scan;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    scan.names.push_back(name);
    std::error_code type_ec;
    // symlink_status: a symbolic link is never a snapshot, so nothing is followed out of the root.
    const fs::file_status status = it->symlink_status(type_ec);
    if (type_ec) continue;
    if (StartsWith(name, kPartialPrefix) && fs::is_directory(status)) {
      RootScan::Partial partial;
      ParsePidSuffix(std::string_view(name).substr(kPartialPrefix.size()), &partial.name_hint,
                     &partial.pid);
      partial.path = it->path();
      partial.alive = PartialWriterAlive(partial.path, partial.pid);
      scan.partials.push_back(std::move(partial));
    } else if (StartsWith(name, kDeletingPrefix) && fs::is_directory(status)) {
      scan.deleting.push_back(it->path());
    } else if (StartsWith(name, kProbePrefix) && fs::is_regular_file(status)) {
      std::string unused;
      long pid = 0;
      ParsePidSuffix(std::string_view(name).substr(kProbePrefix.size()), &unused, &pid);
      scan.probes.emplace_back(it->path(), pid);
    } else if (fs::is_directory(status) && CheckSnapshotName(name).ok()) {
      scan.committed.push_back({name, it->path()});
    }
  }
  if (ec) scan.error = "cannot list " + root.string() + ": " + ec.message();
  return scan;
}

const RootScan::Committed* FindCommitted(const RootScan& scan, std::string_view name) {
  const RootScan::Committed* found = nullptr;
  for (const RootScan::Committed& c : scan.committed) {
    if (c.name == name) return &c;
    if (found == nullptr && EqualsIgnoreCase(c.name, name)) found = &c;
  }
  return found;
}

bool NameTaken(const RootScan& scan, std::string_view name) {
  return std::any_of(scan.names.begin(), scan.names.end(),
                     [name](const std::string& entry) { return EqualsIgnoreCase(entry, name); });
}

Snapshot LoadCommitted(const RootScan::Committed& committed) {
  Expected<Snapshot> snapshot = LoadManifest(committed.path);
  // Shown rather than hidden, so that an operator can see it and delete it.
  const auto failed = [&committed](std::string why) {
    Snapshot s;
    s.snapshot_name = committed.name;
    s.snapshot_status = "failed";
    s.status_message = std::move(why);
    return s;
  };
  if (!snapshot.ok()) return failed(snapshot.error().message());
  // Every file it names must be a regular file in it (lstat: a symbolic link is not one), or
  // the snapshot is not available, whatever its manifest says.
  for (const NodeSnapshot& node : snapshot->node_snapshots) {
    struct stat st {};
    const fs::path path = committed.path / node.file;
    if (::lstat(path.c_str(), &st) != 0) {
      return failed(path.string() + ": " + ErrnoMessage(errno));
    }
    if (!S_ISREG(st.st_mode)) {
      return failed(path.string() + (S_ISLNK(st.st_mode) ? ": a symbolic link, not" : ": not") +
                    " a regular file");
    }
  }
  // The directory name is what Describe and Delete go by, so it wins over the manifest.
  snapshot->snapshot_name = committed.name;
  return *std::move(snapshot);
}

Snapshot LoadPartial(const RootScan::Partial& partial) {
  Expected<Snapshot> loaded = LoadManifest(partial.path);
  Snapshot snapshot;
  if (loaded.ok()) {
    snapshot = *std::move(loaded);
  } else {
    snapshot.snapshot_name = partial.name_hint;
  }
  // Whatever the manifest inside says (Commit writes "available" there just before the rename),
  // a partial directory is a snapshot being created.
  snapshot.snapshot_status = "creating";
  return snapshot;
}

const RootScan::Partial* FindLivePartial(const RootScan& scan, std::string_view name,
                                         std::string* actual_name) {
  for (const RootScan::Partial& p : scan.partials) {
    if (!p.alive) continue;
    // The directory name holds at most kPartialNameChars of the name; the manifest holds all.
    if (!EqualsIgnoreCase(p.name_hint, name.substr(0, kPartialNameChars))) continue;
    const Snapshot snapshot = LoadPartial(p);
    if (EqualsIgnoreCase(snapshot.snapshot_name, name)) {
      if (actual_name != nullptr) *actual_name = snapshot.snapshot_name;
      return &p;
    }
  }
  return nullptr;
}

Status RemoveDirDurably(const fs::path& root, const fs::path& dir) {
  const fs::path doomed = root / (std::string(kDeletingPrefix) + RandomHex());
  if (::rename(dir.c_str(), doomed.c_str()) != 0) {
    return Status::Error("rename " + dir.string() + " -> " + doomed.filename().string() + ": " +
                         ErrnoMessage(errno));
  }
  if (Status s = FsyncDir(root); !s.ok()) return s;
  std::error_code ec;
  fs::remove_all(doomed, ec);
  return Status::Ok();
}

}  // namespace finalsnap::detail
