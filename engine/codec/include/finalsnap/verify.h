// Offline verification of stored snapshots: VerifyFile checks one .rdb, .rdb.zst or .rdb.lz4 file
// and VerifyPath checks a file or every RDB file in a directory.
//
// A file is read in fixed 1 MiB chunks (ReadThrough) into a VerifySink (verify_sink.h), which
// decompresses it as a stream (decoder.h) into the RDB validator (finalsnap/rdb/validator.h), so
// memory stays at a few MiB whatever the file size. The compression is taken from the extension
// and confirmed by the first bytes; when the two disagree the bytes win, so a renamed file still
// verifies.
//
// Nothing here prints: callers (the CLI, the readback gate) decide how to present the result.
#ifndef FINALSNAP_VERIFY_H_
#define FINALSNAP_VERIFY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "finalsnap/decoder.h"
#include "finalsnap/rdb/validator.h"

namespace finalsnap {

struct FileVerification {
  std::string path;
  Compression compression = Compression::kNone;  // as detected from the bytes
  uint64_t stored_bytes = 0;                     // bytes read from the file
  // What the validator saw, up to the error if there was one: report.bytes is the RDB size.
  rdb::Report report;
  // The first RDB error (truncated, corrupt, unsupported, checksum mismatch), if any.
  std::optional<rdb::Diagnostic> rdb_error;
  // An open, read or decompression error, without the path; empty if none. A truncated
  // compressed file can set both this ("zstd: frame truncated ...") and a truncated rdb_error.
  std::string io_error;
  // True when io_error is about the path itself: missing, unreadable, not a regular file, or a
  // directory without RDB files. Such a file was never examined.
  bool path_error = false;
  // True when the inside of every LZF string was checked too (rdb::Options::deep). VerifyFile
  // does that on its own, with a second read of the file, when the RDB has no CRC-64 to vouch
  // for those bytes (checksum disabled or absent).
  bool deep = false;
  double seconds = 0;  // wall-clock time from open to the last check, both passes included

  bool ok() const { return io_error.empty() && !rdb_error.has_value(); }
};

// Which files VerifyFile opens.
enum class FileKind {
  // Whatever the caller names: a regular file, a pipe or FIFO, /dev/stdin.
  kAny,
  // A regular file only, never through a symbolic link (O_NOFOLLOW, and O_NONBLOCK for the open
  // so that a FIFO cannot block it): for files named by data read from disk, such as a
  // snapshot's manifest or a directory listing. Anything else is a path_error saying what it is.
  kRegular,
};

// Verifies one file. Never throws for a bad file: every failure is reported in the result.
// The file is opened once. A regular file whose checksum is disabled or absent is read a second
// time through the same descriptor, in deep mode (see FileVerification::deep); input that cannot
// be read twice (a pipe, /dev/stdin) is read once, in deep mode from the start.
FileVerification VerifyFile(const std::string& path, const rdb::Options& options = {},
                            FileKind kind = FileKind::kAny);

// The same for a descriptor the caller opened, such as standard input (`verify -`), which may be
// a pipe or a socket that no path can open again. `name` is what the result reports as its path
// (and gives the expected compression by its extension). The descriptor is read from its
// current offset and not closed.
FileVerification VerifyDescriptor(int fd, const std::string& name,
                                  const rdb::Options& options = {});

// A directory means every *.rdb, *.rdb.zst and *.rdb.lz4 regular file in it, sorted by name; any
// other path means that one file. A missing path, or a directory without RDB files, gives one
// result with path_error set. With FileKind::kRegular, a directory's entries count only if they
// are regular files themselves (not symbolic links to one).
std::vector<FileVerification> VerifyPath(const std::string& path, const rdb::Options& options = {},
                                         FileKind kind = FileKind::kAny);

// The compression an RDB file name implies: .zst is kZstd, .lz4 is kLz4, anything else kNone.
Compression CompressionFromFileName(const std::string& path);

}  // namespace finalsnap

#endif  // FINALSNAP_VERIFY_H_
