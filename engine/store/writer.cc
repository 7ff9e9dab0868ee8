// SnapshotWriter (storage.h): one snapshot being written in its partial directory, and Commit,
// the `durable` gate: files fsynced, manifest written, directory fsynced, renamed into place,
// root fsynced.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "finalsnap/storage.h"
#include "root.h"

namespace finalsnap {

namespace fs = std::filesystem;
using detail::CheckFileName;
using detail::DirSync;
using detail::ErrnoMessage;
using detail::FindCommitted;
using detail::FsyncDir;
using detail::FsyncFd;
using detail::Quote;
using detail::RemoveDirDurably;
using detail::RootLock;
using detail::RootScan;
using detail::ScanRoot;
using detail::WriteManifest;

SnapshotWriter::SnapshotWriter(fs::path root, std::string name, fs::path dir, int dir_fd)
    : root_(std::move(root)), name_(std::move(name)), dir_(std::move(dir)), dir_fd_(dir_fd) {}

SnapshotWriter::~SnapshotWriter() {
  Abort();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Expected<int> SnapshotWriter::CreateFile(const std::string& file_name) {
  if (committed_ || aborted_) {
    return Status::Error("snapshot " + Quote(name_) + " is already " +
                         (committed_ ? "committed" : "aborted"));
  }
  if (Status s = CheckFileName(file_name); !s.ok()) return s;
  for (const File& file : files_) {
    if (file.name == file_name) {
      return Status::Error("file " + Quote(file_name) + " was already created");
    }
  }
  const int fd = ::openat(dir_fd_, file_name.c_str(),
                          O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::Error("create " + (dir_ / file_name).string() + ": " + ErrnoMessage(errno));
  }
  if (::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlinkat(dir_fd_, file_name.c_str(), 0);
    return Status::Error("chmod " + (dir_ / file_name).string() + ": " + ErrnoMessage(err));
  }
  files_.push_back({file_name, fd});
  return fd;
}

Status SnapshotWriter::Commit(Snapshot& final_manifest, std::string* evidence) {
  if (committed_ || aborted_) {
    return Status::Error("snapshot " + Quote(name_) + " is already " +
                         (committed_ ? "committed" : "aborted"));
  }
  const auto fail = [this](const std::string& message) {
    Abort();
    return Status::Error("snapshot " + Quote(name_) + ": " + message);
  };

  // The manifest must describe exactly the files written, or readback and restore would look
  // for files that are not there, or miss one that is.
  Snapshot manifest = final_manifest;
  if (manifest.snapshot_name.empty()) manifest.snapshot_name = name_;
  if (manifest.snapshot_name != name_) {
    return fail("the final manifest is named " + Quote(manifest.snapshot_name));
  }
  std::vector<NodeSnapshot*> by_file(files_.size(), nullptr);
  for (size_t i = 0; i < manifest.node_snapshots.size(); ++i) {
    NodeSnapshot& node = manifest.node_snapshots[i];
    const auto it = std::find_if(files_.begin(), files_.end(),
                                 [&node](const File& f) { return f.name == node.file; });
    const std::string where = "NodeSnapshots[" + std::to_string(i) + "]";
    if (it == files_.end())
      return fail(where + " names " + Quote(node.file) + ", which was not created");
    NodeSnapshot*& slot = by_file[static_cast<size_t>(it - files_.begin())];
    if (slot != nullptr) return fail(where + " names " + Quote(node.file) + " a second time");
    slot = &node;
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    if (by_file[i] == nullptr) {
      return fail("file " + Quote(files_[i].name) + " was created but no NodeSnapshot names it");
    }
  }

  // The data first: every file is on disk before a manifest that vouches for it is written.
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < files_.size(); ++i) {
    File& file = files_[i];
    if (Status s = FsyncFd(file.fd); !s.ok())
      return fail("fsync " + file.name + ": " + s.message());
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) return fail("stat " + file.name + ": " + ErrnoMessage(errno));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (by_file[i]->stored_bytes == 0) {
      by_file[i]->stored_bytes = size;
    } else if (by_file[i]->stored_bytes != size) {
      return fail(file.name + " holds " + std::to_string(size) + " bytes but the manifest says " +
                  std::to_string(by_file[i]->stored_bytes));
    }
    total_bytes += size;
    const int fd = std::exchange(file.fd, -1);
    if (::close(fd) != 0) return fail("close " + file.name + ": " + ErrnoMessage(errno));
  }

  manifest.snapshot_status = "available";
  // Then the manifest, made durable with the directory ("fsync the directory: ..." if not).
  if (Status s = WriteManifest(dir_fd_, manifest, DirSync::kSync); !s.ok()) {
    return fail(s.message());
  }

  const fs::path target = root_ / name_;
  {
    const RootLock lock(root_, /*exclusive=*/true, /*may_create=*/true);
    if (!lock.ok()) return fail(lock.error());
    // RENAME_NOREPLACE refuses an exact match; the scan also refuses one that differs in case.
    const RootScan scan = ScanRoot(root_);
    if (const RootScan::Committed* existing = FindCommitted(scan, name_)) {
      return fail("a snapshot named " + Quote(existing->name) + " appeared while it was written");
    }
    int rc = ::renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // A file system without RENAME_NOREPLACE. The root lock and the scan above already
      // exclude every cooperating writer, so a plain rename is safe enough here.
      std::error_code ec;
      if (fs::exists(fs::symlink_status(target, ec))) {
        errno = EEXIST;
      } else {
        rc = ::rename(dir_.c_str(), target.c_str());
      }
    }
    if (rc != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY) {
        return fail(Quote(target.string()) + " appeared while the snapshot was written");
      }
      return fail("rename " + dir_.filename().string() + " -> " + name_ + ": " + ErrnoMessage(err));
    }
    if (Status s = FsyncDir(root_); !s.ok()) {
      // The rename may not survive a crash, so the gate cannot pass. Take the snapshot back
      // out of sight rather than leave one that might vanish.
      const Status removed = RemoveDirDurably(root_, target);
      aborted_ = true;
      std::string message = "fsync the root after the rename: " + s.message();
      if (!removed.ok()) message += "; removing it again also failed: " + removed.message();
      return Status::Error("snapshot " + Quote(name_) + ": " + message);
    }
  }

  const std::string partial_name = dir_.filename().string();
  dir_ = target;
  committed_ = true;
  ::close(std::exchange(dir_fd_, -1));  // releases the "alive" mark; the rename made it moot
  final_manifest = std::move(manifest);
  if (evidence != nullptr) {
    *evidence = "fsynced " + std::to_string(files_.size()) +
                (files_.size() == 1 ? " file (" : " files (") + std::to_string(total_bytes) +
                " bytes), manifest, dir; renamed " + partial_name + " -> " + name_ +
                "; fsynced root";
  }
  return Status::Ok();
}

void SnapshotWriter::Abort() {
  if (committed_ || aborted_) return;
  aborted_ = true;
  for (File& file : files_) {
    if (file.fd >= 0) ::close(std::exchange(file.fd, -1));
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  // Released only after the directory is gone, so that nobody sees it as abandoned meanwhile.
  if (dir_fd_ >= 0) ::close(std::exchange(dir_fd_, -1));
}

}  // namespace finalsnap
