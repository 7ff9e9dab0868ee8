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

// Opens `path` for reading only if it is a regular file, and never follows a symbolic link in
// its last component: O_NOFOLLOW, and O_NONBLOCK for the open itself (so that a FIFO without a
// writer cannot block it; the flag is cleared again), then fstat. Returns the descriptor (the
// caller owns it), or -1 with `error` set to the reason without the path ("a symbolic link",
// "not a regular file (a FIFO)", or strerror). Anything named by data read from disk (a manifest,
// a directory listing) is opened this way.
int OpenRegularFile(const std::filesystem::path& path, std::string* error);

// Reads a whole small file (a fleet file, a secret) into `out`, whatever kind of file it is, but
// never more than `max_bytes`: /dev/zero or a huge file is refused rather than read until memory
// runs out. The open uses O_NONBLOCK (cleared again) so that a FIFO without a writer reads as
// empty instead of blocking. Symbolic links are followed: these paths come from the user.
// Returns 0, or an errno: EFBIG when the file holds more than `max_bytes`, EISDIR for a directory.
int ReadFileBounded(const std::filesystem::path& path, size_t max_bytes, std::string* out);

// Creates `dir` and any missing parents, each with exactly `mode` whatever the umask (mkdir,
// then chmod of what this call created; existing directories are left as they are). The message
// names the directory that could not be created and why.
Status CreateDirectories(const std::filesystem::path& dir, mode_t mode);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_FILE_IO_H_
