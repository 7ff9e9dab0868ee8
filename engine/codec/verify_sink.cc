// VerifySink and ReadThrough (verify_sink.h): stored bytes -> StreamDecoder -> rdb::Validator,
// and the read-ahead reader that feeds it a whole file.
#include "finalsnap/verify_sink.h"

#include <pthread.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "file_io.h"

namespace finalsnap {
namespace {

using detail::ErrnoMessage;

constexpr size_t kReadChunk = size_t{1} << 20;
// Chunks read ahead of the one being validated.
constexpr size_t kAheadBuffers = 4;

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

  // The ring is not zeroed: reads fill it, and zeroing 4 MiB was most of a small verify's time.
  explicit ReadAhead(int fd)
      : fd_(fd), storage_(std::make_unique_for_overwrite<uint8_t[]>(kAheadBuffers * kReadChunk)) {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "fs-readahead");
      Produce();
    });
  }
  ~ReadAhead() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

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
    c.data = {storage_.get() + (consumed_ - 1) % kAheadBuffers * kReadChunk, slot.size};
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
      const std::span<uint8_t> buf(storage_.get() + i % kAheadBuffers * kReadChunk, kReadChunk);
      const ssize_t n = detail::ReadFull(fd_, buf);
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
  std::unique_ptr<uint8_t[]> storage_;
  std::array<Slot, kAheadBuffers> slots_{};
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t filled_ = 0;    // chunks read
  uint64_t consumed_ = 0;  // chunks handed out
  uint64_t released_ = 0;  // chunks handed back
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

VerifySink::VerifySink(Compression expected, const rdb::Options& options, Tap tap)
    : compression_(expected),
      validator_(options),
      tap_(std::move(tap)),
      output_([this](std::span<const uint8_t> decoded) { Output(decoded); }) {}

VerifySink::~VerifySink() = default;

void VerifySink::Output(std::span<const uint8_t> decoded) {
  // Once the validator or the tap has failed, the rest of this Decode's output is not worth
  // looking at.
  if (stopped_) return;
  if (validator_.Feed(decoded) == rdb::Progress::kError) {
    stopped_ = true;
    return;
  }
  if (tap_) {
    if (Status s = tap_(decoded); !s.ok()) {
      tap_error_ = s.message();
      stopped_ = true;
    }
  }
}

bool VerifySink::Write(std::span<const uint8_t> stored) {
  if (!ok() || finished_) return false;
  if (stored.empty()) return true;
  stored_bytes_ += stored.size();
  if (!decoder_) {
    if (held_ == 0 && stored.size() >= head_.size()) {
      // The usual case: the first piece holds the magic number.
      Start(SniffCompression(stored));
    } else {
      // Pieces smaller than the magic number: hold them until there are four bytes to decide by
      // (at most three bytes, copied once per file).
      const size_t take = std::min(stored.size(), head_.size() - held_);
      std::copy_n(stored.begin(), take, head_.begin() + static_cast<ptrdiff_t>(held_));
      held_ += take;
      stored = stored.subspan(take);
      if (held_ < head_.size()) return true;
      Start(SniffCompression(head_));
      if (!Decode(head_)) return false;
    }
  }
  return Decode(stored);
}

void VerifySink::Finish() {
  if (!ok() || finished_) return;
  finished_ = true;
  if (!decoder_) {
    // Fewer than four stored bytes, or none: the caller's expectation stands.
    Start(compression_);
    if (!Decode({head_.data(), held_})) return;
  }
  // Both stages must agree that their input was complete.
  if (const Status status = decoder_->Finish(); !status.ok()) io_error_ = status.message();
  if (validator_.Finish() == rdb::Progress::kError) rdb_error_ = validator_.diagnostic();
}

void VerifySink::Start(Compression compression) {
  compression_ = compression;
  decoder_ = StreamDecoder::Create(compression);
}

bool VerifySink::Decode(std::span<const uint8_t> stored) {
  if (stored.empty()) return true;
  const Status status = decoder_->Decode(stored, output_);
  if (validator_.failed()) {
    rdb_error_ = validator_.diagnostic();
  } else if (!tap_error_.empty()) {
    io_error_ = std::move(tap_error_);
  } else if (!status.ok()) {
    io_error_ = status.message();
  }
  return ok();
}

void VerifySink::Fail(std::string io_error) {
  if (!ok()) return;
  io_error_ = std::move(io_error);
}

int ReadThrough(int fd, VerifySink& sink) {
  ReadAhead ahead(fd);
  for (;;) {
    const ReadAhead::Chunk chunk = ahead.Next();
    if (chunk.error != 0) {
      sink.Fail("read: " + ErrnoMessage(chunk.error));
      return chunk.error;
    }
    if (!sink.Write(chunk.data)) return 0;
    if (!chunk.more) break;
  }
  sink.Finish();
  return 0;
}

}  // namespace finalsnap
