#include "pipeline.h"

#include <pthread.h>
#include <errno.h>
#include <lz4frame.h>
#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <cstring>

namespace finalsnap::detail {

BufferPool::BufferPool(size_t count, size_t size)
    : size_(size), storage_(count * size), refs_(count, 0) {
  for (size_t i = count; i > 0; --i) free_.push_back(static_cast<int>(i - 1));
}

int BufferPool::Acquire() {
  if (free_.empty()) return -1;
  const int id = free_.back();
  free_.pop_back();
  refs_[id] = 1;
  return id;
}

void BufferPool::Unref(int id) {
  if (--refs_[id] > 0) return;
  free_.push_back(id);
  if (on_free_) on_free_();
}

namespace {

// The compressor is woken once this much is queued for it (Pipeline::unwoken_bytes_)...
constexpr size_t kWakeBytes = size_t{512} << 10;
// ...or once no more than this many pool buffers are free, so backpressure never waits on it.
constexpr size_t kWakeFreeBuffers = 4;

// Writes all of `data` to `fd`; an error message or empty.
std::string WriteAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::string("write: ") + std::strerror(errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

// One streaming encoder per codec behind one interface: Update() per buffer, End() once.
class Encoder {
 public:
  virtual ~Encoder() = default;
  // Returns an error message or empty. `written` grows by the bytes written to fd.
  virtual std::string Update(const uint8_t* data, size_t size) = 0;
  virtual std::string End() = 0;
  uint64_t written = 0;
  WriteFollower* follower = nullptr;  // told after every write how far the file goes
  std::atomic<uint64_t>* progress = nullptr;  // `written`, for the loop thread to read

 protected:
  std::string Write(const uint8_t* data, size_t size) {
    std::string error = WriteAll(fd_, data, size);
    if (error.empty()) {
      written += size;
      if (progress != nullptr) progress->store(written, std::memory_order_relaxed);
      if (follower != nullptr) follower->Written(written);
    }
    return error;
  }
  int fd_ = -1;
};

class PlainEncoder final : public Encoder {
 public:
  explicit PlainEncoder(int fd) { fd_ = fd; }
  std::string Update(const uint8_t* data, size_t size) override { return Write(data, size); }
  std::string End() override { return {}; }
};

class ZstdEncoder final : public Encoder {
 public:
  ZstdEncoder(int fd, int level) : cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
    fd_ = fd;
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
    // The frame carries its own checksum, so `zstd -t` can check a stored file on its own.
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdEncoder() override { ZSTD_freeCCtx(cctx_); }

  std::string Update(const uint8_t* data, size_t size) override {
    ZSTD_inBuffer in{data, size, 0};
    while (in.pos < in.size) {
      if (std::string e = Step(in, ZSTD_e_continue); !e.empty()) return e;
    }
    return {};
  }
  std::string End() override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data() + pos_, out_.size() - pos_, 0};
      const size_t left = ZSTD_compressStream2(cctx_, &out, &in, ZSTD_e_end);
      if (ZSTD_isError(left)) return std::string("zstd: ") + ZSTD_getErrorName(left);
      pos_ += out.pos;
      if (std::string e = Flush(); !e.empty()) return e;
      if (left == 0) return {};
    }
  }

 private:
  std::string Step(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data() + pos_, out_.size() - pos_, 0};
    const size_t r = ZSTD_compressStream2(cctx_, &out, &in, mode);
    if (ZSTD_isError(r)) return std::string("zstd: ") + ZSTD_getErrorName(r);
    pos_ += out.pos;
    // Write whole output buffers only: fewer, larger writes.
    if (pos_ == out_.size()) return Flush();
    return {};
  }
  std::string Flush() {
    std::string e = Write(out_.data(), pos_);
    pos_ = 0;
    return e;
  }

  ZSTD_CCtx* cctx_;
  std::vector<uint8_t> out_;
  size_t pos_ = 0;
};

class Lz4Encoder final : public Encoder {
 public:
  Lz4Encoder(int fd, int level, size_t max_input) {
    fd_ = fd;
    LZ4F_createCompressionContext(&ctx_, LZ4F_VERSION);
    std::memset(&prefs_, 0, sizeof prefs_);
    prefs_.compressionLevel = level;
    prefs_.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs_.frameInfo.blockSizeID = LZ4F_max4MB;
    out_.resize(LZ4F_compressBound(max_input, &prefs_) + LZ4F_HEADER_SIZE_MAX);
  }
  ~Lz4Encoder() override { LZ4F_freeCompressionContext(ctx_); }

  std::string Update(const uint8_t* data, size_t size) override {
    if (!begun_) {
      const size_t n = LZ4F_compressBegin(ctx_, out_.data(), out_.size(), &prefs_);
      if (LZ4F_isError(n)) return std::string("lz4: ") + LZ4F_getErrorName(n);
      if (std::string e = Write(out_.data(), n); !e.empty()) return e;
      begun_ = true;
    }
    const size_t n = LZ4F_compressUpdate(ctx_, out_.data(), out_.size(), data, size, nullptr);
    if (LZ4F_isError(n)) return std::string("lz4: ") + LZ4F_getErrorName(n);
    return n ? Write(out_.data(), n) : std::string();
  }
  std::string End() override {
    if (!begun_) {
      if (std::string e = Update(nullptr, 0); !e.empty()) return e;
    }
    const size_t n = LZ4F_compressEnd(ctx_, out_.data(), out_.size(), nullptr);
    if (LZ4F_isError(n)) return std::string("lz4: ") + LZ4F_getErrorName(n);
    return Write(out_.data(), n);
  }

 private:
  LZ4F_cctx* ctx_ = nullptr;
  LZ4F_preferences_t prefs_;
  std::vector<uint8_t> out_;
  bool begun_ = false;
};

std::unique_ptr<Encoder> MakeEncoder(const CompressionSettings& s, int fd, size_t max_input) {
  switch (s.codec) {
    case Compression::kZstd:
      return std::make_unique<ZstdEncoder>(fd, s.level);
    case Compression::kLz4:
      return std::make_unique<Lz4Encoder>(fd, s.level, max_input);
    case Compression::kNone:
      break;
  }
  return std::make_unique<PlainEncoder>(fd);
}

}  // namespace

Pipeline::Pipeline(Loop& loop, BufferPool& pool, CompressionSettings settings, int fd,
                   WriteFollower* follower)
    : loop_(loop), pool_(pool), settings_(settings), fd_(fd), follower_(follower) {
  async_ = new uv_async_t;
  uv_async_init(loop_.get(), async_, [](uv_async_t* a) {
    if (a->data != nullptr) static_cast<Pipeline*>(a->data)->OnCompleted();
  });
  async_->data = this;
  if (follower_ != nullptr) {
    follower_->OnDone([this] {
      {
        std::lock_guard lock(mutex_);
        follower_done_ = true;
      }
      uv_async_send(async_);
    });
  }
  thread_ = std::thread([this] {
    // Named, so that top -H and perf show which stage a thread is.
    pthread_setname_np(pthread_self(), "fs-compress");
    CompressorMain();
  });
}

Pipeline::~Pipeline() {
  Abort();
  async_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

bool Pipeline::Push(int id, std::span<const uint8_t> bytes) {
  if (failed()) return false;
  if (bytes.empty()) return true;
  payload_bytes_ += bytes.size();
  if (validator_.Feed(bytes) == rdb::Progress::kError) return false;
  pool_.Ref(id);
  {
    std::lock_guard lock(mutex_);
    work_.push_back(Work{id, bytes.data(), bytes.size()});
  }
  unwoken_bytes_ += bytes.size();
  if (unwoken_bytes_ >= kWakeBytes || pool_.free_count() <= kWakeFreeBuffers) {
    unwoken_bytes_ = 0;
    work_ready_.notify_one();
  }
  return true;
}

void Pipeline::CompressorMain() {
  std::unique_ptr<Encoder> encoder = MakeEncoder(settings_, fd_, pool_.size());
  encoder->follower = follower_;
  encoder->progress = &written_;
  std::string error;
  std::deque<Work> batch;
  for (;;) {
    if (batch.empty()) {
      // Everything queued at once; the loop hears back once per batch.
      uv_async_send(async_);
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this] { return abort_ || !work_.empty(); });
      if (abort_) return;
      batch.swap(work_);
    }
    const Work w = batch.front();
    batch.pop_front();
    if (w.id < 0) {
      if (error.empty()) error = encoder->End();
      if (follower_ != nullptr) {
        // A file that failed to write is not read to its end: the pipeline has failed anyway.
        if (error.empty()) {
          follower_->Close(encoder->written);
        } else {
          follower_->Abort();
        }
      }
      std::lock_guard lock(mutex_);
      writer_error_ = error;
      stored_bytes_ = encoder->written;
      writer_done_ = true;
      uv_async_send(async_);
      return;
    }
    // After a failed write keep draining, so every buffer goes back to the pool.
    if (error.empty()) error = encoder->Update(w.data, w.size);
    std::lock_guard lock(mutex_);
    completed_.push_back(w.id);
    if (abort_) {
      // Abort() returns what is completed (and still queued) to the pool, the rest of this
      // batch included.
      for (const Work& left : batch) {
        if (left.id >= 0) completed_.push_back(left.id);
      }
      return;
    }
  }
}

bool Pipeline::AllDone() { return writer_done_ && (follower_ == nullptr || follower_done_); }

void Pipeline::OnCompleted() {
  std::vector<int> done;
  bool all_done;
  {
    std::lock_guard lock(mutex_);
    done.swap(completed_);
    all_done = AllDone();
  }
  for (int id : done) pool_.Unref(id);
  if (all_done && on_writer_done_) {
    auto fn = std::move(on_writer_done_);
    on_writer_done_ = nullptr;
    fn();
  }
}

void Pipeline::Abort() {
  if (follower_ != nullptr) follower_->Abort();
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    abort_ = true;
  }
  work_ready_.notify_one();
  thread_.join();
  // Everything the compressor did not get to, and what it finished, goes back to the pool.
  std::vector<int> ids;
  {
    std::lock_guard lock(mutex_);
    for (const Work& w : work_) {
      if (w.id >= 0) ids.push_back(w.id);
    }
    work_.clear();
    ids.insert(ids.end(), completed_.begin(), completed_.end());
    completed_.clear();
  }
  for (int id : ids) pool_.Unref(id);
}

struct Pipeline::FinishAwaiter {
  Pipeline& p;
  bool await_ready() {
    std::lock_guard lock(p.mutex_);
    return p.AllDone();
  }
  void await_suspend(std::coroutine_handle<> h) {
    p.on_writer_done_ = [h] { h.resume(); };
    // The writer may have finished between await_ready and here; its wake-up then finds the
    // callback when OnCompleted runs.
    uv_async_send(p.async_);
  }
  void await_resume() {}
};

Task<PipelineResult> Pipeline::Finish() {
  {
    std::lock_guard lock(mutex_);
    work_.push_back(Work{-1, nullptr, 0});
  }
  work_ready_.notify_one();
  FinishAwaiter finished{*this};
  co_await finished;
  thread_.join();
  OnCompleted();

  PipelineResult r;
  r.payload_bytes = payload_bytes_;
  {
    std::lock_guard lock(mutex_);
    r.stored_bytes = stored_bytes_;
    if (!writer_error_.empty()) first_error_ = writer_error_;
  }
  validator_.Finish();
  r.report = validator_.report();
  r.rdb_complete = validator_.done();
  if (validator_.failed()) r.rdb_error = validator_.diagnostic();
  if (!first_error_.empty()) {
    r.status = Status::Error(first_error_);
  } else if (r.rdb_error) {
    r.status = Status::Error(r.rdb_error->ToString());
  }
  co_return r;
}

}  // namespace finalsnap::detail
