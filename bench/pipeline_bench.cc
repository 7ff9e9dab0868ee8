// Micro-benchmark of the capture pipeline's compression stage (engine/capture/pipeline.h): an RDB pushed
// through Pipeline in pooled 256 KiB buffers, as the replication capture pushes socket reads —
// validator tap on the calling thread, compressor thread writing zstd -1 / lz4 / plain frames to
// /dev/null — until Finish() has flushed the frame. CPU cost only: no network, no disk.
//
// The RDB is synthetic (tests/support/rdb_builder.h) but shaped like a cache: 200k string keys
// with text values that compress about 3:1, and some hashes, in ~64 MB. Counters:
//   bytes_per_second    RDB bytes through the whole stage
//   copied_per_byte     payload bytes the pipeline copied per byte moved: buffers travel by
//                       reference, so what is counted is the bench's own fill of each pooled
//                       buffer (standing in for the socket read) — the codecs' internal windows
//                       are theirs, not the pipeline's
//   ratio               RDB bytes / stored bytes
//
//   finalsnap_pipeline_bench
//   finalsnap_pipeline_bench --write_rdb=FILE   writes the RDB it uses and exits, so that a
//                                               script (bench/guard) can time the zstd CLI on
//                                               the very same bytes
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string_view>
#include <string>
#include <vector>

#include "async.h"
#include "loop.h"
#include "pipeline.h"
#include "support/rdb_builder.h"

namespace {

using finalsnap::Compression;
using finalsnap::detail::BufferPool;
using finalsnap::detail::Loop;
using finalsnap::detail::Pipeline;
using finalsnap::detail::PipelineResult;
using finalsnap::detail::Task;

const std::vector<uint8_t>& CacheLikeRdb() {
  static const std::vector<uint8_t> rdb = [] {
    finalsnap::testing::RdbBuilder b("REDIS", 10);
    b.Aux("redis-ver", "7.0.15").SelectDb(0);
    std::string value;
    for (int i = 0; i < 200000; ++i) {
      value = "user:" + std::to_string(i) + ":profile{name=\"n" + std::to_string(i * 7919 % 100003) +
              "\",plan=\"" + (i % 3 ? "free" : "pro") + "\",visits=" + std::to_string(i % 977) + "}";
      while (value.size() < 300) value += " pad " + std::to_string(i % 13);
      b.Key(0, "key:" + std::to_string(i)).String(value);
    }
    for (int h = 0; h < 2000; ++h) {
      b.Key(4, "hash:" + std::to_string(h)).Length(20);
      for (int f = 0; f < 20; ++f) b.String("field" + std::to_string(f)).String(value.substr(f, 40));
    }
    return b.Finish();
  }();
  return rdb;
}

Task<PipelineResult> Drain(Pipeline& p) { co_return co_await p.Finish(); }

void BM_Pipeline(benchmark::State& state) {
  const auto codec = static_cast<Compression>(state.range(0));
  const std::vector<uint8_t>& rdb = CacheLikeRdb();
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  uint64_t stored = 0;
  for (auto _ : state) {
    Loop loop;
    BufferPool pool(16, 256 * 1024);
    PipelineResult result;
    {
      Pipeline pipeline(loop, pool, {codec, codec == Compression::kZstd ? 1 : 0}, devnull);
      size_t pos = 0;
      while (pos < rdb.size()) {
        int id = pool.Acquire();
        while (id < 0) {  // every buffer in flight: wait for the compressor, as the reader does
          uv_run(loop.get(), UV_RUN_ONCE);
          id = pool.Acquire();
        }
        const size_t n = std::min(pool.size(), rdb.size() - pos);
        std::memcpy(pool.data(id), rdb.data() + pos, n);  // the socket read's stand-in
        pipeline.Push(id, {pool.data(id), n});
        pool.Unref(id);
        pos += n;
      }
      result = finalsnap::detail::RunToCompletion(loop, Drain(pipeline));
    }
    if (!result.status.ok() || !result.rdb_complete) {
      state.SkipWithError(result.status.message().c_str());
      break;
    }
    stored = result.stored_bytes;
  }
  ::close(devnull);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * rdb.size()));
  state.counters["ratio"] = static_cast<double>(rdb.size()) / static_cast<double>(stored);
}

BENCHMARK(BM_Pipeline)
    ->ArgName("codec")
    ->Arg(static_cast<int>(Compression::kZstd))
    ->Arg(static_cast<int>(Compression::kLz4))
    ->Arg(static_cast<int>(Compression::kNone))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  constexpr std::string_view kWrite = "--write_rdb=";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.rfind(kWrite, 0) != 0) continue;
    const std::vector<uint8_t>& rdb = CacheLikeRdb();
    std::ofstream out(std::string(arg.substr(kWrite.size())), std::ios::binary);
    out.write(reinterpret_cast<const char*>(rdb.data()), static_cast<std::streamsize>(rdb.size()));
    return out.good() ? 0 : 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
