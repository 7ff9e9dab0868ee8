// The capture pipeline: where snapshot bytes go between the socket (or the node's RDB file) and
// snapshot storage, without being copied.
//
//   socket read ──► pooled buffer ──► framing ──► confirmed payload ranges
//                                                   │
//                        loop thread                ├─► rdb::Validator   (tap: parse, CRC-64, counts)
//                        ───────────                │
//                        compressor thread          └─► bounded queue ─► zstd | lz4 | none ─► file fd
//
// - BufferPool hands out fixed-size buffers with reference counts. A read lands in one; the
//   validator reads it in place and the compressor thread gets a reference to the same bytes.
// - The queue is bounded by the pool: when every buffer is in flight, Acquire() fails and the
//   reader stops reading the socket until the compressor returns one (backpressure), so memory
//   stays flat whatever the snapshot size.
// - The compressor writes standard zstd or lz4 frames (or the plain bytes), so `zstd -d` and
//   `lz4 -d` give back the exact RDB the server sent.
// - With ReadbackSettings, the file is read back while it is written (StreamingReadback in
//   finalsnap/storage.h): after every write the compressor tells the readback thread how far the
//   file goes, and that thread syncs each stretch, reads it from the device, decodes and
//   validates it. Finish() waits for both, so the readback's tail is only the last stretch.
//
//   Pipeline pipeline(loop, pool, {codec, level}, fd, ReadbackSettings{writer->dir() / file});
//   PipelineResult r = co_await pipeline.Finish();   // r.readback: what was read back
//   ... writer->Commit(manifest, &evidence) ...
//   CheckReadback({&*r.readback, 1}, manifest, &evidence);   // the `readback` gate
#ifndef FINALSNAP_ENGINE_PIPELINE_H_
#define FINALSNAP_ENGINE_PIPELINE_H_

#include <uv.h>

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
#include "finalsnap/storage.h"
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

// Read the file back while it is written (see above).
struct ReadbackSettings {
  std::filesystem::path path;  // the file the pipeline's fd writes (in its partial directory)
  StreamingReadback::Options options = {};
};

struct PipelineResult {
  Status status;              // the first failure: validator, compressor or write
  rdb::Report report;         // what the validator saw
  bool rdb_complete = false;  // the validator reached the end of the RDB
  std::optional<rdb::Diagnostic> rdb_error;
  uint64_t payload_bytes = 0;  // RDB bytes pushed
  uint64_t stored_bytes = 0;   // bytes written to the file
  // With ReadbackSettings: what reading the file back found (its io_error says so if the
  // readback could not even start). Not part of `status`: it is the `readback` gate's evidence,
  // judged by CheckReadback once the snapshot is committed.
  std::optional<ReadbackReport> readback;
};

class Pipeline {
 public:
  // Writes to `fd` (not owned; the storage writer fsyncs and closes it). With `readback`, the
  // file at readback->path (the one `fd` writes) is read back while it is written.
  Pipeline(Loop& loop, BufferPool& pool, CompressionSettings settings, int fd,
           std::optional<ReadbackSettings> readback = std::nullopt);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Loop thread: `bytes` lie in pool buffer `id`. The validator reads them now; the compressor
  // holds a reference to the buffer until it has written them. Returns false once the pipeline
  // has failed (the caller stops feeding).
  bool Push(int id, std::span<const uint8_t> bytes);
  // Ends the stream: flushes the compressor, waits for the writer (and the readback, if any),
  // finishes the validator.
  Task<PipelineResult> Finish();
  // Stops the compressor without finishing the frame, and the readback (a refused capture).
  void Abort();

  const rdb::Validator& validator() const { return validator_; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  bool failed() const { return !first_error_.empty() || validator_.failed(); }

 private:
  struct Work {
    int id;  // -1: end of stream
    const uint8_t* data;
    size_t size;
  };
  void CompressorMain();
  void OnCompleted();  // loop thread: buffers back from the compressor
  bool AllDone();      // under mutex_: the writer, and the readback if any, are done
  struct FinishAwaiter;

  Loop& loop_;
  BufferPool& pool_;
  CompressionSettings settings_;
  int fd_;
  rdb::Validator validator_;
  uint64_t payload_bytes_ = 0;
  std::string first_error_;

  // Shared with the compressor thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<Work> work_;
  std::vector<int> completed_;
  bool abort_ = false;
  bool writer_done_ = false;
  std::string writer_error_;
  uint64_t stored_bytes_ = 0;
  bool readback_done_ = false;

  std::unique_ptr<StreamingReadback> readback_;
  std::string readback_error_;  // it could not start

  uv_async_t* async_ = nullptr;  // compressor -> loop wake-up; freed in its close callback
  std::function<void()> on_writer_done_;
  std::thread thread_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_PIPELINE_H_
