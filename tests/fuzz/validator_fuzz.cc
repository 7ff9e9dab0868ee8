// libFuzzer target for the streaming RDB validator (finalsnap/rdb/validator.h).
//
// Input layout:  [mode] [seed] [stream bytes ...]
//   mode % 3 == 0  feed the stream whole
//   mode % 3 == 1  feed it one byte at a time
//   mode % 3 == 2  feed it in pseudo-random pieces (0 to 4096 bytes, mostly tiny) drawn from a
//                  small LCG seeded from `seed` and the stream length
//   mode / 3 odd   validate with Options::deep (walk the inside of LZF strings); a fuzzed stream
//                  almost never has a matching CRC-64, so this is the only way to reach the walk
// A plain .rdb file is therefore not a useful seed by itself: prefix two bytes (README.md).
//
// Crashes in the validator are found by the sanitizers. Wrong answers are found by invariants
// that hold for every input, valid or not; a violated one prints what it was and traps:
//   - after Finish(), exactly one of failed() and done() is true, and Finish()'s result agrees;
//   - each Feed() result agrees with done()/failed(), and a Feed that did not fail consumed all of
//     its bytes (offset() equals the bytes fed);
//   - a failure has a non-empty message and an offset no larger than the bytes fed;
//   - errors are sticky: further Feed() and Finish() calls return kError and keep the diagnostic;
//     bytes after kDone are an error;
//   - a success consumed the whole stream, has a final checksum verdict (match, disabled or
//     absent), and its computed CRC-64 is the CRC-64 of the bytes before the 8-byte trailer;
//   - the chunking does not matter: whole and chunked feeding give the same verdict, error class,
//     offset, state, key, type and database, and on success the same report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "chunker.h"
#include "finalsnap/rdb/crc64.h"
#include "finalsnap/rdb/validator.h"

namespace {

using finalsnap::rdb::ChecksumVerdict;
using finalsnap::rdb::Diagnostic;
using finalsnap::rdb::Progress;
using finalsnap::rdb::Report;
using finalsnap::rdb::Validator;

// libFuzzer saves the input that trapped; the message says which invariant failed and under which
// chunking (each caller has a `mode_name` in scope naming it).
#define FUZZ_CHECK(cond, what)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "validator_fuzz: invariant violated (%s): %s [%s]\n", what, #cond, \
                   mode_name);                                                                \
      __builtin_trap();                                                                       \
    }                                                                                         \
  } while (0)

using finalsnap::fuzz::Chunker;
using finalsnap::fuzz::Chunking;
using finalsnap::fuzz::ChunkingName;

struct Outcome {
  bool done = false;
  bool failed = false;
  Diagnostic diagnostic;
  Report report;
};

// Feeds `stream` to a fresh validator in the given chunking, checks the invariants of a single
// run, and returns the verdict for comparison across chunkings.
Outcome Run(std::span<const uint8_t> stream, const finalsnap::rdb::Options& options,
            Chunking chunking, uint8_t seed) {
  const char* mode_name = ChunkingName(chunking);
  Validator v(options);
  Chunker chunker(chunking, seed, stream.size());
  uint64_t fed = 0;
  bool errored = false;
  // Bounded so that a chunker returning 0 forever cannot hang the fuzzer; empty Feeds are only a
  // small share of the random chunking.
  size_t calls_left = 4 * stream.size() + 16;
  while (fed < stream.size() && calls_left-- > 0) {
    const size_t n = chunker.Next(stream.size() - fed);
    const Progress p = v.Feed(stream.subspan(fed, n));
    fed += n;
    FUZZ_CHECK((p == Progress::kError) == v.failed(), "Feed result agrees with failed()");
    FUZZ_CHECK((p == Progress::kDone) == v.done(), "Feed result agrees with done()");
    if (p == Progress::kError) {
      errored = true;
      break;
    }
    FUZZ_CHECK(v.offset() == fed, "a Feed that did not fail consumes all of its bytes");
  }
  if (!errored && fed < stream.size()) {
    // The call budget ran out on empty chunks: hand over the rest in one piece.
    const Progress p = v.Feed(stream.subspan(fed));
    fed = stream.size();
    FUZZ_CHECK((p == Progress::kError) == v.failed(), "Feed result agrees with failed()");
  }

  const Progress finish = v.Finish();
  FUZZ_CHECK(v.failed() != v.done(), "exactly one of failed() and done() after Finish");
  FUZZ_CHECK((finish == Progress::kDone) == v.done(), "Finish result agrees with done()");
  FUZZ_CHECK((finish == Progress::kError) == v.failed(), "Finish result agrees with failed()");

  Outcome out;
  out.done = v.done();
  out.failed = v.failed();
  out.report = v.report();

  if (v.failed()) {
    const Diagnostic d = v.diagnostic();
    out.diagnostic = d;
    FUZZ_CHECK(d.offset <= fed, "error offset within the bytes fed");
    FUZZ_CHECK(!d.message.empty(), "error message not empty");
    FUZZ_CHECK(static_cast<int>(d.code) != 0, "error code set");

    // Sticky: neither more bytes, nor no bytes, nor another Finish clears or changes the error.
    static constexpr uint8_t kMore[] = {0xff, 0x00, 'R', 'E', 'D', 'I', 'S'};
    FUZZ_CHECK(v.Feed(kMore) == Progress::kError, "sticky: Feed after an error");
    FUZZ_CHECK(v.Feed({}) == Progress::kError, "sticky: empty Feed after an error");
    FUZZ_CHECK(v.Finish() == Progress::kError, "sticky: Finish after an error");
    FUZZ_CHECK(v.failed() && !v.done(), "sticky: still failed");
    const Diagnostic& again = v.diagnostic();
    FUZZ_CHECK(again.code == d.code && again.offset == d.offset && again.message == d.message &&
                   again.state == d.state,
               "sticky: the first diagnostic is kept");
    return out;
  }

  // Success.
  const Report& r = v.report();
  FUZZ_CHECK(fed == stream.size(), "success consumed every byte fed");
  FUZZ_CHECK(r.bytes == stream.size(), "report.bytes is the stream length on success");
  FUZZ_CHECK(r.checksum == ChecksumVerdict::kMatch || r.checksum == ChecksumVerdict::kDisabled ||
                 r.checksum == ChecksumVerdict::kAbsent,
             "a final checksum verdict on success");
  if (r.checksum == ChecksumVerdict::kMatch || r.checksum == ChecksumVerdict::kDisabled) {
    FUZZ_CHECK(stream.size() >= 8, "room for the checksum trailer");
    const uint64_t crc = finalsnap::rdb::Crc64(0, stream.first(stream.size() - 8));
    FUZZ_CHECK(r.computed_crc == crc, "computed_crc is the CRC-64 of the bytes before the trailer");
    if (r.checksum == ChecksumVerdict::kMatch) {
      FUZZ_CHECK(r.stored_crc == r.computed_crc, "a matching checksum matches");
    } else {
      FUZZ_CHECK(r.stored_crc == 0, "a disabled checksum is zero");
    }
  }
  for (const auto& [db, counts] : r.databases) {
    FUZZ_CHECK(counts.keys > 0, "the report lists only databases that hold keys");
    FUZZ_CHECK(counts.expires <= counts.keys, "no more expires than keys in a database");
  }
  FUZZ_CHECK(v.Finish() == Progress::kDone, "Finish is idempotent after success");

  // One RDB per stream: a byte after the end is an error, and that error is sticky too.
  static constexpr uint8_t kTrailing[] = {0};
  FUZZ_CHECK(v.Feed(kTrailing) == Progress::kError, "bytes after kDone are an error");
  FUZZ_CHECK(v.failed() && !v.done(), "failed after bytes past the end");
  FUZZ_CHECK(v.diagnostic().offset == stream.size(), "the trailing-bytes error is at the end");
  FUZZ_CHECK(v.Finish() == Progress::kError, "sticky: Finish after trailing bytes");
  return out;
}

bool SameReport(const Report& a, const Report& b) {
  return a.family == b.family && a.rdb_version == b.rdb_version && a.aux == b.aux &&
         a.databases == b.databases && a.functions == b.functions && a.module_aux == b.module_aux &&
         a.slot_info == b.slot_info && a.bytes == b.bytes && a.checksum == b.checksum &&
         a.computed_crc == b.computed_crc && a.stored_crc == b.stored_crc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto chunking = static_cast<Chunking>(data[0] % 3);
  finalsnap::rdb::Options options;
  options.deep = (data[0] / 3) % 2 == 1;
  const uint8_t seed = data[1];
  const std::span<const uint8_t> stream(data + 2, size - 2);

  const Outcome whole = Run(stream, options, Chunking::kWhole, seed);
  if (chunking == Chunking::kWhole) return 0;
  const Outcome chunked = Run(stream, options, chunking, seed);

  const char* mode_name = ChunkingName(chunking);
  FUZZ_CHECK(whole.done == chunked.done && whole.failed == chunked.failed,
             "same verdict whole and chunked");
  if (whole.failed) {
    FUZZ_CHECK(whole.diagnostic.code == chunked.diagnostic.code, "same error class");
    FUZZ_CHECK(whole.diagnostic.offset == chunked.diagnostic.offset, "same error offset");
    FUZZ_CHECK(whole.diagnostic.state == chunked.diagnostic.state, "same error state");
    // The message is not compared: it may legitimately describe the chunk at hand (the
    // trailing-bytes error counts the bytes left in the Feed that went past the end).
    FUZZ_CHECK(whole.diagnostic.key == chunked.diagnostic.key &&
                   whole.diagnostic.type == chunked.diagnostic.type &&
                   whole.diagnostic.db == chunked.diagnostic.db,
               "same key, type and database in the error");
  } else {
    FUZZ_CHECK(SameReport(whole.report, chunked.report), "same report");
  }
  return 0;
}
