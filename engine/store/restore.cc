// RestoreSnapshot (finalsnap/storage.h): a committed snapshot back to dump.rdb files, decoded
// and validated on the way: each stored file is read through a VerifySink whose tap writes the
// decoded RDB out, and a dump.rdb that fails validation or the manifest's CRC-64 is removed.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "file_io.h"
#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "finalsnap/verify_sink.h"
#include "unique_fd.h"

namespace finalsnap {
namespace {

using detail::ErrnoMessage;
using detail::UniqueFd;

// Decodes and validates `in`, the stored file of `node`, into the new file `out`, counting the
// RDB bytes written in `written`. On failure nothing is left at `out`.
Status RestoreFile(const std::filesystem::path& in, const std::filesystem::path& out,
                   const NodeSnapshot& node, uint64_t* written) {
  const UniqueFd in_fd(::open(in.c_str(), O_RDONLY | O_CLOEXEC));
  if (in_fd.get() < 0) {
    return Status::Error("cannot open " + in.string() + ": " + ErrnoMessage(errno));
  }
  UniqueFd out_fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (out_fd.get() < 0) {
    const int err = errno;
    return Status::Error("cannot create " + out.string() + ": " + ErrnoMessage(err) +
                         (err == EEXIST ? " (restore never overwrites a dump.rdb)" : ""));
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
    result.status = Status::Error("Snapshot " + std::string(name) + " not found or not available");
    return result;
  }
  std::error_code ec;
  std::filesystem::create_directories(target_dir, ec);
  for (const NodeSnapshot& node : snapshot->node_snapshots) {
    const std::filesystem::path out_dir =
        snapshot->node_snapshots.size() == 1 ? target_dir : target_dir / node.node_group_id;
    std::filesystem::create_directories(out_dir, ec);
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
