// StreamDecoder: one decode loop over a per-codec step function.
//
// The loop (StreamDecoder::Impl::Decode) owns the only output buffer and does all the
// bookkeeping: offsets for error messages, frame tracking for Finish, sticky errors. A codec
// (detail::Codec) only knows how to advance its library's state by one call. This keeps zstd and
// lz4 from each growing their own buffering and their own idea of "truncated".
#include "finalsnap/decoder.h"

#include <lz4frame.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <utility>

namespace finalsnap {
namespace detail {

// The outcome of one call into a codec library.
struct CodecStep {
  size_t consumed = 0;      // input bytes taken
  size_t produced = 0;      // output bytes written
  bool frame_done = false;  // a frame ended with this call and all of its output was flushed
  std::string error;        // the library's error text; empty on success
};

class Codec {
 public:
  virtual ~Codec() = default;
  // The prefix of every error message: "zstd" or "lz4".
  virtual std::string_view name() const = 0;
  // The output buffer size that lets one Step flush at least one whole block.
  virtual size_t output_size() const = 0;
  // Decodes some of `in` into `out`.
  virtual CodecStep Step(std::span<const uint8_t> in, std::span<uint8_t> out) = 0;
};

namespace {

// The largest zstd window we decode: 2^23 = 8 MiB. finalsnap's encoder (engine/capture/pipeline.cc)
// sets only the level, 1 to 19, and zstd's windowLog for those levels is 19 (level 1) to 23
// (levels 17-19); so is the zstd CLI's, up to -19. The frame header is untrusted input: without
// this cap a 7 KB file could declare a 128 MiB window (the library's default limit) and make the
// decoder allocate and touch all of it.
constexpr int kZstdWindowLogMax = 23;

class ZstdCodec final : public Codec {
 public:
  ZstdCodec() : dctx_(ZSTD_createDCtx()) {
    if (dctx_ == nullptr) throw std::bad_alloc();
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kZstdWindowLogMax))) {
      ZSTD_freeDCtx(dctx_);
      throw std::bad_alloc();
    }
  }
  ~ZstdCodec() override { ZSTD_freeDCtx(dctx_); }
  ZstdCodec(const ZstdCodec&) = delete;
  ZstdCodec& operator=(const ZstdCodec&) = delete;

  std::string_view name() const override { return "zstd"; }
  size_t output_size() const override { return ZSTD_DStreamOutSize(); }

  CodecStep Step(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    const size_t ret = ZSTD_decompressStream(dctx_, &output, &input);
    CodecStep step{input.pos, output.pos, false, {}};
    if (ZSTD_isError(ret) && ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge) {
      step.error =
          "the frame needs a window larger than 8 MiB, the most finalsnap decodes "
          "(it writes frames with windows of at most 8 MiB, as zstd does up to level 19)";
    } else if (ZSTD_isError(ret)) {
      step.error = ZSTD_getErrorName(ret);
    } else {
      // 0 means a frame is fully decoded and flushed; the next call starts a new frame, which is
      // how concatenated frames are read.
      step.frame_done = ret == 0;
    }
    return step;
  }

 private:
  ZSTD_DCtx* dctx_;
};

class Lz4Codec final : public Codec {
 public:
  Lz4Codec() {
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx_, LZ4F_VERSION))) {
      throw std::bad_alloc();
    }
  }
  ~Lz4Codec() override { LZ4F_freeDecompressionContext(dctx_); }
  Lz4Codec(const Lz4Codec&) = delete;
  Lz4Codec& operator=(const Lz4Codec&) = delete;

  std::string_view name() const override { return "lz4"; }
  // lz4 frames have blocks of up to 4 MiB; LZ4F decodes a block into its own buffer when the
  // destination is smaller, so a modest output buffer only costs a memcpy, not correctness.
  // That 4 MiB is also the format's own maximum (and what the encoder uses, LZ4F_max4MB), so a
  // frame header cannot make LZ4F allocate more than about 4 MiB + 128 KiB: lz4 needs no cap
  // of ours.
  size_t output_size() const override { return size_t{128} << 10; }

  CodecStep Step(std::span<const uint8_t> in, std::span<uint8_t> out) override {
    size_t dst_size = out.size();
    size_t src_size = in.size();
    const size_t ret = LZ4F_decompress(dctx_, out.data(), &dst_size, in.data(), &src_size, nullptr);
    CodecStep step{src_size, dst_size, false, {}};
    if (LZ4F_isError(ret)) {
      step.error = LZ4F_getErrorName(ret);
      // After an error the context is in an undefined state; reset it so that the destructor and
      // any (refused) later call see a clean context.
      LZ4F_resetDecompressionContext(dctx_);
    } else {
      // As with zstd, 0 means the frame ended and was flushed; LZ4F resets itself for the next.
      step.frame_done = ret == 0;
    }
    return step;
  }

 private:
  LZ4F_dctx* dctx_ = nullptr;
};

}  // namespace
}  // namespace detail

std::string_view CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "none";
    case Compression::kZstd:
      return "zstd";
    case Compression::kLz4:
      return "lz4";
  }
  return "unknown";
}

std::optional<Compression> CompressionFromName(std::string_view name) {
  for (Compression c : {Compression::kNone, Compression::kZstd, Compression::kLz4}) {
    if (name == CompressionName(c)) return c;
  }
  return std::nullopt;
}

Compression SniffCompression(std::span<const uint8_t> first_bytes) {
  static constexpr uint8_t kZstdMagic[4] = {0x28, 0xb5, 0x2f, 0xfd};
  static constexpr uint8_t kLz4Magic[4] = {0x04, 0x22, 0x4d, 0x18};
  if (first_bytes.size() < 4) return Compression::kNone;
  const auto head = first_bytes.first<4>();
  if (std::equal(head.begin(), head.end(), kZstdMagic)) return Compression::kZstd;
  if (std::equal(head.begin(), head.end(), kLz4Magic)) return Compression::kLz4;
  return Compression::kNone;
}

class StreamDecoder::Impl {
 public:
  Impl(Compression compression, std::unique_ptr<detail::Codec> codec)
      : compression_(compression), codec_(std::move(codec)) {
    if (codec_) {
      buffer_size_ = codec_->output_size();
      buffer_ = std::make_unique_for_overwrite<uint8_t[]>(buffer_size_);
    }
  }

  Status Decode(std::span<const uint8_t> in, const Output& out) {
    if (!error_.ok()) return error_;
    if (finished_) return Fail("Decode called after Finish");
    if (!codec_) {
      // Plain input: hand the caller's bytes straight on.
      bytes_in_ += in.size();
      bytes_out_ += in.size();
      if (!in.empty()) out(in);
      return Status::Ok();
    }
    const std::span<uint8_t> buffer(buffer_.get(), buffer_size_);
    while (true) {
      detail::CodecStep step = codec_->Step(in, buffer);
      if (!step.error.empty()) {
        return Fail(step.error + " at compressed offset " +
                    std::to_string(bytes_in_ + step.consumed));
      }
      in = in.subspan(step.consumed);
      bytes_in_ += step.consumed;
      if (step.frame_done) {
        in_frame_ = false;
        ++frames_;
      } else if (step.consumed > 0) {
        in_frame_ = true;
      }
      if (step.produced > 0) {
        bytes_out_ += step.produced;
        out(buffer.first(step.produced));
      }
      // A full output buffer may mean the codec holds more decoded bytes: call again even when
      // the input is used up. Otherwise everything available has been flushed.
      if (in.empty() && step.produced < buffer.size()) break;
      if (step.consumed == 0 && step.produced == 0 && !step.frame_done) {
        return Fail("no progress at compressed offset " + std::to_string(bytes_in_));
      }
    }
    return Status::Ok();
  }

  Status Finish() {
    if (!error_.ok()) return error_;
    finished_ = true;
    if (!codec_) return Status::Ok();
    if (in_frame_) {
      return Fail("frame truncated: the input ended inside a frame after " +
                  std::to_string(bytes_in_) + " compressed bytes");
    }
    if (frames_ == 0) return Fail("no frame: the input is empty");
    return Status::Ok();
  }

  Compression compression() const { return compression_; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  Status Fail(const std::string& what) {
    error_ = Status::Error(std::string(codec_ ? codec_->name() : "none") + ": " + what);
    return error_;
  }

  Compression compression_;
  std::unique_ptr<detail::Codec> codec_;  // null for kNone
  std::unique_ptr<uint8_t[]> buffer_;
  size_t buffer_size_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t frames_ = 0;    // frames completed, skippable ones included
  bool in_frame_ = false;  // input has been consumed since the last completed frame
  bool finished_ = false;
  Status error_;  // the first error, returned by every later call
};

std::unique_ptr<StreamDecoder> StreamDecoder::Create(Compression compression) {
  std::unique_ptr<detail::Codec> codec;
  switch (compression) {
    case Compression::kNone:
      break;
    case Compression::kZstd:
      codec = std::make_unique<detail::ZstdCodec>();
      break;
    case Compression::kLz4:
      codec = std::make_unique<detail::Lz4Codec>();
      break;
  }
  return std::unique_ptr<StreamDecoder>(
      new StreamDecoder(std::make_unique<Impl>(compression, std::move(codec))));
}

StreamDecoder::StreamDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamDecoder::~StreamDecoder() = default;

Status StreamDecoder::Decode(std::span<const uint8_t> in, const Output& out) {
  return impl_->Decode(in, out);
}
Status StreamDecoder::Finish() { return impl_->Finish(); }
Compression StreamDecoder::compression() const { return impl_->compression(); }
uint64_t StreamDecoder::bytes_in() const { return impl_->bytes_in(); }
uint64_t StreamDecoder::bytes_out() const { return impl_->bytes_out(); }

}  // namespace finalsnap
