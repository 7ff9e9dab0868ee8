// VerifyFile and VerifyPath: file -> read(2) chunks (read ahead on a second thread) ->
// StreamDecoder -> rdb::Validator.
//
// One 1 MiB read buffer is reused for the whole file and the decoder owns one fixed output
// buffer, so nothing here grows with the file. Reading stops at the first error.
#include "finalsnap/verify.h"
#include "unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace finalsnap {
namespace {

constexpr size_t kReadChunk = size_t{1} << 20;
// Chunks read ahead of the one being validated.
constexpr size_t kAheadBuffers = 4;

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

using detail::UniqueFd;

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

// Reads a file sequentially on its own thread into a ring of kAheadBuffers buffers of
// kReadChunk bytes, handing each full one to the consumer in order. Memory is the ring, whatever
// the file size.
class ReadAhead {
 public:
  struct Chunk {
    std::span<const uint8_t> data;
    bool more = false;  // false on the last chunk (short or empty: the end of the file)
    int error = 0;      // errno of a failed read
  };

  explicit ReadAhead(int fd) : fd_(fd), storage_(kAheadBuffers * kReadChunk) {
    thread_ = std::thread([this] { Produce(); });
  }
  ~ReadAhead() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  // The next chunk; the one returned before is handed back to the reader.
  Chunk Next() {
    std::unique_lock lock(mutex_);
    if (consumed_ > 0) {
      ++released_;
      changed_.notify_all();
    }
    changed_.wait(lock, [this] { return filled_ > consumed_; });
    const Slot& slot = slots_[consumed_ % kAheadBuffers];
    ++consumed_;
    Chunk c;
    c.data = {storage_.data() + (consumed_ - 1) % kAheadBuffers * kReadChunk, slot.size};
    c.more = slot.size == kReadChunk && slot.error == 0;
    c.error = slot.error;
    return c;
  }

 private:
  struct Slot {
    size_t size = 0;
    int error = 0;
  };

  void Produce() {
    for (uint64_t i = 0;; ++i) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || i - released_ < kAheadBuffers; });
        if (stop_) return;
      }
      const std::span<uint8_t> buf(storage_.data() + i % kAheadBuffers * kReadChunk, kReadChunk);
      const ssize_t n = ReadFull(fd_, buf);
      Slot slot;
      if (n < 0) {
        slot.error = errno;
      } else {
        slot.size = static_cast<size_t>(n);
      }
      {
        std::lock_guard lock(mutex_);
        slots_[i % kAheadBuffers] = slot;
        ++filled_;
      }
      changed_.notify_all();
      if (n < 0 || static_cast<size_t>(n) < kReadChunk) return;
    }
  }

  int fd_;
  std::vector<uint8_t> storage_;
  std::array<Slot, kAheadBuffers> slots_{};
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t filled_ = 0;    // chunks read
  uint64_t consumed_ = 0;  // chunks handed out
  uint64_t released_ = 0;  // chunks handed back
  bool stop_ = false;
  std::thread thread_;
};

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

  // The rest of the file is read ahead on a second thread, so the kernel's copy into our
  // buffers overlaps the decoding and validation of the previous buffer.
  ReadAhead ahead(fd.get());
  std::span<const uint8_t> chunk = chunk_buffer.first(static_cast<size_t>(n));
  bool more = static_cast<size_t>(n) == kReadChunk;  // ReadFull stops short only at the end
  for (;;) {
    result.stored_bytes += chunk.size();
    const Status status = decoder->Decode(chunk, feed);
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
    if (!more) break;
    const ReadAhead::Chunk next = ahead.Next();
    if (next.error != 0) {
      result.io_error = "read: " + ErrnoMessage(next.error);
      result.report = validator.report();
      return;
    }
    chunk = next.data;
    more = next.more;
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
