// File descriptor helpers and the atomic file write (file_io.h).
#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

int OpenRegularFile(const std::filesystem::path& path, std::string* error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    struct stat st {};
    // O_NOFOLLOW fails with ELOOP on a symbolic link; say so rather than "too many levels".
    if (err == ELOOP && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      *error = "a symbolic link, not a regular file";
    } else {
      *error = ErrnoMessage(err);
    }
    return -1;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    *error = "stat: " + ErrnoMessage(errno);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "of an unknown type";
    *error = std::string("not a regular file (") + kind + ")";
    return -1;
  }
  // Regular files never block anyway; clear the flag so that reads behave as usual.
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    *error = "fcntl: " + ErrnoMessage(errno);
    return -1;
  }
  return fd.Release();
}

int ReadFileBounded(const std::filesystem::path& path, size_t max_bytes, std::string* out) {
  out->clear();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return errno;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > max_bytes) return EFBIG;
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) return errno;
  // One byte more than allowed, to tell "at the limit" from "over it" without reading the rest.
  std::string buffer(std::min<size_t>(max_bytes + 1, size_t{1} << 16), '\0');
  for (;;) {
    const size_t want = std::min(buffer.size(), max_bytes + 1 - out->size());
    const ssize_t n = ::read(fd.get(), buffer.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    out->append(buffer.data(), static_cast<size_t>(n));
    if (out->size() > max_bytes) {
      out->clear();
      return EFBIG;
    }
  }
}

Status CreateDirectories(const std::filesystem::path& dir, mode_t mode) {
  std::filesystem::path path = dir.lexically_normal();
  if (path.has_filename() == false && path.has_parent_path()) path = path.parent_path();
  if (path.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::Error("cannot create " + path.string() + ": " + ErrnoMessage(ENOTDIR));
  }
  if (path.has_parent_path() && path.parent_path() != path) {
    if (Status s = CreateDirectories(path.parent_path(), mode); !s.ok()) return s;
  }
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return Status::Ok();  // made meanwhile by someone else: theirs, left as it is
    }
    return Status::Error("cannot create " + path.string() + ": " + ErrnoMessage(errno));
  }
  // The mode given to mkdir is filtered by the umask; ours is exact.
  if (::chmod(path.c_str(), mode) != 0) {
    return Status::Error("chmod " + path.string() + ": " + ErrnoMessage(errno));
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
