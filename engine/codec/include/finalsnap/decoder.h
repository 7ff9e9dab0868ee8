// Streaming decompression of stored snapshots: one interface over zstd, lz4 and plain files.
//
//   auto decoder = StreamDecoder::Create(SniffCompression(first_bytes));
//   for (each chunk read) {
//     Status s = decoder->Decode(chunk, [&](std::span<const uint8_t> out) { validator.Feed(out);
//     }); if (!s.ok()) ...;
//   }
//   Status s = decoder->Finish();   // fails if the input ended inside a frame
//
// Decoded bytes are handed out in bounded chunks from one fixed output buffer, so decoding a file
// of any size takes a constant amount of memory (plus the codec's window). Both codecs accept
// concatenated frames, as `zstd -d` and `lz4 -d` do. Plain input (kNone) is passed through without
// being copied.
//
// This header does not include zstd.h or lz4frame.h: the codec state lives behind a pimpl.
#ifndef FINALSNAP_DECODER_H_
#define FINALSNAP_DECODER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "finalsnap/status.h"

namespace finalsnap {

enum class Compression { kNone, kZstd, kLz4 };

// "none", "zstd" or "lz4".
std::string_view CompressionName(Compression compression);
// The inverse of CompressionName; nullopt for any other name.
std::optional<Compression> CompressionFromName(std::string_view name);

// Recognises a zstd frame (magic 28 B5 2F FD) or an lz4 frame (magic 04 22 4D 18) from the first
// bytes of a file. Anything else, including fewer than four bytes, is kNone.
Compression SniffCompression(std::span<const uint8_t> first_bytes);

class StreamDecoder {
 public:
  // Receives decoded bytes. The span is valid only during the call.
  using Output = std::function<void(std::span<const uint8_t>)>;

  static std::unique_ptr<StreamDecoder> Create(Compression compression);
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  // Decodes all of `in`, calling `out` zero or more times with the bytes it yields. Errors are
  // sticky: after the first one, every call returns it again.
  Status Decode(std::span<const uint8_t> in, const Output& out);
  // Declares the end of the input. Fails if it ended inside a frame (a truncated .zst or .lz4)
  // or if there was no frame at all.
  Status Finish();

  Compression compression() const;
  // Compressed bytes consumed and decoded bytes produced so far.
  uint64_t bytes_in() const;
  uint64_t bytes_out() const;

 private:
  class Impl;
  explicit StreamDecoder(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace finalsnap

#endif  // FINALSNAP_DECODER_H_
