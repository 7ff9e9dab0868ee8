// VerifyFile and VerifyPath: a file read through ReadThrough into a VerifySink
// (verify_sink.h): read(2) chunks, read ahead on a second thread -> StreamDecoder ->
// rdb::Validator.
//
// The read-ahead ring is reused for the whole file and the decoder owns one fixed output
// buffer, so nothing here grows with the file. Reading stops at the first error.
#include "finalsnap/verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "file_io.h"
#include "finalsnap/verify_sink.h"
#include "unique_fd.h"

namespace finalsnap {
namespace {

using detail::ErrnoMessage;
using detail::UniqueFd;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsRdbFileName(std::string_view name) {
  return EndsWith(name, ".rdb") || EndsWith(name, ".rdb.zst") || EndsWith(name, ".rdb.lz4");
}

FileVerification PathError(const std::string& path, std::string message) {
  FileVerification result;
  result.path = path;
  result.compression = CompressionFromFileName(path);
  result.io_error = std::move(message);
  result.path_error = true;
  return result;
}

// Opens the file VerifyFile reads: -1 with the result's path error set if it cannot.
int Open(FileVerification& result, FileKind kind) {
  const auto fail = [&result](std::string message) {
    result.io_error = std::move(message);
    result.path_error = true;
    return -1;
  };
  if (kind == FileKind::kRegular) {
    std::string error;
    const int fd = detail::OpenRegularFile(result.path, &error);
    return fd >= 0 ? fd : fail(std::move(error));
  }
  UniqueFd fd(::open(result.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail(ErrnoMessage(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("stat: " + ErrnoMessage(errno));
  if (S_ISDIR(st.st_mode)) return fail(ErrnoMessage(EISDIR));
  return fd.Release();
}

// One pass over `fd` from its current offset into the result (the body of VerifyFile).
void Verify(FileVerification& result, int fd, const rdb::Options& options) {
  // Only a hint: it lets the kernel read ahead further, and failure (a pipe) changes nothing.
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  VerifySink sink(result.compression, options);
  const int read_error = ReadThrough(fd, sink);
  // A file that could not be read at all was never examined.
  result.path_error = read_error != 0 && sink.stored_bytes() == 0;
  result.compression = sink.compression();
  result.stored_bytes = sink.stored_bytes();
  result.report = sink.report();
  result.rdb_error = sink.rdb_error();
  result.io_error = sink.io_error();
}

// Verifies the open `fd` into `result` (its path set): one pass, or two for a checksum-less
// regular file (the body of VerifyFile and VerifyDescriptor, which time it).
void VerifyOpened(FileVerification& result, int fd, const rdb::Options& options);

}  // namespace

Compression CompressionFromFileName(const std::string& path) {
  if (EndsWith(path, ".zst")) return Compression::kZstd;
  if (EndsWith(path, ".lz4")) return Compression::kLz4;
  return Compression::kNone;
}

FileVerification VerifyFile(const std::string& path, const rdb::Options& options, FileKind kind) {
  FileVerification result;
  result.path = path;
  result.compression = CompressionFromFileName(path);
  const auto start = std::chrono::steady_clock::now();
  const UniqueFd fd(Open(result, kind));
  if (fd.get() < 0) return result;
  VerifyOpened(result, fd.get(), options);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

FileVerification VerifyDescriptor(int fd, const std::string& name, const rdb::Options& options) {
  FileVerification result;
  result.path = name;
  result.compression = CompressionFromFileName(name);
  const auto start = std::chrono::steady_clock::now();
  VerifyOpened(result, fd, options);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

namespace {

void VerifyOpened(FileVerification& result, int fd, const rdb::Options& options) {
  const std::string path = result.path;
  // Only a regular file can be read a second time; a pipe's bytes are gone once read, and
  // opening its path again (/dev/stdin) would find it drained.
  struct stat st {};
  const bool rereadable =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::lseek(fd, 0, SEEK_CUR) == 0;
  rdb::Options first = options;
  if (!rereadable) first.deep = true;
  Verify(result, fd, first);
  const rdb::ChecksumVerdict verdict = result.report.checksum;
  if (result.ok() && !first.deep &&
      (verdict == rdb::ChecksumVerdict::kDisabled || verdict == rdb::ChecksumVerdict::kAbsent)) {
    // The fast pass skipped the inside of LZF strings because a CRC-64 normally vouches for
    // them. This file has none, so read it again, through the same descriptor, and walk every
    // LZF stream. The second pass costs time only for checksum-less files.
    rdb::Options deep = options;
    deep.deep = true;
    FileVerification second;
    second.path = path;
    second.compression = CompressionFromFileName(path);
    if (::lseek(fd, 0, SEEK_SET) != 0) {
      second.io_error = "seek to the start for the deep pass: " + ErrnoMessage(errno);
    } else {
      Verify(second, fd, deep);
    }
    second.deep = true;
    result = std::move(second);
  }
  result.deep = result.deep || first.deep;
}

}  // namespace

std::vector<FileVerification> VerifyPath(const std::string& path, const rdb::Options& options,
                                         FileKind kind) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) {
    return {PathError(path, ErrnoMessage(ec ? ec.value() : ENOENT))};
  }
  if (!fs::is_directory(status)) return {VerifyFile(path, options, kind)};

  std::vector<std::string> names;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    // is_regular_file follows symlinks, so a link to an RDB file counts as one, except where
    // only regular files themselves may be read.
    const bool regular = kind == FileKind::kRegular
                             ? fs::is_regular_file(it->symlink_status(type_ec))
                             : it->is_regular_file(type_ec);
    if (IsRdbFileName(name) && regular) names.push_back(name);
  }
  if (ec) return {PathError(path, "cannot list the directory: " + ec.message())};
  if (names.empty()) {
    return {PathError(path, "no RDB files (*.rdb, *.rdb.zst, *.rdb.lz4) in the directory")};
  }
  std::sort(names.begin(), names.end());

  std::vector<FileVerification> results;
  results.reserve(names.size());
  for (const std::string& name : names) {
    results.push_back(VerifyFile((fs::path(path) / name).string(), options, kind));
  }
  return results;
}

}  // namespace finalsnap
