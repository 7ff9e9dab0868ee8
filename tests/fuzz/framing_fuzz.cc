// libFuzzer target for the replication framing parser (engine/capture/repl_framing.h).
//
// Input layout:  [mode] [seed] [bytes ...]
//   mode % 3        the chunking: 0 whole, 1 one byte at a time, 2 pseudo-random pieces (0 to
//                   4096 bytes, mostly tiny) from a small LCG seeded from `seed` and the length
//   mode / 3 % 3    the stream: 0 the bytes as they are (the preamble parser gets fuzzed);
//                   1 a well-formed `$<len>` preamble around them (payload paths);
//                   2 a well-formed `$EOF:<mark>` preamble, the bytes, then the mark (mark
//                     search: libFuzzer's compare tracing soon puts pieces of the mark in the
//                     bytes); the mark is drawn from `seed` (hex, or 'a'/'b' for odd seeds)
//   mode / 9 odd    for streams 1 and 2, append `seed % 64` bytes after the end (trailing)
//
// Crashes are found by the sanitizers. Wrong answers are found by invariants that hold for every
// input; a violated one prints what it was and traps:
//   - every FeedResult partitions its span (preamble + payload + trailing = size), trailing only
//     with kDone, nothing but preamble with kError; error() is set exactly when kError;
//   - confirmed() <= seen(), both never decrease, seen() - confirmed() <= 40; in length mode
//     confirmed() == seen() <= the declared length;
//   - kDone and kError are sticky: later Feeds return them (kDone with all bytes trailing);
//   - the pipeline's view (pending ranges handed on up to confirmed(), the rest dropped at kDone)
//     gives, at kDone in mark mode, exactly the mark as the dropped part, and the mark occurs in
//     payload + mark only at its end (the first occurrence ends the stream);
//   - the chunking does not matter: whole and chunked feeding give the same status, error text,
//     payload, dropped and trailing bytes, mode, length, replid, offset and keepalive count;
//   - for the generated streams, the payload is the one wrapped (in mark mode, up to the first
//     occurrence of the mark) and the trailing bytes are what follows.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chunker.h"
#include "repl_framing.h"

namespace {

using finalsnap::detail::ReplFraming;
using Status = ReplFraming::Status;
using Mode = ReplFraming::Mode;

// libFuzzer saves the input that trapped; the message says which invariant failed and under which
// chunking (each caller has a `mode_name` in scope naming it).
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "framing_fuzz: invariant violated (%s): %s [%s]\n", what, #cond, \
                   mode_name);                                                              \
      __builtin_trap();                                                                     \
    }                                                                                       \
  } while (0)

using finalsnap::fuzz::Chunker;
using finalsnap::fuzz::Chunking;
using finalsnap::fuzz::ChunkingName;

struct Outcome {
  Status status = Status::kNeedMore;
  std::string error;
  bool server_error = false;
  std::string payload;   // handed on up to confirmed()
  std::string dropped;   // still pending at kDone
  std::string trailing;  // reported as trailing
  Mode mode = Mode::kUnknown;
  std::optional<uint64_t> declared_length;
  std::string replid;
  std::optional<uint64_t> offset;
  int keepalives = 0;
  size_t first_payload_at = 0;  // stream position of the first payload byte (or where it'd be)
};

// Feeds `stream` in the given chunking and plays the capture pipeline: payload is referenced as
// (position, size) ranges of the stream until confirmed() covers it, then handed on.
class Runner {
 public:
  Runner(std::string_view stream, Chunking chunking) : stream_(stream), chunking_(chunking) {}

  Outcome Run(uint8_t seed) {
    Chunker chunker(chunking_, seed, stream_.size());
    // Bounded so that a run of empty chunks cannot hang the fuzzer; then the rest in one piece.
    size_t calls_left = 4 * stream_.size() + 16;
    while (fed_ < stream_.size() && calls_left-- > 0) FeedOne(chunker.Next(stream_.size() - fed_));
    if (fed_ < stream_.size()) FeedOne(stream_.size() - fed_);

    const char* mode_name = ChunkingName(chunking_);
    out_.status = errored_ ? Status::kError : (done_ ? Status::kDone : Status::kNeedMore);
    out_.mode = f_.mode();
    out_.declared_length = f_.declared_length();
    out_.replid = f_.replid();
    out_.offset = f_.offset();
    out_.keepalives = f_.keepalives();

    // Sticky end states, once more with fresh bytes and with none.
    static constexpr uint8_t kMore[] = {'$', '1', '\r', '\n', 'x'};
    const ReplFraming::FeedResult more = f_.Feed(kMore);
    if (errored_) {
      FUZZ_CHECK(more.status == Status::kError && f_.error() == out_.error, "sticky error");
      FUZZ_CHECK(more.payload_offset == sizeof(kMore), "an error span is all preamble");
      FUZZ_CHECK(f_.Feed({}).status == Status::kError, "sticky error, empty Feed");
    }
    if (done_) {
      FUZZ_CHECK(more.status == Status::kDone && more.trailing == sizeof(kMore), "sticky done");
    }
    return out_;
  }

 private:
  struct Range {
    size_t at;
    size_t size;
  };

  void FeedOne(size_t n) {
    const char* mode_name = ChunkingName(chunking_);
    const std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(stream_.data()) + fed_, n);
    const ReplFraming::FeedResult r = f_.Feed(span);
    FUZZ_CHECK(r.payload_offset + r.payload_size + r.trailing == n, "the parts partition the span");
    FUZZ_CHECK((r.status == Status::kError) == !f_.error().empty(), "error() set iff kError");
    FUZZ_CHECK(r.status != Status::kNeedMore || r.trailing == 0, "trailing only with kDone");
    if (errored_) FUZZ_CHECK(r.status == Status::kError, "errors are sticky");
    if (done_) {
      FUZZ_CHECK(r.status == Status::kDone, "kDone is sticky");
      FUZZ_CHECK(r.payload_size == 0 && r.trailing == n, "after kDone every byte is trailing");
    }
    if (r.status == Status::kError) {
      FUZZ_CHECK(r.payload_size == 0 && r.trailing == 0, "an error span is all preamble");
      if (!errored_) {
        out_.error = f_.error();
        out_.server_error = f_.server_error();
      }
      FUZZ_CHECK(f_.error() == out_.error, "the first error is kept");
      errored_ = true;
    } else {
      if (!payload_begun_ && f_.mode() != Mode::kUnknown) {
        payload_begun_ = true;
        out_.first_payload_at = fed_ + r.payload_offset;
      }
      if (r.payload_size > 0) pending_.push_back({fed_ + r.payload_offset, r.payload_size});
      out_.trailing.append(stream_.substr(fed_ + r.payload_offset + r.payload_size, r.trailing));
    }

    FUZZ_CHECK(f_.confirmed() <= f_.seen(), "confirmed() <= seen()");
    FUZZ_CHECK(f_.confirmed() >= last_confirmed_, "confirmed() never decreases");
    FUZZ_CHECK(f_.seen() >= last_seen_, "seen() never decreases");
    FUZZ_CHECK(f_.seen() - f_.confirmed() <= ReplFraming::kMarkSize, "at most 40 held back");
    if (f_.mode() == Mode::kLength) {
      FUZZ_CHECK(f_.confirmed() == f_.seen(), "length mode holds nothing back");
      FUZZ_CHECK(f_.declared_length().has_value() && f_.seen() <= *f_.declared_length(),
                 "length mode stays within the declared length");
    }
    last_confirmed_ = f_.confirmed();
    last_seen_ = f_.seen();

    if (!errored_) {
      uint64_t want = f_.confirmed() - handed_;
      while (want > 0 && head_ < pending_.size()) {
        Range& front = pending_[head_];
        const size_t take = want < front.size ? static_cast<size_t>(want) : front.size;
        out_.payload.append(stream_.substr(front.at, take));
        front.at += take;
        front.size -= take;
        handed_ += take;
        want -= take;
        if (front.size == 0) ++head_;
      }
      FUZZ_CHECK(want == 0, "pending ranges cover confirmed()");
      if (r.status == Status::kDone && !done_) {
        done_ = true;
        for (; head_ < pending_.size(); ++head_) {
          out_.dropped.append(stream_.substr(pending_[head_].at, pending_[head_].size));
        }
        FUZZ_CHECK(f_.confirmed() == out_.payload.size(), "kDone: confirmed() is the payload");
      }
    }
    fed_ += n;
  }

  std::string_view stream_;
  Chunking chunking_;
  ReplFraming f_;
  Outcome out_;
  std::vector<Range> pending_;
  size_t head_ = 0;  // pending_[head_..] are not handed on yet
  uint64_t handed_ = 0;
  uint64_t last_confirmed_ = 0;
  uint64_t last_seen_ = 0;
  bool payload_begun_ = false;
  bool done_ = false;
  bool errored_ = false;
  size_t fed_ = 0;
};

Outcome Run(std::string_view stream, Chunking chunking, uint8_t seed) {
  return Runner(stream, chunking).Run(seed);
}

// The mark in a mark-mode stream: the 40 bytes before the CRLF that ends the preamble.
std::string MarkOf(std::string_view stream, const Outcome& o) {
  return std::string(
      stream.substr(o.first_payload_at - 2 - ReplFraming::kMarkSize, ReplFraming::kMarkSize));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto chunking = static_cast<Chunking>(data[0] % 3);
  const int shape = (data[0] / 3) % 3;
  const bool extra = (data[0] / 9) % 2 == 1;
  const uint8_t seed = data[1];
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);

  // The stream, and for generated ones what the parser must find in it.
  std::string stream;
  std::string mark;
  const std::string after(extra ? seed % 64 : 0, static_cast<char>('A' + seed % 26));
  if (shape == 0) {
    stream = bytes;
  } else if (shape == 1) {
    stream = "\n+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 " + std::to_string(seed) +
             "\r\n\n$" + std::to_string(bytes.size()) + "\r\n" + std::string(bytes) + after;
  } else {
    // A mark drawn from the seed: in the server's alphabet, or (odd seeds) in just 'a' and 'b',
    // where repeated pairs and overlapping near matches stress the search's skips.
    const std::string_view alphabet = seed % 2 == 0 ? "0123456789abcdef" : "ab";
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < ReplFraming::kMarkSize; ++i) {
      x = x * 1664525u + 1013904223u;
      mark += alphabet[(x >> 24) % alphabet.size()];
    }
    stream = "$EOF:" + mark + "\r\n" + std::string(bytes) + mark + after;
  }

  const char* mode_name = "whole";
  const Outcome whole = Run(stream, Chunking::kWhole, seed);
  if (whole.status == Status::kDone && whole.mode == Mode::kEofMark) {
    const std::string m = MarkOf(stream, whole);
    FUZZ_CHECK(whole.dropped == m, "kDone in mark mode: the dropped bytes are the mark");
    FUZZ_CHECK((whole.payload + whole.dropped).find(m) == whole.payload.size(),
               "the mark ends the payload at its first occurrence");
  }
  if (whole.status == Status::kDone && whole.mode == Mode::kLength) {
    FUZZ_CHECK(whole.dropped.empty(), "length mode drops nothing");
    FUZZ_CHECK(whole.payload.size() == *whole.declared_length, "length mode: the declared size");
  }
  if (shape == 1) {
    FUZZ_CHECK(whole.status == Status::kDone, "a generated length stream completes");
    FUZZ_CHECK(whole.payload == bytes && whole.trailing == after, "the generated length payload");
    FUZZ_CHECK(whole.offset == seed && whole.keepalives == 2, "the generated preamble");
  } else if (shape == 2) {
    const std::string body = std::string(bytes) + mark;
    const size_t end = body.find(mark);
    FUZZ_CHECK(whole.status == Status::kDone, "a generated mark stream completes");
    FUZZ_CHECK(whole.payload == body.substr(0, end), "the generated mark payload");
    FUZZ_CHECK(whole.trailing == body.substr(end + mark.size()) + after, "the generated trailing");
  }

  if (chunking == Chunking::kWhole) return 0;
  const Outcome chunked = Run(stream, chunking, seed);
  mode_name = ChunkingName(chunking);
  FUZZ_CHECK(whole.status == chunked.status, "same status whole and chunked");
  FUZZ_CHECK(whole.error == chunked.error && whole.server_error == chunked.server_error,
             "same error whole and chunked");
  FUZZ_CHECK(whole.payload == chunked.payload, "same payload whole and chunked");
  FUZZ_CHECK(whole.dropped == chunked.dropped, "same dropped bytes whole and chunked");
  FUZZ_CHECK(whole.trailing == chunked.trailing, "same trailing bytes whole and chunked");
  FUZZ_CHECK(whole.mode == chunked.mode && whole.declared_length == chunked.declared_length,
             "same mode and length whole and chunked");
  FUZZ_CHECK(whole.replid == chunked.replid && whole.offset == chunked.offset &&
                 whole.keepalives == chunked.keepalives,
             "same +FULLRESYNC and keepalives whole and chunked");
  return 0;
}
