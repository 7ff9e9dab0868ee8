// Micro-benchmark of the streaming RDB validator: throughput (bytes/s and keys/s) over each RDB
// fixture in ../shared/fixtures/rdb, fed in chunks of 4 KiB, 64 KiB and 1 MiB, in the default
// mode and in deep mode (Options::deep, which also walks the inside of LZF strings and is what
// `finalsnap verify` uses for files without a checksum).
//
// The chunk sizes bracket what the validator sees in use: socket reads on the capture path are a
// few KiB to 64 KiB, and `finalsnap verify` reads files in 1 MiB chunks. Small chunks cost more
// because every chunk boundary may park a partial primitive in the carry buffer. Each file is read
// from disk once and the timed loop only runs the validator over memory, so disk speed does not
// enter the rates. A fixture that does not validate is reported as an error, not as a rate.
//
//   finalsnap_bench --benchmark_filter=Validator
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "finalsnap/rdb/validator.h"

#ifndef FINALSNAP_SOURCE_DIR
#error "FINALSNAP_SOURCE_DIR must be defined (CMake defines it as the source directory)"
#endif

namespace {

namespace fs = std::filesystem;
using finalsnap::rdb::Progress;
using finalsnap::rdb::Validator;

const fs::path kFixtureDir = fs::path(FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb");

// The fixture contents, read on first use and kept for the rest of the run, so that every
// benchmark case of one file shares a single copy and the filter can skip files cheaply.
const std::vector<uint8_t>& Contents(const fs::path& path) {
  static std::map<fs::path, std::vector<uint8_t>> cache;
  auto it = cache.find(path);
  if (it == cache.end()) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    it = cache.emplace(path, std::move(bytes)).first;
  }
  return it->second;
}

// Runs one validation of `data` in `chunk`-sized pieces, as a caller streaming it would.
Progress Validate(Validator& validator, std::span<const uint8_t> data, size_t chunk) {
  for (size_t at = 0; at < data.size(); at += chunk) {
    const Progress p = validator.Feed(data.subspan(at, std::min(chunk, data.size() - at)));
    if (p == Progress::kError) return p;
  }
  return validator.Finish();
}

void BM_Validator(benchmark::State& state, const fs::path& path) {
  const std::vector<uint8_t>& data = Contents(path);
  const auto chunk = static_cast<size_t>(state.range(0));
  finalsnap::rdb::Options options;
  options.deep = state.range(1) != 0;
  if (data.empty()) {
    state.SkipWithError(("cannot read " + path.string() + " (or it is empty)").c_str());
    return;
  }

  // One untimed run proves that the file validates and gives the key count for the keys/s rate.
  uint64_t keys = 0;
  {
    Validator validator(options);
    if (Validate(validator, data, chunk) != Progress::kDone) {
      state.SkipWithError(
          ("the validator did not reach kDone: " + validator.diagnostic().ToString()).c_str());
      return;
    }
    keys = validator.report().TotalKeys();
  }

  for (auto _ : state) {
    Validator validator(options);
    const Progress p = Validate(validator, data, chunk);
    // The verdict is deterministic, so this only trips if something is badly wrong; checking it
    // keeps the loop honest about what it measured.
    if (p != Progress::kDone) {
      state.SkipWithError("the validator did not reach kDone in the timed loop");
      break;
    }
    benchmark::DoNotOptimize(validator.report().computed_crc);
  }

  const auto iterations = static_cast<int64_t>(state.iterations());
  state.SetBytesProcessed(iterations * static_cast<int64_t>(data.size()));
  state.counters["keys"] =
      benchmark::Counter(static_cast<double>(keys) * iterations, benchmark::Counter::kIsRate);
  state.counters["file_MiB"] = static_cast<double>(data.size()) / (1 << 20);
}

// Registers one benchmark per fixture file, at static initialisation because the benchmark main()
// comes from benchmark_main. Without any fixture a single failing case says where it looked, so a
// missing checkout of ../shared does not pass silently.
bool RegisterFixtureBenchmarks() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kFixtureDir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".rdb")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    benchmark::RegisterBenchmark("BM_Validator/no_fixtures", [](benchmark::State& state) {
      state.SkipWithError(("no *.rdb fixtures in " + kFixtureDir.string()).c_str());
    });
    return false;
  }
  for (const fs::path& file : files) {
    benchmark::RegisterBenchmark(("BM_Validator/" + file.stem().string()).c_str(),
                                 [file](benchmark::State& state) { BM_Validator(state, file); })
        ->ArgNames({"chunk", "deep"})
        ->ArgsProduct({{4 << 10, 64 << 10, 1 << 20}, {0, 1}})
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}

[[maybe_unused]] const bool registered = RegisterFixtureBenchmarks();

}  // namespace
