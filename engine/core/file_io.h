// File descriptor helpers, one copy of each for the whole engine (engine-private): errno as
// text, reading and writing whole buffers across short transfers and EINTR, fsync of a file or a
// directory, and the atomic file write:
//
//   <name>.tmp (0600, O_NOFOLLOW) -> write -> fsync -> rename over <name> -> fsync the directory
//
// so that a reader, or a crash, sees the old file or the new one, never a torn one. The snapshot
// store writes its manifests this way and the API server its state.json.
//
// Every failure comes back as a Status whose message names the step and the reason
// ("fsync manifest.json.tmp: Input/output error"); nothing here prints.
#ifndef FINALSNAP_ENGINE_FILE_IO_H_
#define FINALSNAP_ENGINE_FILE_IO_H_

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "finalsnap/status.h"

namespace finalsnap::detail {

// strerror(err), thread-safe: "No such file or directory".
std::string ErrnoMessage(int err);

// Reads until `buffer` is full or the file ends, so that a short read (a pipe, a signal) is not
// mistaken for the end of the file. Returns the bytes read, or -1 with errno set.
ssize_t ReadFull(int fd, std::span<uint8_t> buffer);

// Writes all of `data`, retrying short writes and EINTR. The message is the reason only.
Status WriteAll(int fd, std::span<const uint8_t> data);
inline Status WriteAll(int fd, std::string_view data) {
  return WriteAll(fd, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

// fsync(2), retried on EINTR. The message is the reason only.
Status FsyncFd(int fd);
// Opens `dir` and fsyncs it, which makes the entries created, renamed or removed in it durable.
Status FsyncDir(const std::filesystem::path& dir);

// Whether WriteFileAtomic ends with an fsync of the directory.
enum class DirSync {
  kSync,   // the rename is durable when WriteFileAtomic returns
  kLeave,  // the caller fsyncs the directory itself, later (or never, for a directory that is
           // not published yet)
};

// Writes `content` as `dir_fd`/`name` through `name`.tmp: created (or truncated: a temp file left
// by a crash is ours to overwrite) with O_NOFOLLOW and mode 0600 exactly, whatever the umask;
// written; fsynced; closed; renamed over `name`; then, with DirSync::kSync, the directory is
// fsynced ("fsync the directory: ..." if that fails).
Status WriteFileAtomic(int dir_fd, const std::string& name, std::string_view content,
                       DirSync dir_sync = DirSync::kSync);
// The same for a path: its parent directory is opened for the rename and the fsync.
Status WriteFileAtomic(const std::filesystem::path& path, std::string_view content);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_FILE_IO_H_
