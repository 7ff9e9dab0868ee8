// StreamingReadback (storage.h): the `readback` gate's reading, done while the file is written.
//
// One thread per file follows the writer a stretch at a time: sync the stretch to the device,
// read it from there (O_DIRECT, or a dropped page cache) into one VerifySink (decoder, then
// validator) for the whole file. The writer never waits for it; at the end only the last
// stretch, and whatever the thread had not caught up with, remains.
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "file_io.h"
#include "finalsnap/storage.h"
#include "finalsnap/verify.h"
#include "finalsnap/verify_sink.h"

namespace finalsnap {
namespace {

// O_DIRECT wants offsets, lengths and buffers aligned to the device's logical block size: 4 KiB
// covers 512-byte and 4 KiB devices alike, and stretches end on page boundaries anyway.
constexpr uint64_t kAlign = 4096;
constexpr size_t kChunk = size_t{1} << 20;

uint64_t AlignDown(uint64_t v) { return v & ~(kAlign - 1); }
uint64_t AlignUp(uint64_t v) { return AlignDown(v + kAlign - 1); }

using detail::ErrnoMessage;

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

struct StreamingReadback::State {
  std::filesystem::path path;
  Options options;
  int fd = -1;
  ReadbackReport report;  // the thread's own until `done`

  std::mutex mutex;
  std::condition_variable changed;
  uint64_t written = 0;  // the writer's progress
  uint64_t size = 0;     // the final size, once closed
  bool closed = false;
  bool abort = false;
  bool done = false;
  uint64_t read_to = 0;  // stretches read so far end here
  std::chrono::steady_clock::time_point closed_at;
  std::function<void()> on_done;
  std::thread thread;

  // The thread's reading state.
  std::unique_ptr<uint8_t, FreeDeleter> buffer;
  std::unique_ptr<VerifySink> sink;  // every byte read, in order; its first error is the report's

  void Main();
  bool ReadStretch(uint64_t from, uint64_t to, bool last);
  bool SwitchToBuffered();
  void DeepPass();
};

Expected<std::unique_ptr<StreamingReadback>> StreamingReadback::Start(
    const std::filesystem::path& path, Compression compression, Options options) {
  auto state = std::make_unique<State>();
  state->path = path;
  state->options = std::move(options);
  // Whole blocks, so that every stretch but the last starts and ends on a block boundary.
  state->options.stretch_bytes = std::max(AlignUp(state->options.stretch_bytes), kAlign);
  state->report.path = path.string();
  state->report.compression = compression;
  void* buffer = nullptr;
  if (::posix_memalign(&buffer, kAlign, kChunk) != 0) {
    return Status::Error("readback: out of memory");
  }
  state->buffer.reset(static_cast<uint8_t*>(buffer));
  state->sink = std::make_unique<VerifySink>(compression);
  int fd = -1;
  if (state->options.direct) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT);
    if (fd >= 0) state->report.direct = true;
  }
  // No O_DIRECT (EINVAL: the file system has none) or not wanted: the page-cache path.
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::Error("readback: open " + path.string() + ": " + ErrnoMessage(errno));
  state->fd = fd;
  State* s = state.get();
  state->thread = std::thread([s] {
    pthread_setname_np(pthread_self(), "fs-readback");
    s->Main();
  });
  return std::unique_ptr<StreamingReadback>(new StreamingReadback(std::move(state)));
}

StreamingReadback::StreamingReadback(std::unique_ptr<State> state) : state_(std::move(state)) {}

StreamingReadback::~StreamingReadback() {
  Abort();
  if (state_->fd >= 0) ::close(state_->fd);
}

void StreamingReadback::Written(uint64_t end) {
  State& s = *state_;
  bool wake;
  {
    std::lock_guard lock(s.mutex);
    if (end <= s.written) return;
    // Wake the thread only when a whole stretch is waiting: a notify per write would cost more
    // than it saves.
    wake = AlignDown(end) >= s.read_to + s.options.stretch_bytes &&
           AlignDown(s.written) < s.read_to + s.options.stretch_bytes;
    s.written = end;
  }
  if (wake) s.changed.notify_all();
}

void StreamingReadback::Close(uint64_t size) {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.closed) return;
    s.closed = true;
    s.size = size;
    s.written = std::max(s.written, size);
    s.closed_at = std::chrono::steady_clock::now();
  }
  s.changed.notify_all();
}

void StreamingReadback::OnDone(std::function<void()> fn) {
  std::lock_guard lock(state_->mutex);
  state_->on_done = std::move(fn);
}

bool StreamingReadback::done() const {
  std::lock_guard lock(state_->mutex);
  return state_->done;
}

uint64_t StreamingReadback::read_bytes() const {
  std::lock_guard lock(state_->mutex);
  return state_->read_to;
}

ReadbackReport StreamingReadback::Wait() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  s.changed.wait(lock, [&s] { return s.done; });
  return s.report;
}

void StreamingReadback::Abort() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    s.abort = true;
  }
  s.changed.notify_all();
  if (s.thread.joinable()) s.thread.join();
}

void StreamingReadback::State::Main() {
  uint64_t next = 0;  // what is read so far: always 4 KiB aligned until the last stretch
  bool failed = false;
  bool tail_counted = false;
  for (;;) {
    uint64_t limit;
    bool last;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] {
        return abort || closed || AlignDown(written) >= next + options.stretch_bytes;
      });
      if (abort) {
        sink->Fail("readback aborted after " + std::to_string(next) + " bytes");
        failed = true;
        break;
      }
      // A stretch is at most stretch_bytes, so that each sync and read stays bounded even when
      // the writer jumps ahead (lz4 writes whole 4 MiB blocks) or the thread lags behind.
      if (closed) {
        if (!tail_counted) report.tail_bytes = size - std::min(size, next);
        tail_counted = true;
        limit = std::min(size, next + options.stretch_bytes);
        last = limit == size;
      } else {
        limit = std::min(AlignDown(written), next + options.stretch_bytes);
        last = false;
      }
    }
    if (!ReadStretch(next, limit, last)) {
      failed = true;
      break;
    }
    ++report.stretches;
    next = limit;
    {
      std::lock_guard lock(mutex);
      read_to = next;
    }
    if (last) break;
  }
  report.stored_bytes = next;
  if (!failed) sink->Finish();  // the end of the file
  report.compression = sink->compression();
  report.report = sink->report();
  report.rdb_error = sink->rdb_error();
  report.io_error = sink->io_error();
  const rdb::ChecksumVerdict verdict = report.report.checksum;
  if (report.ok() &&
      (verdict == rdb::ChecksumVerdict::kDisabled || verdict == rdb::ChecksumVerdict::kAbsent)) {
    DeepPass();
  }
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex);
    report.tail_seconds =
        closed ? std::chrono::duration<double>(std::chrono::steady_clock::now() - closed_at).count()
               : 0;
    done = true;
    notify = std::move(on_done);
  }
  changed.notify_all();
  if (notify) notify();
}

bool StreamingReadback::State::ReadStretch(uint64_t from, uint64_t to, bool last) {
  // Durable first: the stretch's pages go to the device (and are clean, so a drop can take them).
  // The last stretch runs to the end of the file, its partial last page included.
  const uint64_t sync_len = last ? 0 : to - from;
  if (::sync_file_range(
          fd, static_cast<off_t>(from), static_cast<off_t>(sync_len),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
    sink->Fail("sync_file_range at " + std::to_string(from) + ": " + ErrnoMessage(errno));
    return false;
  }
  if (!report.direct && ::posix_fadvise(fd, static_cast<off_t>(from), static_cast<off_t>(sync_len),
                                        POSIX_FADV_DONTNEED) != 0) {
    report.cache_dropped = false;
  }
  if (options.before_read) options.before_read(from, to - from);

  uint8_t* const buf = buffer.get();
  uint64_t pos = from;
  while (pos < to) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, to - pos));
    // O_DIRECT reads whole blocks; only the file's last one can be partial, and the read then
    // stops at the end of the file.
    const size_t len = report.direct ? static_cast<size_t>(AlignUp(want)) : want;
    const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && report.direct) {
        // The device wants a larger alignment than 4 KiB: read through the page cache.
        if (!SwitchToBuffered()) return false;
        if (::posix_fadvise(fd, static_cast<off_t>(pos), static_cast<off_t>(last ? 0 : to - pos),
                            POSIX_FADV_DONTNEED) != 0) {
          report.cache_dropped = false;
        }
        continue;
      }
      sink->Fail("read at " + std::to_string(pos) + ": " + ErrnoMessage(errno));
      return false;
    }
    if (n == 0) {
      sink->Fail("the file ends at " + std::to_string(pos) + " bytes, but " + std::to_string(to) +
                 " were written");
      return false;
    }
    const size_t got = std::min(static_cast<size_t>(n), want);
    // The first bytes decide the decoder, as in VerifyFile: a damaged magic number shows up as
    // a plain file that does not parse.
    if (!sink->Write({buf, got})) return false;
    pos += got;
  }
  return true;
}

bool StreamingReadback::State::SwitchToBuffered() {
  const int plain = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (plain < 0) {
    sink->Fail("readback: reopen " + path.string() + ": " + ErrnoMessage(errno));
    return false;
  }
  ::close(fd);
  fd = plain;
  report.direct = false;
  return true;
}

void StreamingReadback::State::DeepPass() {
  // No CRC-64 vouches for the insides of LZF strings, so VerifyFile walks them on a second read
  // of the whole file, which is complete and synced by now; its pages are dropped first.
  if (::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) report.cache_dropped = false;
  rdb::Options deep;
  deep.deep = true;
  const FileVerification v = VerifyFile(path.string(), deep);
  report.deep = true;
  report.report = v.report;
  report.rdb_error = v.rdb_error;
  if (!v.io_error.empty()) report.io_error = v.io_error;
  if (v.stored_bytes != report.stored_bytes && report.ok()) {
    report.io_error = "the deep pass read " + std::to_string(v.stored_bytes) +
                      " bytes, the first " + std::to_string(report.stored_bytes);
  }
}

}  // namespace finalsnap
