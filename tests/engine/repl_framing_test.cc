// Tests for the replication framing parser (repl_framing.h).
//
// Every stream is built by hand from the formats in REDIS-FACTS §1.4 and fed whole, one byte at a
// time and in random pieces (some empty). Each run goes through RunPipeline, which does what the
// capture pipeline does with the parser's answers: it keeps references to the payload ranges of
// each fed buffer, hands on the prefix up to confirmed() after every Feed, and drops what is left
// at kDone. The key property is that what it hands on is exactly the payload, in every chunking,
// and that nothing is handed on before it is certain.
#include "repl_framing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace finalsnap::detail {
namespace {

using Status = ReplFraming::Status;
using Mode = ReplFraming::Mode;

constexpr std::string_view kReplid = "8371445ee0e30d9d42b9a7e8bc3aa1d6b9e5c9f2";
constexpr std::string_view kMark = "4e2c1bd0f7a95e36d8b0a1c2e3f405162738495a";
static_assert(kReplid.size() == 40 && kMark.size() == ReplFraming::kMarkSize);

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// What the server sends before the `$` line (REDIS-FACTS §1.4 items 1 and 2).
struct Preamble {
  int keepalives_before = 0;
  bool fullresync = false;  // PSYNC ? -1 sends it; SYNC does not
  uint64_t offset = 0;
  int keepalives_between = 0;
};

std::string PreambleBytes(const Preamble& p) {
  std::string out(static_cast<size_t>(p.keepalives_before), '\n');
  if (p.fullresync) {
    out += "+FULLRESYNC " + std::string(kReplid) + " " + std::to_string(p.offset) + "\r\n";
  }
  out.append(static_cast<size_t>(p.keepalives_between), '\n');
  return out;
}

// Disk target: `$<len>\r\n` and exactly that many bytes, no trailing CRLF.
std::string LengthStream(const Preamble& p, std::string_view payload) {
  return PreambleBytes(p) + "$" + std::to_string(payload.size()) + "\r\n" + std::string(payload);
}

// Diskless target: `$EOF:<mark>\r\n`, the payload, the mark again.
std::string MarkStream(const Preamble& p, std::string_view payload, std::string_view mark = kMark) {
  return PreambleBytes(p) + "$EOF:" + std::string(mark) + "\r\n" + std::string(payload) +
         std::string(mark);
}

// ---- Chunkings.

struct Chunking {
  std::string name;
  std::vector<size_t> sizes;  // they add up to the stream size
};

std::vector<size_t> RandomSizes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> sizes;
  size_t left = n;
  while (left > 0) {
    // Mostly tiny pieces (some empty), so every line and the mark get split; one in four large.
    size_t size = (rng() % 4 == 0) ? rng() % 4097 : rng() % 17;
    size = std::min(size, left);
    sizes.push_back(size);
    left -= size;
  }
  return sizes;
}

std::vector<Chunking> AllChunkings(size_t n) {
  std::vector<Chunking> out;
  out.push_back({"whole", {n}});
  out.push_back({"1-byte", std::vector<size_t>(n, 1)});
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    out.push_back({"random seed " + std::to_string(seed), RandomSizes(n, seed)});
  }
  return out;
}

// ---- The pipeline's pending-range logic.

struct Outcome {
  Status status = Status::kNeedMore;
  std::string payload;   // handed on, in order
  std::string dropped;   // pending at kDone and dropped: the mark in mark mode
  std::string trailing;  // bytes the parser said were after the end
  int feeds = 0;
  ReplFraming framing;  // its state after the last Feed
};

// Feeds `stream` in pieces of `sizes`, as the capture pipeline would: each piece lands in its own
// buffer (a pooled socket buffer), and the payload is only ever referenced as (buffer, offset,
// size) until it is confirmed. Checks the per-Feed invariants on the way. `real_payload` is the
// payload length the stream really carries; confirmed() must never pass it.
Outcome RunPipeline(const std::string& stream, const std::vector<size_t>& sizes,
                    uint64_t real_payload = std::numeric_limits<uint64_t>::max()) {
  struct Range {
    const std::string* buffer;
    size_t offset;
    size_t size;
  };
  Outcome out;
  ReplFraming& f = out.framing;
  std::deque<std::string> buffers;  // a deque keeps references valid as it grows
  std::deque<Range> pending;
  uint64_t pending_bytes = 0;
  uint64_t handed = 0;
  uint64_t last_confirmed = 0;
  uint64_t last_seen = 0;
  bool done = false;
  size_t pos = 0;
  for (const size_t n : sizes) {
    const std::string& buffer = buffers.emplace_back(stream.substr(pos, n));
    pos += n;
    const ReplFraming::FeedResult r = f.Feed(AsBytes(buffer));
    ++out.feeds;
    out.status = r.status;
    EXPECT_EQ(r.payload_offset + r.payload_size + r.trailing, n) << "the parts partition the span";
    if (r.status == Status::kError) {
      EXPECT_EQ(r.payload_size, 0u);
      EXPECT_EQ(r.trailing, 0u);
      EXPECT_FALSE(f.error().empty());
      break;
    }
    EXPECT_TRUE(f.error().empty());
    if (r.status == Status::kNeedMore) {
      EXPECT_EQ(r.trailing, 0u);
    }
    if (done) {
      EXPECT_EQ(r.status, Status::kDone) << "kDone is sticky";
      EXPECT_EQ(r.payload_size, 0u);
    }
    if (r.payload_size > 0) {
      pending.push_back({&buffer, r.payload_offset, r.payload_size});
      pending_bytes += r.payload_size;
    }
    out.trailing += buffer.substr(r.payload_offset + r.payload_size);

    EXPECT_GE(f.confirmed(), last_confirmed) << "confirmed() never decreases";
    EXPECT_GE(f.seen(), last_seen) << "seen() never decreases";
    EXPECT_LE(f.confirmed(), f.seen());
    EXPECT_LE(f.seen() - f.confirmed(), ReplFraming::kMarkSize);
    EXPECT_LE(f.confirmed(), real_payload) << "confirmed() passed the real payload";
    last_confirmed = f.confirmed();
    last_seen = f.seen();

    // Hand on the confirmed prefix: whole ranges are released, a partial one is trimmed.
    uint64_t want = f.confirmed() - handed;
    while (want > 0) {
      EXPECT_FALSE(pending.empty());
      if (pending.empty()) break;
      Range& front = pending.front();
      const size_t take = static_cast<size_t>(std::min<uint64_t>(want, front.size));
      out.payload.append(*front.buffer, front.offset, take);
      front.offset += take;
      front.size -= take;
      handed += take;
      pending_bytes -= take;
      want -= take;
      if (front.size == 0) pending.pop_front();
    }
    // Until kDone, pending holds exactly the unconfirmed tail; after it, nothing (dropped).
    EXPECT_EQ(pending_bytes, done ? 0 : f.seen() - f.confirmed());

    if (r.status == Status::kDone && !done) {
      done = true;
      for (const Range& range : pending)
        out.dropped.append(*range.buffer, range.offset, range.size);
      pending.clear();
      pending_bytes = 0;
    }
  }
  return out;
}

// Runs every chunking of `stream` and checks that each gives `payload` and ends as expected.
void ExpectRoundTrip(const std::string& stream, const std::string& payload, Mode mode,
                     const std::string& trailing = "") {
  for (const Chunking& c : AllChunkings(stream.size())) {
    SCOPED_TRACE(c.name);
    const Outcome o = RunPipeline(stream, c.sizes, payload.size());
    ASSERT_EQ(o.status, Status::kDone) << o.framing.error();
    EXPECT_EQ(o.framing.mode(), mode);
    EXPECT_EQ(o.payload.size(), payload.size());
    EXPECT_TRUE(o.payload == payload) << "the handed-on bytes differ from the payload";
    EXPECT_EQ(o.framing.confirmed(), payload.size());
    EXPECT_EQ(o.dropped, mode == Mode::kEofMark ? std::string(kMark) : std::string());
    EXPECT_EQ(o.framing.seen(), payload.size() + o.dropped.size());
    EXPECT_EQ(o.trailing, trailing);
    if (mode == Mode::kLength) {
      EXPECT_EQ(o.framing.declared_length(), payload.size());
      EXPECT_EQ(o.framing.copied(), 0u) << "length mode copies nothing";
    } else {
      EXPECT_EQ(o.framing.declared_length(), std::nullopt);
      EXPECT_LE(o.framing.copied(), 2 * (ReplFraming::kMarkSize - 1) * o.feeds);
    }
    EXPECT_EQ(o.framing.state_name(), "done");
  }
}

// Runs every chunking of `stream` and checks that each fails with exactly `error`.
void ExpectError(const std::string& stream, const std::string& error, bool server_error = false) {
  for (const Chunking& c : AllChunkings(stream.size())) {
    SCOPED_TRACE(c.name);
    Outcome o = RunPipeline(stream, c.sizes, 0);
    ASSERT_EQ(o.status, Status::kError);
    EXPECT_EQ(o.framing.error(), error);
    EXPECT_EQ(o.framing.server_error(), server_error);
    EXPECT_EQ(o.payload, "");
    EXPECT_EQ(o.framing.state_name(), "error");
    // Sticky: more bytes, or none, change nothing.
    const ReplFraming::FeedResult again = o.framing.Feed(AsBytes("$5\r\nhello"));
    EXPECT_EQ(again.status, Status::kError);
    EXPECT_EQ(again.payload_offset, 9u);
    EXPECT_EQ(again.payload_size, 0u);
    EXPECT_EQ(o.framing.Feed({}).status, Status::kError);
    EXPECT_EQ(o.framing.error(), error);
  }
}

// Runs every chunking of `stream` and checks that each is still waiting for more.
void ExpectNeedMore(const std::string& stream) {
  for (const Chunking& c : AllChunkings(stream.size())) {
    SCOPED_TRACE(c.name);
    const Outcome o = RunPipeline(stream, c.sizes, 0);
    EXPECT_EQ(o.status, Status::kNeedMore) << o.framing.error();
  }
}

// ---- Length mode.

TEST(ReplFramingTest, LengthModeAfterSync) {
  const std::string payload = RandomBytes(3000, 1);
  ExpectRoundTrip(LengthStream({}, payload), payload, Mode::kLength);
  const Outcome o = RunPipeline(LengthStream({}, payload), {payload.size() + 7});
  EXPECT_EQ(o.framing.replid(), "");
  EXPECT_EQ(o.framing.offset(), std::nullopt);
  EXPECT_EQ(o.framing.keepalives(), 0);
}

TEST(ReplFramingTest, LengthModeAfterPsyncWithKeepalives) {
  Preamble p;
  p.keepalives_before = 3;
  p.fullresync = true;
  p.offset = 28;
  p.keepalives_between = 2;
  const std::string payload = RandomBytes(5000, 2);
  const std::string stream = LengthStream(p, payload);
  ExpectRoundTrip(stream, payload, Mode::kLength);
  for (const Chunking& c : AllChunkings(stream.size())) {
    const Outcome o = RunPipeline(stream, c.sizes);
    EXPECT_EQ(o.framing.replid(), kReplid) << c.name;
    EXPECT_EQ(o.framing.offset(), 28u) << c.name;
    EXPECT_EQ(o.framing.keepalives(), 5) << c.name;
  }
}

TEST(ReplFramingTest, LengthModeReportsBytesPastTheEndAsTrailing) {
  const std::string payload = RandomBytes(100, 3);
  ExpectRoundTrip(LengthStream({}, payload) + "*1\r\n$4\r\nPING\r\n", payload, Mode::kLength,
                  "*1\r\n$4\r\nPING\r\n");
}

TEST(ReplFramingTest, LengthModePayloadInTheSameSpanAsThePreamble) {
  const std::string stream = "\n\n$5\r\nhelloXY";
  ReplFraming f;
  const ReplFraming::FeedResult r = f.Feed(AsBytes(stream));
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload_offset, 6u);
  EXPECT_EQ(r.payload_size, 5u);
  EXPECT_EQ(r.trailing, 2u);
  EXPECT_EQ(f.keepalives(), 2);
}

TEST(ReplFramingTest, ZeroLengthPayload) {
  ExpectRoundTrip("$0\r\n", "", Mode::kLength);
  ExpectRoundTrip("\n$0\r\nabc", "", Mode::kLength, "abc");
  ReplFraming f;
  const ReplFraming::FeedResult r = f.Feed(AsBytes("$0\r\nabc"));
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload_offset, 4u);
  EXPECT_EQ(r.payload_size, 0u);
  EXPECT_EQ(r.trailing, 3u);
  EXPECT_EQ(f.declared_length(), 0u);
}

TEST(ReplFramingTest, LengthUpToTheLimitIsAccepted) {
  ReplFraming f;
  const std::string line = "$" + std::to_string(ReplFraming::kMaxLength) + "\r\nab";
  const ReplFraming::FeedResult r = f.Feed(AsBytes(line));
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.payload_size, 2u);
  EXPECT_EQ(f.declared_length(), ReplFraming::kMaxLength);
}

// ---- Mark mode.

TEST(ReplFramingTest, MarkModeAfterSync) {
  const std::string payload = RandomBytes(3000, 4);
  ExpectRoundTrip(MarkStream({}, payload), payload, Mode::kEofMark);
}

TEST(ReplFramingTest, MarkModeAfterPsyncWithKeepalives) {
  Preamble p;
  p.keepalives_before = 4;
  p.fullresync = true;
  p.offset = 9223372036854775807u;  // the largest offset a server can have
  const std::string payload = RandomBytes(2000, 5);
  const std::string stream = MarkStream(p, payload);
  ExpectRoundTrip(stream, payload, Mode::kEofMark);
  const Outcome o = RunPipeline(stream, {stream.size()});
  EXPECT_EQ(o.framing.replid(), kReplid);
  EXPECT_EQ(o.framing.offset(), 9223372036854775807u);
  EXPECT_EQ(o.framing.keepalives(), 4);
}

TEST(ReplFramingTest, MarkModeEmptyPayload) {
  ExpectRoundTrip(MarkStream({}, ""), "", Mode::kEofMark);
}

TEST(ReplFramingTest, MarkModeShortPayloads) {
  for (size_t n = 0; n <= 100; ++n) {
    SCOPED_TRACE(n);
    const std::string payload = RandomBytes(n, static_cast<uint32_t>(100 + n));
    ExpectRoundTrip(MarkStream({}, payload), payload, Mode::kEofMark);
  }
}

// Two pieces, split at every position of the stream: every position of the mark included.
TEST(ReplFramingTest, MarkSplitAtEveryPosition) {
  const std::string payload = RandomBytes(200, 6);
  const std::string stream = MarkStream({}, payload);
  for (size_t k = 0; k <= stream.size(); ++k) {
    SCOPED_TRACE(k);
    const Outcome o = RunPipeline(stream, {k, stream.size() - k}, payload.size());
    ASSERT_EQ(o.status, Status::kDone);
    EXPECT_TRUE(o.payload == payload);
    EXPECT_EQ(o.dropped, kMark);
    EXPECT_EQ(o.trailing, "");
  }
}

// Three pieces, cut at every pair of positions around the mark: the mark in three parts.
TEST(ReplFramingTest, MarkSplitInThreeAtEveryPairOfPositions) {
  const std::string payload = RandomBytes(100, 7);
  const std::string stream = MarkStream({}, payload);
  const size_t from = stream.size() - 2 * ReplFraming::kMarkSize;
  for (size_t i = from; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); ++j) {
      SCOPED_TRACE(std::to_string(i) + "," + std::to_string(j));
      const Outcome o = RunPipeline(stream, {i, j - i, stream.size() - j}, payload.size());
      ASSERT_EQ(o.status, Status::kDone);
      EXPECT_TRUE(o.payload == payload);
      EXPECT_EQ(o.dropped, kMark);
    }
  }
}

// Near misses must not end the payload: any 39 bytes of the mark, at the start, in the middle,
// and right before the real mark (where the window overlaps it).
TEST(ReplFramingTest, ThirtyNineBytesOfTheMarkDoNotEndThePayload) {
  const std::string prefix(kMark.substr(0, 39));
  const std::string suffix(kMark.substr(1));
  std::string mid_changed(kMark);
  mid_changed[20] = 'x';
  const std::vector<std::string> payloads = {
      prefix,
      suffix,
      prefix + "!" + suffix,
      "ab" + prefix + RandomBytes(50, 8) + suffix + "cd" + mid_changed,
      prefix + prefix + prefix,
      RandomBytes(300, 9) + prefix,
      RandomBytes(300, 10) + std::string(kMark.substr(0, 1)),
      std::string(kMark.substr(0, 20)),
  };
  for (const std::string& payload : payloads) {
    SCOPED_TRACE(payload);
    ExpectRoundTrip(MarkStream({}, payload), payload, Mode::kEofMark);
  }
}

// The search must be right for any mark, not only random hex: marks with repeated bytes and
// pairs (short skips, overlapping near matches) and binary marks, over payloads drawn from the
// mark's own bytes, so that partial matches are everywhere.
TEST(ReplFramingTest, MarksOfAnyShape) {
  std::mt19937 rng(77);
  std::string binary(40, '\0');
  for (char& c : binary) {
    do {
      c = static_cast<char>(rng() & 0xff);
    } while (c == '\n');
  }
  std::string hex_text;
  for (int i = 0; i < 5000; ++i) hex_text += "0123456789abcdef"[rng() % 16];
  const std::vector<std::string> marks = {
      std::string(40, 'a'),
      "abababababababababababababababababababab",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
      "baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "0123456789abcdef0123456789abcdef01234567",
      binary,
      std::string(kMark),
  };
  for (const std::string& mark : marks) {
    SCOPED_TRACE(mark);
    for (int round = 0; round < 20; ++round) {
      std::string payload;
      const size_t n = rng() % 300;
      for (size_t i = 0; i < n; ++i) payload += mark[rng() % 40];
      if (round % 4 == 0) payload += mark.substr(0, 39);
      if (round % 4 == 1) payload = mark.substr(1) + payload;
      if (round == 19) payload = hex_text;
      // What the parser must find: the payload up to the first occurrence of the mark.
      const std::string body = payload + mark;
      const std::string expected = body.substr(0, body.find(mark));
      const std::string stream = MarkStream({}, payload, mark);
      for (const Chunking& c : AllChunkings(stream.size())) {
        SCOPED_TRACE(c.name);
        const Outcome o = RunPipeline(stream, c.sizes, expected.size());
        ASSERT_EQ(o.status, Status::kDone) << o.framing.error();
        EXPECT_TRUE(o.payload == expected);
        EXPECT_EQ(o.dropped, mark);
        EXPECT_EQ(o.trailing, body.substr(expected.size() + 40));
      }
    }
  }
}

// Documented behavior: the end is the first occurrence of the mark, in every chunking. Bytes
// after it are trailing. (A real server never sends any; see repl_framing.h.)
TEST(ReplFramingTest, MarkEndsAtItsFirstOccurrence) {
  const std::string before = RandomBytes(500, 11);
  const std::string after = RandomBytes(70, 12);
  const std::string stream = MarkStream({}, before + std::string(kMark) + after);
  ExpectRoundTrip(stream, before, Mode::kEofMark, after + std::string(kMark));
}

TEST(ReplFramingTest, MarkFoundInTheSameSpanAsThePreamble) {
  ReplFraming f;
  const std::string stream = MarkStream({}, "hello") + "zz";
  const ReplFraming::FeedResult r = f.Feed(AsBytes(stream));
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload_offset, 47u);
  EXPECT_EQ(r.payload_size, 45u);
  EXPECT_EQ(r.trailing, 2u);
  EXPECT_EQ(f.confirmed(), 5u);
  EXPECT_EQ(f.seen(), 45u);
}

TEST(ReplFramingTest, MarkModeHoldsBackFortyBytes) {
  ReplFraming f;
  ASSERT_EQ(f.Feed(AsBytes("$EOF:" + std::string(kMark) + "\r\n")).status, Status::kNeedMore);
  EXPECT_EQ(f.mode(), Mode::kEofMark);
  const std::string payload = RandomBytes(100, 13);
  EXPECT_EQ(f.Feed(AsBytes(std::string_view(payload).substr(0, 30))).payload_size, 30u);
  EXPECT_EQ(f.confirmed(), 0u);
  EXPECT_EQ(f.Feed(AsBytes(std::string_view(payload).substr(30))).payload_size, 70u);
  EXPECT_EQ(f.seen(), 100u);
  EXPECT_EQ(f.confirmed(), 60u);
}

TEST(ReplFramingTest, MarkCopiesAreBoundedPerFeed) {
  const std::string payload = RandomBytes(1 << 20, 14);
  const std::string stream = MarkStream({}, payload);
  // Whole: the mark is found in place, with no window at all.
  EXPECT_EQ(RunPipeline(stream, {stream.size()}).framing.copied(), 0u);
  // 256 KiB pieces: at most 39 + 39 bytes per Feed, whatever the size of the span.
  std::vector<size_t> sizes;
  for (size_t left = stream.size(); left > 0;) {
    sizes.push_back(std::min<size_t>(left, 256 << 10));
    left -= sizes.back();
  }
  const Outcome o = RunPipeline(stream, sizes);
  ASSERT_EQ(o.status, Status::kDone);
  EXPECT_LE(o.framing.copied(), 78u * sizes.size());
}

// ---- Feeding after the end, empty feeds.

TEST(ReplFramingTest, FeedAfterDoneIsAllTrailing) {
  ReplFraming f;
  ASSERT_EQ(f.Feed(AsBytes("$2\r\nok")).status, Status::kDone);
  const ReplFraming::FeedResult r = f.Feed(AsBytes("more"));
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload_offset, 0u);
  EXPECT_EQ(r.payload_size, 0u);
  EXPECT_EQ(r.trailing, 4u);
  EXPECT_EQ(f.confirmed(), 2u);
}

TEST(ReplFramingTest, EmptyFeedsChangeNothing) {
  ReplFraming f;
  const std::string stream = "\n+FULLRESYNC " + std::string(kReplid) + " 7\r\n$3\r\nabc";
  for (const char c : stream) {
    const ReplFraming::FeedResult empty = f.Feed({});
    EXPECT_EQ(empty.status, Status::kNeedMore);
    EXPECT_EQ(empty.payload_offset + empty.payload_size + empty.trailing, 0u);
    f.Feed(AsBytes(std::string(1, c)));
  }
  EXPECT_EQ(f.Feed({}).status, Status::kDone);
  EXPECT_EQ(f.confirmed(), 3u);
}

TEST(ReplFramingTest, PartialPreambleNeedsMore) {
  ExpectNeedMore("");
  ExpectNeedMore("\n\n\n");
  ExpectNeedMore("+FULLRESYNC " + std::string(kReplid));
  ExpectNeedMore("-ERR no CRLF yet");
  ExpectNeedMore("$12\r");
  ExpectNeedMore("$EOF:" + std::string(kMark) + "\r\n" + std::string(kMark.substr(0, 39)));
  ReplFraming f;
  f.Feed(AsBytes("\n\n"));
  EXPECT_EQ(f.keepalives(), 2);
  EXPECT_EQ(f.mode(), Mode::kUnknown);
  EXPECT_EQ(f.state_name(), "line-start");
}

// ---- Server refusals and protocol errors.

TEST(ReplFramingTest, ServerErrorsCarryTheServersMessage) {
  ExpectError("-NOMASTERLINK Can't SYNC while not connected with my master\r\n",
              "server refused: -NOMASTERLINK Can't SYNC while not connected with my master", true);
  ExpectError("\n\n-ERR BGSAVE failed, replication can't continue\r\n",
              "server refused: -ERR BGSAVE failed, replication can't continue", true);
  // A refusal may come after +FULLRESYNC and keepalives too.
  ExpectError("+FULLRESYNC " + std::string(kReplid) + " 1\r\n\n-ERR oops\r\n",
              "server refused: -ERR oops", true);
}

TEST(ReplFramingTest, ContinueIsAnError) {
  ExpectError("+CONTINUE\r\n",
              "protocol error at byte 0 of the reply: the server offered a partial resync "
              "('+CONTINUE') but a full resync was requested");
  ExpectError("\n+CONTINUE " + std::string(kReplid) + "\r\n",
              "protocol error at byte 1 of the reply: the server offered a partial resync "
              "('+CONTINUE " +
                  std::string(kReplid) + "') but a full resync was requested");
}

TEST(ReplFramingTest, OtherStatusRepliesAreErrors) {
  ExpectError("+OK\r\n", "protocol error at byte 0 of the reply: expected +FULLRESYNC, got '+OK'");
  ExpectError("+CONTINUEX\r\n",
              "protocol error at byte 0 of the reply: expected +FULLRESYNC, got '+CONTINUEX'");
  // Only one +FULLRESYNC: after it, the bulk is expected.
  const std::string full = "+FULLRESYNC " + std::string(kReplid) + " 0\r\n";
  ExpectError(full + full, "protocol error at byte " + std::to_string(full.size()) +
                               " of the reply: expected '$', '-' or a keepalive newline, got '+'");
}

TEST(ReplFramingTest, MalformedFullResync) {
  const std::string bad_replid = "+FULLRESYNC " + std::string(kReplid.substr(0, 39)) + "g 5\r\n";
  ExpectError(bad_replid, "protocol error at byte 12 of the reply: malformed +FULLRESYNC line '" +
                              bad_replid.substr(0, bad_replid.size() - 2) +
                              "': expected a 40-hex-digit replication id and a space");
  ExpectError("+FULLRESYNC abc 5\r\n",
              "protocol error at byte 12 of the reply: malformed +FULLRESYNC line "
              "'+FULLRESYNC abc 5': expected a 40-hex-digit replication id and a space");
  const std::string head = "+FULLRESYNC " + std::string(kReplid);
  ExpectError(head + "\r\n",
              "protocol error at byte 12 of the reply: malformed +FULLRESYNC line '" + head +
                  "': expected a 40-hex-digit replication id and a space");
  ExpectError(head + " \r\n",
              "protocol error at byte 53 of the reply: malformed +FULLRESYNC line '" + head +
                  " ': the offset is not a non-negative decimal number");
  ExpectError(head + " -1\r\n",
              "protocol error at byte 53 of the reply: malformed +FULLRESYNC line '" + head +
                  " -1': the offset is not a non-negative decimal number");
  ExpectError(head + " 9223372036854775808\r\n",
              "protocol error at byte 53 of the reply: malformed +FULLRESYNC line '" + head +
                  " 9223372036854775808': the offset is out of range");
}

TEST(ReplFramingTest, GarbageFirstByteIsNamed) {
  ExpectError("x",
              "protocol error at byte 0 of the reply: expected '+', '-', '$' or a keepalive "
              "newline, got 'x'");
  ExpectError(std::string("\n\n\x01", 3),
              "protocol error at byte 2 of the reply: expected '+', '-', '$' or a keepalive "
              "newline, got byte 0x01");
  ExpectError("\r\n",
              "protocol error at byte 0 of the reply: expected '+', '-', '$' or a "
              "keepalive newline, got '\\r' (0x0d)");
  ExpectError("*1\r\n",
              "protocol error at byte 0 of the reply: expected '+', '-', '$' or a "
              "keepalive newline, got '*'");
  const std::string full = "+FULLRESYNC " + std::string(kReplid) + " 0\r\n\n";
  ExpectError(full + "x", "protocol error at byte " + std::to_string(full.size()) +
                              " of the reply: expected '$', '-' or a keepalive newline, got 'x'");
}

TEST(ReplFramingTest, LineLengthIsBounded) {
  // 1024 bytes before the CRLF is the longest line accepted...
  const std::string longest = "$" + std::string(1022, '0') + "5";
  ASSERT_EQ(longest.size(), ReplFraming::kMaxLineBytes);
  ExpectRoundTrip(longest + "\r\nhello", "hello", Mode::kLength);
  // ...and one more byte is refused, at that byte, with or without the rest of the line.
  const std::string error =
      "protocol error at byte 1025 of the reply: line longer than 1024 bytes (it began at byte 0 "
      "with '$000000000000000')";
  ExpectError("$" + std::string(1023, '0') + "5\r\nhello", error);
  ExpectError("$" + std::string(5000, '0'), error);
  ExpectError("\n\n+FULLRESYNC " + std::string(3000, 'a'),
              "protocol error at byte 1027 of the reply: line longer than 1024 bytes (it began at "
              "byte 2 with '+FULLRESYNC aaaa')");
  ExpectError("-" + std::string(2000, 'E'),
              "protocol error at byte 1025 of the reply: line longer than 1024 bytes (it began at "
              "byte 0 with '-EEEEEEEEEEEEEEE')");
}

TEST(ReplFramingTest, BadLengthsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"$", "the bulk length in '$' is not a decimal number"},
      {"$abc", "the bulk length in '$abc' is not a decimal number"},
      {"$12a", "the bulk length in '$12a' is not a decimal number"},
      {"$ 5", "the bulk length in '$ 5' is not a decimal number"},
      {"$+5", "the bulk length in '$+5' is not a decimal number"},
      {"$-1", "negative bulk length in '$-1'"},
      {"$-5", "negative bulk length in '$-5'"},
      {"$1125899906842625",
       "the bulk length in '$1125899906842625' is above the limit of 2^50 bytes"},
      {"$99999999999999999999999999",
       "the bulk length in '$99999999999999999999999999' is above the limit of 2^50 bytes"},
      {"$EOF", "the bulk length in '$EOF' is not a decimal number"},
  };
  for (const auto& [line, why] : cases) {
    SCOPED_TRACE(line);
    ExpectError(line + "\r\n", "protocol error at byte 1 of the reply: " + why);
  }
}

TEST(ReplFramingTest, MarkMustBeFortyBytes) {
  for (const size_t n : {size_t{0}, size_t{1}, size_t{39}, size_t{41}, size_t{80}, size_t{200}}) {
    SCOPED_TRACE(n);
    const std::string line = "$EOF:" + std::string(n, 'a');
    ExpectError("\n" + line + "\r\n", "protocol error at byte 6 of the reply: the EOF mark in '" +
                                          line.substr(0, 100) + (line.size() > 100 ? "..." : "") +
                                          "' is " + std::to_string(n) + " bytes, expected 40");
  }
}

TEST(ReplFramingTest, LinesMustEndInCrlf) {
  ExpectError("$5\nhello",
              "protocol error at byte 2 of the reply: line '$5' ends in a bare '\\n', not CRLF");
  ExpectError(
      "-ERR x\n",
      "protocol error at byte 6 of the reply: line '-ERR x' ends in a bare '\\n', not CRLF");
}

// ---- Randomized round trips: random preambles, payloads full of mark fragments, chunkings.

TEST(ReplFramingTest, RandomizedRoundTrips) {
  std::mt19937 rng(20240601);
  for (int iteration = 0; iteration < 300; ++iteration) {
    SCOPED_TRACE(iteration);
    Preamble p;
    p.keepalives_before = static_cast<int>(rng() % 3);
    p.fullresync = rng() % 2 == 0;
    p.offset = rng();
    p.keepalives_between = p.fullresync ? static_cast<int>(rng() % 3) : 0;
    // Payload: random bytes and pieces of the mark (never all of it), so near misses abound.
    std::string payload;
    const size_t parts = rng() % 12;
    for (size_t i = 0; i < parts; ++i) {
      if (rng() % 2 == 0) {
        payload += RandomBytes(rng() % 200, static_cast<uint32_t>(rng()));
      } else {
        const size_t len = 1 + rng() % 39;
        const size_t from = rng() % (ReplFraming::kMarkSize - len + 1);
        payload += kMark.substr(from, len);
      }
    }
    if (payload.find(kMark) != std::string::npos) continue;
    const bool mark = rng() % 2 == 0;
    const std::string stream = mark ? MarkStream(p, payload) : LengthStream(p, payload);
    const Outcome o = RunPipeline(stream, RandomSizes(stream.size(), static_cast<uint32_t>(rng())),
                                  payload.size());
    ASSERT_EQ(o.status, Status::kDone) << o.framing.error();
    EXPECT_TRUE(o.payload == payload);
    EXPECT_EQ(o.dropped, mark ? std::string(kMark) : "");
    EXPECT_EQ(o.framing.keepalives(), p.keepalives_before + p.keepalives_between);
    if (p.fullresync) {
      EXPECT_EQ(o.framing.offset(), p.offset);
    }
  }
}

}  // namespace
}  // namespace finalsnap::detail
