// The capture pipeline: where snapshot bytes go between the socket (or the node's RDB file) and
// snapshot storage, without being copied.
//
//   socket read ──► pooled buffer ──► framing ──► confirmed payload ranges
//                                                   │
//                        loop thread                ├─► rdb::Validator   (tap: parse, CRC-64,
//                        counts) ───────────                │ compressor thread          └─►
//                        bounded queue ─► zstd | lz4 | none ─► file fd
//
// - BufferPool hands out fixed-size buffers with reference counts. A read lands in one; the
//   validator reads it in place and the compressor thread gets a reference to the same bytes.
// - The queue is bounded by the pool: when every buffer is in flight, Acquire() fails and the
//   reader stops reading the socket until the compressor returns one (backpressure), so memory
//   stays flat whatever the snapshot size.
// - The compressor writes standard zstd or lz4 frames (or the plain bytes), so `zstd -d` and
//   `lz4 -d` give back the exact RDB the server sent.
// - With a WriteFollower (finalsnap/write_follower.h; the store's StreamingReadback is one), the
//   compressor tells it after every write how far the file goes, so the file can be read back
//   while it is written. Finish() waits for the follower too, so the readback's tail is only the
//   last stretch. The pipeline knows nothing of the store: the operation wires the two.
//
//   Expected<std::unique_ptr<StreamingReadback>> started =
//       StreamingReadback::Start(writer->dir() / file, codec);
//   if (!started.ok()) return started.error();
//   std::unique_ptr<StreamingReadback> rb = *std::move(started);
//   Pipeline pipeline(loop, pool, {codec, level}, fd, rb.get());
//   PipelineResult r = co_await pipeline.Finish();
//   ReadbackReport back = rb->Wait();   // what was read back: the `readback` gate's evidence
#ifndef FINALSNAP_ENGINE_PIPELINE_H_
#define FINALSNAP_ENGINE_PIPELINE_H_

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "async.h"
#include "finalsnap/decoder.h"
#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"
#include "finalsnap/write_follower.h"
#include "loop.h"

namespace finalsnap::detail {

class BufferPool {
 public:
  BufferPool(size_t count, size_t size);
  // A free buffer with one reference, or -1 when all are in use.
  int Acquire();
  void Ref(int id) { ++refs_[id]; }
  // Drops a reference; the last one returns the buffer to the pool.
  void Unref(int id);
  uint8_t* data(int id) { return storage_.data() + static_cast<size_t>(id) * size_; }
  size_t size() const { return size_; }
  size_t free_count() const { return free_.size(); }
  // Called (on the loop thread) whenever a buffer becomes free.
  void SetOnFree(std::function<void()> fn) { on_free_ = std::move(fn); }

 private:
  size_t size_;
  std::vector<uint8_t> storage_;
  std::vector<int> refs_;
  std::vector<int> free_;
  std::function<void()> on_free_;
};

struct CompressionSettings {
  Compression codec = Compression::kZstd;
  int level = 1;
};

struct PipelineResult {
  Status status;              // the first failure: validator, compressor or write
  rdb::Report report;         // what the validator saw
  bool rdb_complete = false;  // the validator reached the end of the RDB
  std::optional<rdb::Diagnostic> rdb_error;
  uint64_t payload_bytes = 0;  // RDB bytes pushed
  uint64_t stored_bytes = 0;   // bytes written to the file
};

class Pipeline {
 public:
  // Writes to `fd` (not owned; the storage writer fsyncs and closes it). A `follower` (not
  // owned; it must outlive the pipeline) is told how far the file is written after every write,
  // closed at the end, aborted with the pipeline, and waited for by Finish().
  Pipeline(Loop& loop, BufferPool& pool, CompressionSettings settings, int fd,
           WriteFollower* follower = nullptr);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Loop thread: `bytes` lie in pool buffer `id`. The validator reads them now; the compressor
  // holds a reference to the buffer until it has written them. Returns false once the pipeline
  // has failed (the caller stops feeding).
  bool Push(int id, std::span<const uint8_t> bytes);
  // Ends the stream: flushes the compressor, waits for the writer (and the follower, if any),
  // finishes the validator.
  Task<PipelineResult> Finish();
  // Stops the compressor without finishing the frame, and the follower (a refused capture).
  void Abort();

  const rdb::Validator& validator() const { return validator_; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  // Bytes written to the file so far (any thread; the compressor updates it after each write).
  uint64_t stored_bytes() const { return written_.load(std::memory_order_relaxed); }
  bool failed() const { return !first_error_.empty() || validator_.failed(); }

 private:
  struct Work {
    int id;  // -1: end of stream
    const uint8_t* data;
    size_t size;
  };
  void CompressorMain();
  void OnCompleted();  // loop thread: buffers back from the compressor
  bool AllDone();      // under mutex_: the writer, and the follower if any, are done
  struct FinishAwaiter;

  Loop& loop_;
  BufferPool& pool_;
  CompressionSettings settings_;
  int fd_;
  rdb::Validator validator_;
  uint64_t payload_bytes_ = 0;
  std::string first_error_;
  // Bytes pushed since the compressor was last woken (loop thread). Waking it for every socket
  // read (tens of KiB while the server's fork child is the bottleneck) cost a futex wake, a
  // context switch and an eventfd write back each time: it is woken once kWakeBytes are queued,
  // when the pool runs low, and at the end.
  size_t unwoken_bytes_ = 0;

  // Shared with the compressor thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<Work> work_;
  std::vector<int> completed_;
  bool abort_ = false;
  bool writer_done_ = false;
  std::string writer_error_;
  uint64_t stored_bytes_ = 0;
  bool follower_done_ = false;

  WriteFollower* follower_ = nullptr;
  std::atomic<uint64_t> written_{0};

  uv_async_t* async_ = nullptr;  // compressor -> loop wake-up; freed in its close callback
  std::function<void()> on_writer_done_;
  std::thread thread_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_PIPELINE_H_
