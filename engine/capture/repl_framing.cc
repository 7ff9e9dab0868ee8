// The replication framing parser (repl_framing.h): a table of named states.
//
// Reading guide:
//   - kStates: every place the parser can stop between two Feed() calls, with its step.
//   - The preamble is lines: StepLineStart skips keepalive newlines and checks a line's first
//     byte; StepLine gathers the line up to its CRLF (bounded by kMaxLineBytes) and EndLine acts
//     on it: '-' is the server refusing, '+' must be +FULLRESYNC, '$' picks the payload mode.
//   - StepLengthPayload counts down the declared length; nothing is copied.
//   - StepMarkPayload searches each span for the mark (FindMarkEnd). A mark can straddle spans,
//     so the last 39 bytes of payload are kept in a small window and searched together with the
//     first 39 bytes of the next span; the span itself is searched in place.
//
// Why Horspool on byte pairs for the mark: the mark is 40 bytes and every feed is searched once,
// so a search that skips is what keeps payload throughput at memory speed. The skip is decided by
// the last two bytes of the candidate window (hashed into a 256-entry table): the mark has 38
// pairs before its last, so most windows end in a pair that is not in the mark and the search
// moves on 39 bytes after one table lookup. Deciding on one byte (plain Horspool) skips as far on
// random bytes but only about a third as far on hex text, since every hex byte is in the mark.
// std::boyer_moore_horspool_searcher is single-byte and keeps a pointer to the pattern (so the
// parser could not be copied); memmem is not standard C++. Scanning each position with a rolling
// 40-byte window (what redis-cli does) costs a compare per byte.
#include "repl_framing.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace finalsnap::detail {
namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);

// The longest mark prefix that can sit before a span: a whole mark there would have been found.
constexpr size_t kTailSize = ReplFraming::kMarkSize - 1;

constexpr std::string_view kFullResync = "+FULLRESYNC ";
constexpr std::string_view kContinue = "+CONTINUE";
constexpr std::string_view kEofPrefix = "$EOF:";
constexpr size_t kReplidSize = 40;
// The replication offset is a long long on the server.
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(INT64_MAX);

// Names one byte for an error message: 'x' when printable, else its escape and hex value.
std::string DescribeByte(uint8_t b) {
  char buf[32];
  if (b > 0x20 && b < 0x7f) {
    std::snprintf(buf, sizeof(buf), "'%c'", b);
  } else if (b == '\r') {
    std::snprintf(buf, sizeof(buf), "'\\r' (0x0d)");
  } else {
    std::snprintf(buf, sizeof(buf), "byte 0x%02x", b);
  }
  return buf;
}

// Quotes peer text for an error message: printable ASCII as is, other bytes as \xNN, and text
// past `limit` bytes cut, so that a garbage line cannot flood a log.
std::string Sanitize(std::string_view s, size_t limit) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b >= 0x20 && b < 0x7f) {
      out += static_cast<char>(b);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", b);
      out += buf;
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

// 100 bytes shows any well-formed preamble line whole (+FULLRESYNC is at most 72).
std::string Quote(std::string_view s) { return "'" + Sanitize(s, 100) + "'"; }

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value of an all-digit string, or nullopt when it exceeds `max`. Stops before overflowing,
// so any number of digits is safe.
std::optional<uint64_t> ParseBounded(std::string_view digits, uint64_t max) {
  uint64_t value = 0;
  for (const char c : digits) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (value > (max - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  return value;
}

// The search's hash of two adjacent bytes: two cheap operations, since the hash is on the
// search's critical path (load, hash, look up the shift, move on). It gives the 256 lowercase-hex
// pairs (the mark's alphabet) 204 distinct values, so even a payload of hex text mostly misses
// the mark's pairs and skips 39 bytes. A hash that separates all 256 pairs measured slower.
inline uint8_t PairHash(uint8_t a, uint8_t b) { return static_cast<uint8_t>((a << 3) ^ b); }

}  // namespace

const ReplFraming::StateInfo ReplFraming::kStates[] = {
    {&ReplFraming::StepLineStart, "line-start"},
    {&ReplFraming::StepLine, "line"},
    {&ReplFraming::StepLengthPayload, "length-payload"},
    {&ReplFraming::StepMarkPayload, "mark-payload"},
    {nullptr, "done"},
    {nullptr, "error"},
};

std::string_view ReplFraming::state_name() const {
  return kStates[static_cast<size_t>(state_)].name;
}

uint64_t ReplFraming::confirmed() const {
  // In mark mode this is also exact at kDone: the 40 bytes held back are then the mark itself.
  if (mode_ == Mode::kEofMark) return seen_ > kMarkSize ? seen_ - kMarkSize : 0;
  return seen_;
}

ReplFraming::FeedResult ReplFraming::Feed(std::span<const uint8_t> in) {
  FeedResult out;
  if (state_ == State::kError) {
    out.status = Status::kError;
    out.payload_offset = in.size();
    return out;
  }
  if (state_ == State::kDone) {
    out.status = Status::kDone;
    out.trailing = in.size();
    return out;
  }

  out.payload_offset = kNpos;
  size_t pos = 0;
  // A plain call through the table's member pointer: GCC 12's UBSan instrumentation of
  // `(this->*table[i].step)(...)` corrupts the call, so the pointer is loaded first.
  while (pos < in.size()) {
    const Step step = kStates[static_cast<size_t>(state_)].step;
    if (step == nullptr) break;
    pos = (this->*step)(in, pos, out);
  }

  if (state_ == State::kError) {
    out.status = Status::kError;
    out.payload_offset = in.size();
    out.payload_size = 0;
    out.trailing = 0;
    return out;
  }
  // No payload step ran: the span was all preamble, or it ended with `$0\r\n` (EndBulkLine set
  // the offset then).
  if (out.payload_offset == kNpos) out.payload_offset = pos;
  out.trailing = in.size() - pos;
  out.status = state_ == State::kDone ? Status::kDone : Status::kNeedMore;
  reply_bytes_ += pos;
  return out;
}

size_t ReplFraming::StepLineStart(std::span<const uint8_t> in, size_t pos, FeedResult& /*out*/) {
  const uint8_t b = in[pos];
  if (b == '\n') {
    // The server's keepalive while the fork has not started or a disk save is running.
    ++keepalives_;
    return pos + 1;
  }
  // After +FULLRESYNC only the bulk (or a refusal) may come; before it, any of the three.
  const bool status_allowed = !offset_.has_value();
  if (b == '$' || b == '-' || (b == '+' && status_allowed)) {
    line_.clear();
    line_start_ = reply_bytes_ + pos;
    state_ = State::kLine;
    return pos;
  }
  Fail(reply_bytes_ + pos,
       std::string(status_allowed ? "expected '+', '-', '$'" : "expected '$', '-'") +
           " or a keepalive newline, got " + DescribeByte(b));
  return in.size();
}

size_t ReplFraming::StepLine(std::span<const uint8_t> in, size_t pos, FeedResult& out) {
  const uint8_t* begin = in.data() + pos;
  const size_t avail = in.size() - pos;
  const auto* newline = static_cast<const uint8_t*>(std::memchr(begin, '\n', avail));
  const size_t take = newline != nullptr ? static_cast<size_t>(newline - begin) : avail;
  // The line holds its '\r' until the '\n' comes, hence the + 1.
  if (line_.size() + take > kMaxLineBytes + 1) {
    std::string head = line_.substr(0, 16);
    head.append(reinterpret_cast<const char*>(begin), std::min(take, 16 - head.size()));
    Fail(line_start_ + kMaxLineBytes + 1,
         "line longer than " + std::to_string(kMaxLineBytes) + " bytes (it began at byte " +
             std::to_string(line_start_) + " with " + Quote(head) + ")");
    return in.size();
  }
  line_.append(reinterpret_cast<const char*>(begin), take);
  if (newline == nullptr) return in.size();

  if (line_.empty() || line_.back() != '\r') {
    Fail(reply_bytes_ + pos + take, "line " + Quote(line_) + " ends in a bare '\\n', not CRLF");
    return in.size();
  }
  line_.pop_back();
  const size_t after = pos + take + 1;
  EndLine(after, out);
  return after;
}

void ReplFraming::EndLine(size_t pos, FeedResult& out) {
  switch (line_[0]) {
    case '-':
      // The server's own words, kept whole: they say why (no master link, fork failed, ACL).
      error_ = "server refused: " + Sanitize(line_, kMaxLineBytes);
      server_error_ = true;
      state_ = State::kError;
      return;
    case '+':
      EndStatusLine();
      return;
    default:
      EndBulkLine(pos, out);
      return;
  }
}

void ReplFraming::EndStatusLine() {
  const std::string_view line(line_);
  if (line.starts_with(kContinue) &&
      (line.size() == kContinue.size() || line[kContinue.size()] == ' ')) {
    Fail(line_start_, "the server offered a partial resync (" + Quote(line) +
                          ") but a full resync was requested");
    return;
  }
  if (!line.starts_with(kFullResync)) {
    Fail(line_start_, "expected +FULLRESYNC, got " + Quote(line));
    return;
  }
  const std::string_view rest = line.substr(kFullResync.size());
  const std::string_view replid = rest.substr(0, std::min(rest.size(), kReplidSize));
  if (replid.size() != kReplidSize || !std::all_of(replid.begin(), replid.end(), IsHex) ||
      rest.size() == kReplidSize || rest[kReplidSize] != ' ') {
    Fail(line_start_ + kFullResync.size(),
         "malformed +FULLRESYNC line " + Quote(line) +
             ": expected a 40-hex-digit replication id and a space");
    return;
  }
  const std::string_view digits = rest.substr(kReplidSize + 1);
  const uint64_t digits_at = line_start_ + kFullResync.size() + kReplidSize + 1;
  if (!AllDigits(digits)) {
    Fail(digits_at, "malformed +FULLRESYNC line " + Quote(line) +
                        ": the offset is not a non-negative decimal number");
    return;
  }
  const std::optional<uint64_t> offset = ParseBounded(digits, kMaxOffset);
  if (!offset.has_value()) {
    Fail(digits_at, "malformed +FULLRESYNC line " + Quote(line) + ": the offset is out of range");
    return;
  }
  replid_ = std::string(replid);
  offset_ = *offset;
  state_ = State::kLineStart;
}

void ReplFraming::EndBulkLine(size_t pos, FeedResult& out) {
  const std::string_view line(line_);
  if (line.starts_with(kEofPrefix)) {
    const std::string_view mark = line.substr(kEofPrefix.size());
    if (mark.size() != kMarkSize) {
      Fail(line_start_ + kEofPrefix.size(), "the EOF mark in " + Quote(line) + " is " +
                                                std::to_string(mark.size()) + " bytes, expected " +
                                                std::to_string(kMarkSize));
      return;
    }
    std::memcpy(mark_.data(), mark.data(), kMarkSize);
    // Horspool on byte pairs: a window whose last two bytes hash to h can move on until that
    // pair lines up with its last occurrence in the mark before the end, or by 39 when the pair
    // is not there (its second byte might still be the mark's first).
    shift_.fill(static_cast<uint8_t>(kMarkSize - 1));
    for (size_t j = 1; j + 1 < kMarkSize; ++j) {
      shift_[PairHash(mark_[j - 1], mark_[j])] = static_cast<uint8_t>(kMarkSize - 1 - j);
    }
    last_pair_ = PairHash(mark_[kMarkSize - 2], mark_[kMarkSize - 1]);
    mode_ = Mode::kEofMark;
    state_ = State::kMarkPayload;
    return;
  }

  const std::string_view digits = line.substr(1);
  const uint64_t digits_at = line_start_ + 1;
  if (digits.starts_with('-')) {
    Fail(digits_at, "negative bulk length in " + Quote(line));
    return;
  }
  if (!AllDigits(digits)) {
    Fail(digits_at, "the bulk length in " + Quote(line) + " is not a decimal number");
    return;
  }
  const std::optional<uint64_t> length = ParseBounded(digits, kMaxLength);
  if (!length.has_value()) {
    Fail(digits_at, "the bulk length in " + Quote(line) + " is above the limit of 2^50 bytes");
    return;
  }
  mode_ = Mode::kLength;
  declared_length_ = *length;
  if (*length == 0) {
    // An empty payload ends here; the step loop would not run again for it.
    out.payload_offset = pos;
    state_ = State::kDone;
    return;
  }
  state_ = State::kLengthPayload;
}

size_t ReplFraming::StepLengthPayload(std::span<const uint8_t> in, size_t pos, FeedResult& out) {
  const uint64_t left = *declared_length_ - seen_;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(left, in.size() - pos));
  out.payload_offset = pos;
  out.payload_size = take;
  seen_ += take;
  if (seen_ == *declared_length_) state_ = State::kDone;
  return pos + take;
}

size_t ReplFraming::StepMarkPayload(std::span<const uint8_t> in, size_t pos, FeedResult& out) {
  const std::span<const uint8_t> span = in.subspan(pos);
  const size_t end = FindMarkEnd(span);
  const size_t take = end == kNpos ? span.size() : end;
  out.payload_offset = pos;
  out.payload_size = take;
  seen_ += take;
  if (end != kNpos) state_ = State::kDone;
  return pos + take;
}

size_t ReplFraming::FindMarkEnd(std::span<const uint8_t> s) {
  // A mark that began in earlier spans ends within the first 39 bytes of this one, before any
  // mark that lies wholly in it, so the junction is searched first.
  if (window_len_ > 0) {
    const size_t head = std::min(s.size(), kTailSize);
    std::memcpy(window_.data() + window_len_, s.data(), head);
    copied_ += head;
    const size_t at = Search(window_.data(), window_len_ + head);
    if (at != kNpos) return at + kMarkSize - window_len_;
  }
  const size_t at = Search(s.data(), s.size());
  if (at != kNpos) return at + kMarkSize;

  // Not found: keep the last 39 payload bytes (or all of them, if fewer) for the next span.
  if (s.size() >= kTailSize) {
    std::memcpy(window_.data(), s.data() + s.size() - kTailSize, kTailSize);
    window_len_ = kTailSize;
    copied_ += kTailSize;
  } else if (window_len_ == 0) {
    std::memcpy(window_.data(), s.data(), s.size());
    window_len_ = s.size();
    copied_ += s.size();
  } else {
    // The window already holds the old tail followed by all of `s`.
    const size_t total = window_len_ + s.size();
    const size_t keep = std::min(total, kTailSize);
    std::memmove(window_.data(), window_.data() + total - keep, keep);
    window_len_ = keep;
    copied_ += keep;
  }
  return kNpos;
}

size_t ReplFraming::Search(const uint8_t* first, size_t size) const {
  size_t i = 0;
  while (size - i >= kMarkSize) {
    const uint8_t* w = first + i;
    const uint8_t h = PairHash(w[kMarkSize - 2], w[kMarkSize - 1]);
    if (h == last_pair_ && std::memcmp(w, mark_.data(), kMarkSize) == 0) return i;
    i += shift_[h];
  }
  return kNpos;
}

void ReplFraming::Fail(uint64_t at, std::string_view what) {
  error_ = "protocol error at byte " + std::to_string(at) + " of the reply: ";
  error_ += what;
  state_ = State::kError;
}

}  // namespace finalsnap::detail
