// RestoreSnapshot (finalsnap/storage.h): a committed snapshot back to dump.rdb files, decoded
// and validated on the way: each stored file is read through a VerifySink whose tap writes the
// decoded RDB out, and a dump.rdb that fails validation or the manifest's CRC-64 is removed.
//
// Nothing read from the manifest is trusted as a path: LoadManifest has already refused a
// NodeGroupId that is not four digits and a File that is not a plain name, each is checked again
// here before it is joined to a path, and a stored file is opened only if it is a regular file
// (never through a symbolic link, never blocking on a FIFO). Directories are made 0700 and files
// 0600, whatever the umask.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "finalsnap/verify_sink.h"
#include "root.h"
#include "unique_fd.h"

namespace finalsnap {
namespace {

using detail::ErrnoMessage;
using detail::UniqueFd;

// Decodes and validates `in`, the stored file of `node`, into the new file `out`, counting the
// RDB bytes written in `written`. On failure nothing is left at `out`.
Status RestoreFile(const std::filesystem::path& in, const std::filesystem::path& out,
                   const NodeSnapshot& node, uint64_t* written) {
  std::string open_error;
  const UniqueFd in_fd(detail::OpenRegularFile(in, &open_error));
  if (in_fd.get() < 0) return Status::Error("cannot open " + in.string() + ": " + open_error);
  UniqueFd out_fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out_fd.get() < 0) {
    const int err = errno;
    return Status::Error("cannot create " + out.string() + ": " + ErrnoMessage(err) +
                         (err == EEXIST ? " (restore never overwrites a dump.rdb)" : ""));
  }
  // The mode given to open is filtered by the umask; a dump.rdb holds the whole data set.
  if (::fchmod(out_fd.get(), 0600) != 0) {
    const int err = errno;
    out_fd.Reset();
    std::error_code ec;
    std::filesystem::remove(out, ec);
    return Status::Error("chmod " + out.string() + ": " + ErrnoMessage(err));
  }
  VerifySink sink(node.compression, {}, [&](std::span<const uint8_t> decoded) {
    if (Status s = detail::WriteAll(out_fd.get(), decoded); !s.ok()) {
      return Status::Error("write: " + s.message());
    }
    *written += decoded.size();
    return Status::Ok();
  });
  ReadThrough(in_fd.get(), sink);
  std::string error = sink.io_error();
  if (error.empty() && sink.rdb_error()) error = sink.rdb_error()->ToString();
  if (error.empty() && sink.report().computed_crc != node.crc64) {
    error = "CRC-64 " + Hex64(sink.report().computed_crc) + " differs from the manifest's " +
            Hex64(node.crc64);
  }
  if (error.empty()) {
    if (Status s = detail::FsyncFd(out_fd.get()); !s.ok()) error = "fsync: " + s.message();
  }
  if (error.empty()) return Status::Ok();
  out_fd.Reset();
  std::error_code ec;
  std::filesystem::remove(out, ec);
  return Status::Error(node.file + ": " + error);
}

}  // namespace

RestoreResult RestoreSnapshot(const SnapshotStore& store, std::string_view name,
                              const std::filesystem::path& target_dir) {
  RestoreResult result;
  const std::optional<Snapshot> snapshot = store.Describe(name);
  const std::optional<std::filesystem::path> dir = store.SnapshotDir(name);
  if (!snapshot || !dir || snapshot->snapshot_status != "available") {
    std::string message = "Snapshot " + std::string(name) + " not found or not available";
    if (snapshot && !snapshot->status_message.empty()) message += ": " + snapshot->status_message;
    result.status = Status::Error(std::move(message));
    return result;
  }
  // Every name is checked before anything is created, so that a bad one leaves nothing behind.
  for (const NodeSnapshot& node : snapshot->node_snapshots) {
    const bool group_ok = node.node_group_id.size() == 4 &&
                          node.node_group_id.find_first_not_of("0123456789") == std::string::npos;
    Status file_ok = detail::CheckFileName(node.file);
    if (!group_ok || !file_ok.ok()) {
      result.status = Status::Error(
          "Snapshot " + snapshot->snapshot_name + ": the manifest names " +
          (group_ok ? "a file that is not a plain name" : "a NodeGroupId that is not four digits") +
          "; nothing was restored");
      return result;
    }
  }
  if (Status s = detail::CreateDirectories(target_dir, 0700); !s.ok()) {
    result.status = std::move(s);
    return result;
  }
  for (const NodeSnapshot& node : snapshot->node_snapshots) {
    const std::filesystem::path out_dir =
        snapshot->node_snapshots.size() == 1 ? target_dir : target_dir / node.node_group_id;
    if (Status s = detail::CreateDirectories(out_dir, 0700); !s.ok()) {
      result.status = std::move(s);
      return result;
    }
    const std::filesystem::path out = out_dir / "dump.rdb";
    uint64_t written = 0;
    if (Status s = RestoreFile(*dir / node.file, out, node, &written); !s.ok()) {
      result.status = std::move(s);
      return result;
    }
    result.files.push_back(out);
    result.rdb_bytes += written;
  }
  return result;
}

}  // namespace finalsnap
