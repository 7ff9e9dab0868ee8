// Micro-benchmark of the replication framing parser (engine/capture/repl_framing.h): payload throughput
// of ReplFraming::Feed over socket-sized buffers, in both framings.
//
// Each case parses a preamble once, then feeds the same buffer of payload again and again, as the
// capture pipeline does with its pooled socket buffers. The rate is payload bytes per second of
// Feed() alone; the pipeline's hand-on of (buffer, offset, size) ranges is not included, since it
// is a few words per buffer. Cases:
//   BM_FramingLength     `$<len>` framing: Feed only counts bytes down.
//   BM_FramingMark       `$EOF:<mark>` framing over random bytes (what an LZF-compressed RDB looks
//                        like): the Horspool search skips ~40 bytes per comparison.
//   BM_FramingMarkHex    the same over lowercase hex text, the mark's own alphabet: the worst
//                        realistic payload for the search, since every window ends in a mark
//                        byte and the skips are shorter.
// The counter copied_bytes_per_byte is what the parser copied into its private mark window (the
// bytes it keeps to find a mark split across buffers; never output) per payload byte fed.
//
//   finalsnap_bench --benchmark_filter=Framing
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "repl_framing.h"

namespace {

using finalsnap::detail::ReplFraming;

constexpr std::string_view kMark = "4e2c1bd0f7a95e36d8b0a1c2e3f405162738495a";

enum class Payload { kRandom, kHexText };

// Deterministic payload bytes (xorshift), so that runs are comparable.
std::vector<uint8_t> MakePayload(size_t size, Payload kind) {
  std::vector<uint8_t> b(size);
  uint64_t x = 0x9e3779b97f4a7c15;
  for (uint8_t& byte : b) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    byte = kind == Payload::kRandom ? static_cast<uint8_t>(x >> 24)
                                    : static_cast<uint8_t>("0123456789abcdef"[(x >> 24) & 15]);
  }
  return b;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void RunFeeds(benchmark::State& state, const std::string& preamble, Payload kind) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::vector<uint8_t> buffer = MakePayload(size, kind);
  ReplFraming framing;
  if (framing.Feed(AsBytes(preamble)).status != ReplFraming::Status::kNeedMore) {
    state.SkipWithError(("the preamble did not parse: " + framing.error()).c_str());
    return;
  }
  uint64_t fed = 0;
  for (auto _ : state) {
    const ReplFraming::FeedResult r = framing.Feed(buffer);
    benchmark::DoNotOptimize(r);
    if (r.status != ReplFraming::Status::kNeedMore || r.payload_size != size) {
      state.SkipWithError("the payload ended or was not taken whole");
      return;
    }
    fed += size;
  }
  state.SetBytesProcessed(static_cast<int64_t>(fed));
  state.counters["copied_bytes_per_byte"] =
      fed == 0 ? 0.0 : static_cast<double>(framing.copied()) / static_cast<double>(fed);
}

void BM_FramingLength(benchmark::State& state) {
  // The largest length accepted, so that the payload never ends during the run.
  RunFeeds(state, "$" + std::to_string(ReplFraming::kMaxLength) + "\r\n", Payload::kRandom);
}

void BM_FramingMark(benchmark::State& state) {
  RunFeeds(state, "$EOF:" + std::string(kMark) + "\r\n", Payload::kRandom);
}

void BM_FramingMarkHex(benchmark::State& state) {
  RunFeeds(state, "$EOF:" + std::string(kMark) + "\r\n", Payload::kHexText);
}

// 256 KiB is the pipeline's socket buffer; the smaller sizes show the per-Feed overhead.
void Sizes(benchmark::internal::Benchmark* b) {
  for (const int64_t size : {int64_t{4} << 10, int64_t{64} << 10, int64_t{256} << 10}) b->Arg(size);
}

BENCHMARK(BM_FramingLength)->Apply(Sizes);
BENCHMARK(BM_FramingMark)->Apply(Sizes);
BENCHMARK(BM_FramingMarkHex)->Apply(Sizes);

}  // namespace
