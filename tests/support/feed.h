// Feeds bytes to an rdb::Validator whole, one byte at a time, or in random pieces, and returns
// what it concluded. Every validator test runs its input through all three chunkings.
#ifndef FINALSNAP_TESTS_SUPPORT_FEED_H_
#define FINALSNAP_TESTS_SUPPORT_FEED_H_

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "finalsnap/rdb/validator.h"

namespace finalsnap::testing {

enum class Chunking { kWhole, kOneByte, kRandom };

inline constexpr Chunking kAllChunkings[] = {Chunking::kWhole, Chunking::kOneByte,
                                             Chunking::kRandom};

inline std::string ChunkingName(Chunking c) {
  return c == Chunking::kWhole ? "whole" : c == Chunking::kOneByte ? "1-byte" : "random";
}

struct Outcome {
  rdb::Progress progress = rdb::Progress::kNeedMore;
  rdb::Report report;
  rdb::Diagnostic diagnostic;
};

inline Outcome Validate(std::span<const uint8_t> data, Chunking chunking, uint32_t seed = 1,
                        rdb::Options options = {}) {
  rdb::Validator v(options);
  std::mt19937 rng(seed);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = data.size() - pos;
    if (chunking == Chunking::kOneByte) n = 1;
    if (chunking == Chunking::kRandom) {
      // Mostly small pieces (to split every primitive), sometimes large ones.
      n = std::min(n, rng() % 8 == 0 ? size_t{1} + rng() % 65536 : size_t{1} + rng() % 17);
    }
    if (v.Feed(data.subspan(pos, n)) == rdb::Progress::kError) break;
    pos += n;
  }
  Outcome out;
  out.progress = v.Finish();
  out.report = v.report();
  if (v.failed()) out.diagnostic = v.diagnostic();
  return out;
}

inline Outcome Validate(const std::vector<uint8_t>& data, Chunking chunking, uint32_t seed = 1,
                        rdb::Options options = {}) {
  return Validate(std::span<const uint8_t>(data), chunking, seed, options);
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_FEED_H_
