// File descriptor helpers and the atomic file write (file_io.h).
#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "unique_fd.h"

namespace finalsnap::detail {

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

ssize_t ReadFull(int fd, std::span<uint8_t> buffer) {
  size_t filled = 0;
  while (filled < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(filled);
}

Status WriteAll(int fd, std::span<const uint8_t> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(ErrnoMessage(errno));
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FsyncFd(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return Status::Error(ErrnoMessage(errno));
  }
  return Status::Ok();
}

Status FsyncDir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Status::Error("open " + dir.string() + ": " + ErrnoMessage(errno));
  if (Status s = FsyncFd(fd.get()); !s.ok()) {
    return Status::Error("fsync " + dir.string() + ": " + s.message());
  }
  return Status::Ok();
}

Status WriteFileAtomic(int dir_fd, const std::string& name, std::string_view content,
                       DirSync dir_sync) {
  const std::string tmp = name + ".tmp";
  UniqueFd fd(
      ::openat(dir_fd, tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Status::Error("create " + tmp + ": " + ErrnoMessage(errno));
  // The mode given to open is filtered by the umask; these files are 0600 exactly.
  if (::fchmod(fd.get(), 0600) != 0) {
    return Status::Error("chmod " + tmp + ": " + ErrnoMessage(errno));
  }
  if (Status s = WriteAll(fd.get(), content); !s.ok()) {
    return Status::Error("write " + tmp + ": " + s.message());
  }
  if (Status s = FsyncFd(fd.get()); !s.ok()) {
    return Status::Error("fsync " + tmp + ": " + s.message());
  }
  fd.Reset();
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    return Status::Error("rename " + tmp + " -> " + name + ": " + ErrnoMessage(errno));
  }
  if (dir_sync == DirSync::kSync) {
    if (Status s = FsyncFd(dir_fd); !s.ok()) {
      return Status::Error("fsync the directory: " + s.message());
    }
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return Status::Error("open " + dir.string() + ": " + ErrnoMessage(errno));
  return WriteFileAtomic(dir_fd.get(), path.filename().string(), content, DirSync::kSync);
}

}  // namespace finalsnap::detail
