// The chunkings both fuzz targets feed their parser with: whole, one byte at a time, or sizes
// drawn from a tiny LCG seeded by an input byte, so every primitive and every mark is cut
// everywhere and a crash replays exactly from its saved input.
#ifndef FINALSNAP_TESTS_FUZZ_CHUNKER_H_
#define FINALSNAP_TESTS_FUZZ_CHUNKER_H_

#include <cstddef>
#include <cstdint>

namespace finalsnap::fuzz {

enum class Chunking { kWhole, kOneByte, kRandom };

inline const char* ChunkingName(Chunking c) {
  switch (c) {
    case Chunking::kWhole:
      return "whole";
    case Chunking::kOneByte:
      return "1-byte";
    case Chunking::kRandom:
      return "random";
  }
  return "?";
}

// Chunk sizes for one feeding, from a tiny LCG (Numerical Recipes constants): what matters is a
// reproducible spread of sizes from one input byte, not statistical quality.
class Chunker {
 public:
  Chunker(Chunking chunking, uint8_t seed, size_t length)
      : chunking_(chunking), state_(seed * 2654435761u ^ static_cast<uint32_t>(length)) {}

  size_t Next(size_t left) {
    switch (chunking_) {
      case Chunking::kWhole:
        return left;
      case Chunking::kOneByte:
        return left == 0 ? 0 : 1;
      case Chunking::kRandom: {
        state_ = state_ * 1664525u + 1013904223u;
        const uint32_t r = state_ >> 8;
        // Mostly 0..16 bytes, so that every primitive, line and mark is cut everywhere and some
        // Feeds are empty; one in four up to 4 KiB, so that long runs are read in place too.
        const size_t size = (state_ & 0xc0000000u) == 0 ? r % 4097 : r % 17;
        return size < left ? size : left;
      }
    }
    return left;
  }

 private:
  Chunking chunking_;
  uint32_t state_;
};

}  // namespace finalsnap::fuzz

#endif  // FINALSNAP_TESTS_FUZZ_CHUNKER_H_
