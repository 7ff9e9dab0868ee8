// VerifyFile and VerifyPath: file -> read(2) chunks -> StreamDecoder -> rdb::Validator, or for a
// plain RDB file, a sliding 8 MiB read-only mapping -> rdb::Validator.
//
// One 1 MiB read buffer is reused for the whole file and the decoder owns one fixed output
// buffer, so nothing here grows with the file. Reading stops at the first error.
#include "finalsnap/verify.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace finalsnap {
namespace {

constexpr size_t kReadChunk = size_t{1} << 20;
// Plain files are validated through a read-only mapping that slides this many bytes at a time.
constexpr size_t kMapWindow = size_t{8} << 20;

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

// Closes the descriptor on every path out of VerifyFile.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads until `buffer` is full or the file ends, so that a short read (a pipe, a signal) is not
// mistaken for the end of the file. Returns the bytes read, or -1 with errno set.
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

// The body of VerifyFile, which times it.
void Verify(FileVerification& result, const rdb::Options& options) {
  UniqueFd fd(::open(result.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    result.io_error = ErrnoMessage(errno);
    result.path_error = true;
    return;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    result.io_error = "stat: " + ErrnoMessage(errno);
    result.path_error = true;
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    result.io_error = ErrnoMessage(EISDIR);
    result.path_error = true;
    return;
  }
  // Only a hint: it lets the kernel read ahead further, and failure (a pipe) changes nothing.
  (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);

  auto buffer = std::make_unique<uint8_t[]>(kReadChunk);
  const std::span<uint8_t> chunk_buffer(buffer.get(), kReadChunk);
  ssize_t n = ReadFull(fd.get(), chunk_buffer);
  if (n < 0) {
    result.io_error = "read: " + ErrnoMessage(errno);
    result.path_error = true;
    return;
  }
  // Four bytes are enough to tell the formats apart; with fewer, the extension decides.
  if (n >= 4) result.compression = SniffCompression(chunk_buffer.first(static_cast<size_t>(n)));

  rdb::Validator validator(options);
  const std::unique_ptr<StreamDecoder> decoder = StreamDecoder::Create(result.compression);
  const auto feed = [&validator](std::span<const uint8_t> decoded) {
    // Once the validator has failed, the rest of this chunk's output is not worth looking at.
    if (!validator.failed()) validator.Feed(decoded);
  };

  if (result.compression == Compression::kNone && S_ISREG(st.st_mode) &&
      static_cast<size_t>(n) == kReadChunk) {
    // A plain RDB file: feed the validator straight from the page cache through a sliding
    // read-only mapping, which saves copying every byte into a buffer (a quarter of the time
    // on a large file). The window is unmapped as it moves, so RSS stays at one window.
    result.stored_bytes = static_cast<uint64_t>(n);
    validator.Feed(chunk_buffer.first(static_cast<size_t>(n)));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    for (uint64_t off = kReadChunk; off < size && !validator.failed(); off += kMapWindow) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(kMapWindow, size - off));
      void* map = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd.get(), static_cast<off_t>(off));
      if (map == MAP_FAILED) {
        result.io_error = "mmap: " + ErrnoMessage(errno);
        result.report = validator.report();
        return;
      }
      (void)::madvise(map, len, MADV_SEQUENTIAL | MADV_WILLNEED);
      validator.Feed({static_cast<const uint8_t*>(map), len});
      ::munmap(map, len);
      result.stored_bytes += len;
    }
    if (validator.failed()) {
      result.rdb_error = validator.diagnostic();
    } else if (validator.Finish() == rdb::Progress::kError) {
      result.rdb_error = validator.diagnostic();
    }
    result.report = validator.report();
    return;
  }

  while (n > 0) {
    result.stored_bytes += static_cast<uint64_t>(n);
    const Status status = decoder->Decode(chunk_buffer.first(static_cast<size_t>(n)), feed);
    // The validator's error comes first: its bytes precede whatever the decoder choked on.
    if (validator.failed()) {
      result.rdb_error = validator.diagnostic();
      result.report = validator.report();
      return;
    }
    if (!status.ok()) {
      result.io_error = status.message();
      result.report = validator.report();
      return;
    }
    if (static_cast<size_t>(n) < kReadChunk) break;  // ReadFull stops short only at the end
    n = ReadFull(fd.get(), chunk_buffer);
    if (n < 0) {
      result.io_error = "read: " + ErrnoMessage(errno);
      result.report = validator.report();
      return;
    }
  }

  // End of file: both stages must agree that their input was complete.
  if (const Status status = decoder->Finish(); !status.ok()) result.io_error = status.message();
  if (validator.Finish() == rdb::Progress::kError) result.rdb_error = validator.diagnostic();
  result.report = validator.report();
}

}  // namespace

Compression CompressionFromFileName(const std::string& path) {
  if (EndsWith(path, ".zst")) return Compression::kZstd;
  if (EndsWith(path, ".lz4")) return Compression::kLz4;
  return Compression::kNone;
}

FileVerification VerifyFile(const std::string& path, const rdb::Options& options) {
  FileVerification result;
  result.path = path;
  result.compression = CompressionFromFileName(path);
  const auto start = std::chrono::steady_clock::now();
  Verify(result, options);
  const rdb::ChecksumVerdict verdict = result.report.checksum;
  if (result.ok() && !options.deep &&
      (verdict == rdb::ChecksumVerdict::kDisabled || verdict == rdb::ChecksumVerdict::kAbsent)) {
    // The fast pass skipped the inside of LZF strings because a CRC-64 normally vouches for
    // them. This file has none, so read it again and walk every LZF stream. A file, unlike a
    // socket, can be read twice; the second pass costs time only for checksum-less files.
    rdb::Options deep = options;
    deep.deep = true;
    FileVerification second;
    second.path = path;
    second.compression = CompressionFromFileName(path);
    Verify(second, deep);
    second.deep = true;
    result = std::move(second);
  }
  result.deep = result.deep || options.deep;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::vector<FileVerification> VerifyPath(const std::string& path, const rdb::Options& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) {
    return {PathError(path, ErrnoMessage(ec ? ec.value() : ENOENT))};
  }
  if (!fs::is_directory(status)) return {VerifyFile(path, options)};

  std::vector<std::string> names;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    // is_regular_file follows symlinks, so a link to an RDB file counts as one.
    if (IsRdbFileName(name) && it->is_regular_file(type_ec)) names.push_back(name);
  }
  if (ec) return {PathError(path, "cannot list the directory: " + ec.message())};
  if (names.empty()) {
    return {PathError(path, "no RDB files (*.rdb, *.rdb.zst, *.rdb.lz4) in the directory")};
  }
  std::sort(names.begin(), names.end());

  std::vector<FileVerification> results;
  results.reserve(names.size());
  for (const std::string& name : names) {
    results.push_back(VerifyFile((fs::path(path) / name).string(), options));
  }
  return results;
}

}  // namespace finalsnap
