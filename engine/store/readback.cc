// The `readback` gate (storage.h): Readback reads every file of a committed snapshot again with
// VerifyFile; CheckReadback judges what StreamingReadback (streaming_readback.cc) read while the
// files were written. Both compare what was read with the manifest the same way.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>

#include "finalsnap/storage.h"
#include "finalsnap/text.h"
#include "finalsnap/verify.h"
#include "root.h"
#include "unique_fd.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using detail::CheckFileName;
using detail::ErrnoMessage;
using detail::LoadManifest;
using detail::Quote;
using detail::UniqueFd;

// The first difference between two keyspaces, or empty if they are equal.
std::string KeyspaceDifference(const std::map<uint64_t, rdb::DbCounts>& file,
                               const std::map<uint64_t, rdb::DbCounts>& manifest) {
  std::set<uint64_t> dbs;
  for (const auto& entry : file) dbs.insert(entry.first);
  for (const auto& entry : manifest) dbs.insert(entry.first);
  for (const uint64_t db : dbs) {
    const auto f = file.find(db);
    const auto m = manifest.find(db);
    const rdb::DbCounts in_file = f == file.end() ? rdb::DbCounts{} : f->second;
    const rdb::DbCounts in_manifest = m == manifest.end() ? rdb::DbCounts{} : m->second;
    if (in_file.keys != in_manifest.keys) {
      return "db" + std::to_string(db) + " has " + std::to_string(in_file.keys) +
             " keys in the file, " + std::to_string(in_manifest.keys) + " in the manifest";
    }
    if (in_file.expires != in_manifest.expires) {
      return "db" + std::to_string(db) + " has " + std::to_string(in_file.expires) +
             " expires in the file, " + std::to_string(in_manifest.expires) + " in the manifest";
    }
  }
  return {};
}

// The facts a readback found about one stored file, whichever way it was read.
struct ReadFacts {
  uint64_t stored_bytes = 0;
  Compression compression = Compression::kNone;
  const rdb::Report* report = nullptr;
};

// The first difference between what was read back and what the manifest says; "" if none.
std::string ManifestDifference(const ReadFacts& v, const NodeSnapshot& node) {
  if (v.stored_bytes != node.stored_bytes) {
    return "holds " + std::to_string(v.stored_bytes) + " bytes, the manifest says " +
           std::to_string(node.stored_bytes);
  }
  if (v.compression != node.compression) {
    return "is " + std::string(CompressionName(v.compression)) + ", the manifest says " +
           std::string(CompressionName(node.compression));
  }
  const rdb::Report& r = *v.report;
  if (r.computed_crc != node.crc64) {
    return "CRC-64 " + Hex64(r.computed_crc) + " does not match the manifest's " +
           Hex64(node.crc64);
  }
  if (r.bytes != node.rdb_bytes) {
    return "the RDB is " + std::to_string(r.bytes) + " bytes, the manifest says " +
           std::to_string(node.rdb_bytes);
  }
  if (r.rdb_version != node.rdb_version) {
    return "RDB version " + std::to_string(r.rdb_version) + ", the manifest says " +
           std::to_string(node.rdb_version);
  }
  return KeyspaceDifference(r.databases, node.keyspace);
}

std::string Mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

Status Readback(const SnapshotStore& store, std::string_view name, std::string* evidence) {
  const std::optional<fs::path> dir = store.SnapshotDir(name);
  if (!dir) return Status::Error("readback: snapshot " + Quote(name) + " is not committed");
  const Expected<Snapshot> manifest = LoadManifest(*dir);
  if (!manifest.ok()) return Status::Error("readback: " + manifest.error().message());
  if (manifest->node_snapshots.empty()) {
    return Status::Error("readback: the manifest of " + Quote(name) + " lists no files");
  }

  uint64_t stored_total = 0;
  uint64_t rdb_total = 0;
  size_t not_dropped = 0;
  for (const NodeSnapshot& node : manifest->node_snapshots) {
    const auto fail = [&node](const std::string& message) {
      return Status::Error("readback: " + node.file + ": " + message);
    };
    // The manifest is data read from disk: it must not send us outside the directory.
    if (Status s = CheckFileName(node.file); !s.ok()) return fail(s.message());
    const fs::path path = *dir / node.file;
    {
      // Committed files were fsynced, so their cached pages are clean and DONTNEED drops them:
      // the read below then comes from the device, which is what the gate is meant to prove.
      std::string error;
      UniqueFd fd(detail::OpenRegularFile(path, &error));
      if (fd.get() < 0) return fail(error);
      if (::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED) != 0) ++not_dropped;
    }
    const FileVerification v = VerifyFile(path.string(), rdb::Options{}, FileKind::kRegular);
    if (v.rdb_error) return fail(v.rdb_error->ToString());
    if (!v.io_error.empty()) return fail(v.io_error);
    if (const std::string diff =
            ManifestDifference({v.stored_bytes, v.compression, &v.report}, node);
        !diff.empty()) {
      return fail(diff);
    }
    stored_total += v.stored_bytes;
    rdb_total += v.report.bytes;
  }
  if (evidence != nullptr) {
    const size_t n = manifest->node_snapshots.size();
    *evidence = "read back " + std::to_string(n) + (n == 1 ? " file (" : " files (") +
                std::to_string(stored_total) + " stored bytes, " + std::to_string(rdb_total) +
                " RDB bytes), " +
                (not_dropped == 0 ? std::string("page cache dropped")
                                  : "page cache not dropped for " + std::to_string(not_dropped)) +
                "; CRC-64 and key counts match the manifest";
  }
  return Status::Ok();
}

Status CheckReadback(std::span<const ReadbackReport> readbacks, const Snapshot& manifest,
                     std::string* evidence) {
  if (manifest.node_snapshots.empty()) {
    return Status::Error("readback: the manifest of " + Quote(manifest.snapshot_name) +
                         " lists no files");
  }
  std::string summary;
  for (const NodeSnapshot& node : manifest.node_snapshots) {
    const auto fail = [&node](const std::string& message) {
      return Status::Error("readback: " + node.file + ": " + message);
    };
    const ReadbackReport* r = nullptr;
    for (const ReadbackReport& candidate : readbacks) {
      if (fs::path(candidate.path).filename() == node.file) r = &candidate;
    }
    if (r == nullptr) return fail("was not read back");
    if (r->rdb_error) return fail(r->rdb_error->ToString());
    if (!r->io_error.empty()) return fail(r->io_error);
    if (const std::string diff =
            ManifestDifference({r->stored_bytes, r->compression, &r->report}, node);
        !diff.empty()) {
      return fail(diff);
    }
    std::string how;
    if (r->direct) {
      how = "each synced to the device (sync_file_range) and read with O_DIRECT";
    } else if (r->cache_dropped) {
      how = "each synced (sync_file_range), its page cache dropped and read (no O_DIRECT here)";
    } else {
      how =
          "each synced (sync_file_range) and read; the kernel refused to drop some cached pages, "
          "so part may have come from the page cache";
    }
    if (!summary.empty()) summary += "; ";
    summary +=
        "read back " + node.file + " while it was written: " + std::to_string(r->stored_bytes) +
        " stored bytes in " + std::to_string(r->stretches) +
        (r->stretches == 1 ? " stretch, " : " stretches, ") + how + "; decoded (" +
        std::string(CompressionName(r->compression)) + ") to " + std::to_string(r->report.bytes) +
        " RDB bytes" + (r->deep ? ", then read again in deep mode (the RDB has no CRC-64)" : "") +
        "; CRC-64 " + Hex64(r->report.computed_crc) + " and key counts match the manifest; " +
        Mib(r->tail_bytes) + " was left to read when the writer finished, done " +
        std::to_string(static_cast<int>(r->tail_seconds * 1000 + 0.5)) + " ms later";
  }
  if (evidence != nullptr) *evidence = summary;
  return Status::Ok();
}

}  // namespace finalsnap
