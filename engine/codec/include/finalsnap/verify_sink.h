// VerifySink: the one path from a stored snapshot file's bytes to a verdict,
//
//   stored bytes -> StreamDecoder (zstd, lz4 or none, as the bytes say) -> rdb::Validator
//                                                                        -> tap (optional)
//
// used by everything that reads a stored file: VerifyFile (verify.h), the `readback` gate and
// StreamingReadback, and RestoreSnapshot, whose tap writes the decoded RDB out (storage.h). The
// callers differ only in where the bytes come from; ReadThrough below is the reader for a whole
// file, StreamingReadback follows a file while it is written.
//
//   VerifySink sink(CompressionFromFileName(path));
//   for (each chunk read) if (!sink.Write(chunk)) break;   // false: the sink has failed
//   sink.Finish();                                         // end of the stored bytes
//   if (!sink.ok()) ... sink.rdb_error() / sink.io_error() ...; sink.report()
//
// Nothing is copied on the way: plain input reaches the validator in the caller's own buffer,
// compressed input through the decoder's one fixed output buffer. Errors are sticky and the first
// wins, the caller's own read errors (Fail) included: after it, Write returns false and does
// nothing, and Finish does nothing.
#ifndef FINALSNAP_VERIFY_SINK_H_
#define FINALSNAP_VERIFY_SINK_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "finalsnap/decoder.h"
#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"

namespace finalsnap {

class VerifySink {
 public:
  // Receives each piece of decoded RDB after the validator accepted it (the span is valid only
  // during the call). A failure becomes the sink's io_error as it is and stops the sink.
  using Tap = std::function<Status(std::span<const uint8_t>)>;

  // `expected` is the compression the caller believes the bytes have (a file name's, a
  // manifest's). The first four stored bytes decide (SniffCompression), however they are
  // chunked, so that a renamed file is still read for what it is; `expected` counts only for a
  // file shorter than that.
  explicit VerifySink(Compression expected, const rdb::Options& options = {}, Tap tap = nullptr);
  ~VerifySink();
  VerifySink(const VerifySink&) = delete;
  VerifySink& operator=(const VerifySink&) = delete;

  // Decodes and validates the next stored bytes, in any chunking. Returns false once the sink
  // has failed, now or before. When both fail on the same bytes, the validator's error is the
  // one kept: the bytes it rejected precede whatever the decoder choked on.
  bool Write(std::span<const uint8_t> stored);
  // The end of the stored bytes: the decoder must not be inside a frame, and the RDB must be
  // complete. Both can fail at once (a truncated .zst sets io_error and a truncated rdb_error).
  void Finish();
  // Records the caller's own failure to get the bytes ("read at 4096: Input/output error") as
  // the sink's io_error, unless the sink has already failed, and stops the sink.
  void Fail(std::string io_error);

  bool ok() const { return io_error_.empty() && !rdb_error_.has_value(); }
  // As decided by the first stored bytes; `expected` until they are seen.
  Compression compression() const { return compression_; }
  // Stored bytes written, including those of a Write that failed.
  uint64_t stored_bytes() const { return stored_bytes_; }
  // What the validator saw, up to its error if there was one: report().bytes is the RDB size.
  const rdb::Report& report() const { return validator_.report(); }
  // The first RDB error (truncated, corrupt, unsupported, checksum mismatch), if any.
  const std::optional<rdb::Diagnostic>& rdb_error() const { return rdb_error_; }
  // The first read, decompression or tap error, without a path; empty if none.
  const std::string& io_error() const { return io_error_; }

 private:
  void Start(Compression compression);
  bool Decode(std::span<const uint8_t> stored);
  void Output(std::span<const uint8_t> decoded);

  Compression compression_;
  rdb::Validator validator_;
  Tap tap_;
  std::unique_ptr<StreamDecoder> decoder_;  // made once four stored bytes are in, or at Finish
  std::array<uint8_t, 4> head_{};           // the first bytes, while fewer than four came
  size_t held_ = 0;
  StreamDecoder::Output output_;  // Output(), bound once
  uint64_t stored_bytes_ = 0;
  bool stopped_ = false;   // the validator or the tap failed inside a Decode: skip the rest
  std::string tap_error_;  // what the tap said, until Write records it
  std::optional<rdb::Diagnostic> rdb_error_;
  std::string io_error_;
  bool finished_ = false;
};

// Reads the open file `fd` from its offset to its end into `sink`, then finishes it. The reads
// run ahead of the sink on a second thread (four 1 MiB buffers, reused), so the kernel's copies
// overlap the decoding and validating of the chunk before, and memory stays flat whatever the
// size. Stops at the sink's first error. A failed read fails the sink ("read: <reason>") and its
// errno is returned; 0 otherwise.
int ReadThrough(int fd, VerifySink& sink);

}  // namespace finalsnap

#endif  // FINALSNAP_VERIFY_SINK_H_
