// Micro-benchmark of Redis's CRC-64 (Jones): finalsnap::rdb::Crc64, which runs on Intel ISA-L,
// against a naive bytewise table implementation, over buffers from 4 KiB to 16 MiB.
//
// The baseline is the textbook algorithm, one table lookup per byte, so the ratio of the two rates
// is what ISA-L buys the capture and verify paths, which checksum every byte of every snapshot.
// Both compute the same function; each benchmark checks that once, outside the timed loop, and
// refuses to report a rate for a wrong answer.
//
//   finalsnap_bench --benchmark_filter=Crc64
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/rdb/crc64.h"

namespace {

// CRC-64/Jones as Redis uses it: reflected polynomial, init 0, no final xor.
constexpr uint64_t kJonesReflectedPoly = 0x95ac9329ac4bc9b5;
constexpr uint64_t kJonesCheck = 0xe9c6d914c4b8d9ca;  // of "123456789"

constexpr std::array<uint64_t, 256> MakeNaiveTable() {
  std::array<uint64_t, 256> table{};
  for (uint64_t i = 0; i < 256; ++i) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ kJonesReflectedPoly : crc >> 1;
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint64_t, 256> kNaiveTable = MakeNaiveTable();

// One table lookup per byte: the baseline every faster CRC is measured against.
uint64_t NaiveCrc64(uint64_t crc, std::span<const uint8_t> data) {
  for (const uint8_t byte : data) crc = kNaiveTable[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return crc;
}

constexpr size_t kMaxSize = size_t{16} << 20;

// Pseudo-random bytes, made once and shared by every case: incompressible, like an LZF-compressed
// RDB payload, and deterministic, so runs are comparable.
const std::vector<uint8_t>& Buffer() {
  static const std::vector<uint8_t> buffer = [] {
    std::vector<uint8_t> b(kMaxSize);
    uint64_t x = 0x9e3779b97f4a7c15;
    for (uint8_t& byte : b) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      byte = static_cast<uint8_t>(x >> 24);
    }
    return b;
  }();
  return buffer;
}

// Checks, outside the timed loop, that both implementations give the check value and agree on
// the benchmark's own buffer. Returns false after marking the benchmark skipped.
bool CheckAgreement(benchmark::State& state, std::span<const uint8_t> data) {
  constexpr std::string_view kCheckInput = "123456789";
  const std::span<const uint8_t> check(reinterpret_cast<const uint8_t*>(kCheckInput.data()),
                                       kCheckInput.size());
  if (finalsnap::rdb::Crc64(0, check) != kJonesCheck) {
    state.SkipWithError("finalsnap::rdb::Crc64 gives the wrong check value for \"123456789\"");
    return false;
  }
  if (NaiveCrc64(0, check) != kJonesCheck) {
    state.SkipWithError("the naive CRC-64 gives the wrong check value for \"123456789\"");
    return false;
  }
  if (finalsnap::rdb::Crc64(0, data) != NaiveCrc64(0, data)) {
    state.SkipWithError("finalsnap::rdb::Crc64 and the naive CRC-64 disagree on the buffer");
    return false;
  }
  return true;
}

template <uint64_t (*kCrc)(uint64_t, std::span<const uint8_t>)>
void BM_Crc64(benchmark::State& state) {
  const std::span<const uint8_t> data(Buffer().data(), static_cast<size_t>(state.range(0)));
  if (!CheckAgreement(state, data)) return;
  for (auto _ : state) {
    uint64_t crc = kCrc(0, data);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (const int64_t size :
       {int64_t{4} << 10, int64_t{64} << 10, int64_t{1} << 20, int64_t{16} << 20}) {
    b->Arg(size);
  }
}

// Named so that the two rates sort side by side in the output.
BENCHMARK(BM_Crc64<finalsnap::rdb::Crc64>)->Name("BM_Crc64/isal")->Apply(Sizes);
BENCHMARK(BM_Crc64<NaiveCrc64>)->Name("BM_Crc64/naive_bytewise")->Apply(Sizes);

}  // namespace
