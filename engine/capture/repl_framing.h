// ReplFraming: the parser for what a Redis or Valkey server sends on a replication connection
// after the client wrote `SYNC\r\n` or `PSYNC ? -1\r\n` (REDIS-FACTS §1.4). It does no I/O.
//
//   reply    = *"\n" [ "+FULLRESYNC " replid " " offset "\r\n" *"\n" ] bulk
//   bulk     = "$" length "\r\n" <length payload bytes>              ; disk target, no CRLF after
//            | "$EOF:" mark "\r\n" <payload bytes> mark               ; diskless target
//   replid   = 40 hex digits;  mark = 40 bytes;  length = decimal, at most 2^50
//   a line starting with '-' instead is the server refusing (-ERR, -NOMASTERLINK, ...)
//
// Zero copy. Feed() never copies payload for output: it tells the caller which part of the span
// it was given is payload (FeedResult), and the caller passes that range on by reference. In mark
// mode the last 40 bytes seen may be the mark, so they must not be passed on yet; confirmed()
// says how many payload bytes, counted from the first, are certainly payload. The caller's loop:
//
//   ReplFraming framing;
//   for (each pooled buffer `buf` read from the socket) {
//     ReplFraming::FeedResult r = framing.Feed(buf);
//     if (r.status == ReplFraming::Status::kError) fail(framing.error());
//     pending.push_back({buf, r.payload_offset, r.payload_size});    // a reference, not a copy
//     pass on the first `framing.confirmed() - passed_on` pending bytes, release their buffers;
//     if (r.status == ReplFraming::Status::kDone) drop the rest of `pending` (the mark, if any);
//   }
//
// The parser keeps a private copy of at most 78 recent payload bytes (the 39 before the current
// span and the first 39 of it), only to find a mark that straddles two spans; copied() counts
// those bytes. Length mode copies nothing.
//
// The end in mark mode is the FIRST place the mark occurs in the payload stream, whatever the
// chunking. The server sends nothing after the mark until the client sends REPLCONF ACK
// (REDIS-FACTS §1.5), so on a real connection the first occurrence is the end of the stream, and
// bytes after it in the same span are reported as `trailing`. (A payload that happened to hold
// the 40 random hex characters would end early; the RDB validator then reports a truncated RDB,
// so this can fail a snapshot but never pass a wrong one.)
//
// Errors are sticky: after the first, every Feed() returns kError and error() keeps the message.
// After kDone, every Feed() returns kDone with all its bytes trailing.
//
// Internals (repl_framing.cc): a table of named states; the preamble is read one line at a
// time into a buffer bounded at 1024 bytes; the mark is found with a Horspool search on byte
// pairs, which skips about 39 bytes per step on random and on hex payload alike.
#ifndef FINALSNAP_ENGINE_REPL_FRAMING_H_
#define FINALSNAP_ENGINE_REPL_FRAMING_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace finalsnap::detail {

class ReplFraming {
 public:
  enum class Status { kNeedMore, kDone, kError };
  enum class Mode { kUnknown, kLength, kEofMark };

  // The three parts of a fed span, in order: preamble (bytes before payload_offset), payload,
  // trailing. They always add up to the span's size.
  struct FeedResult {
    Status status = Status::kNeedMore;
    // Where payload bytes begin inside the fed span (after any preamble). When the span holds no
    // payload this is where the payload would have begun: the end of the preamble.
    size_t payload_offset = 0;
    // How many bytes of the span, from payload_offset, are payload or possibly payload: in mark
    // mode this includes bytes that may turn out to be (or, at kDone, are) the mark.
    size_t payload_size = 0;
    // Bytes of the span after the end of the payload (and of the mark). Never payload. Non-zero
    // only with kDone; on kError the whole span counts as preamble.
    size_t trailing = 0;
  };

  // The mark's length in `$EOF:<mark>` (REDIS-FACTS §1.4: 40 chars of [0-9a-f]).
  static constexpr size_t kMarkSize = 40;
  // The longest preamble line accepted, not counting its CRLF. Real lines are under 100 bytes.
  static constexpr size_t kMaxLineBytes = 1024;
  // The largest `$<length>` accepted (1 PiB): anything above is a corrupt stream, not an RDB.
  static constexpr uint64_t kMaxLength = uint64_t{1} << 50;

  // Parses the next bytes of the reply. Any chunking works, down to one byte (or none) per call.
  FeedResult Feed(std::span<const uint8_t> in);

  // Payload bytes that are CERTAINLY payload so far, counted from the first payload byte. Length
  // mode: every payload byte seen. Mark mode: those seen minus the 40 that could be the mark; at
  // kDone that is the exact payload length (the mark excluded). Never decreases, and never
  // exceeds the real payload length.
  uint64_t confirmed() const;
  // Payload bytes seen so far, including (in mark mode) bytes that are or may be the mark.
  uint64_t seen() const { return seen_; }

  Mode mode() const { return mode_; }
  // The `$<length>`, once its line has been read; nullopt in mark mode.
  std::optional<uint64_t> declared_length() const { return declared_length_; }
  // From `+FULLRESYNC <replid> <offset>`: empty and nullopt until it arrives (SYNC never sends
  // it; the RDB's aux fields `repl-id` and `repl-offset` carry the same point then).
  const std::string& replid() const { return replid_; }
  std::optional<uint64_t> offset() const { return offset_; }
  // Keepalive `\n` bytes skipped before the `$` line.
  int keepalives() const { return keepalives_; }

  // Empty until kError. Says what and where, for example
  //   "protocol error at byte 17 of the reply: expected '$', '-' or a keepalive newline, got 'x'"
  //   "server refused: -NOMASTERLINK Can't SYNC while not connected with my master"
  // Byte positions count from 0 at the first byte after SYNC/PSYNC.
  const std::string& error() const { return error_; }
  // True when the error is a '-' reply from the server (the server refused; retrying later or
  // elsewhere may work), false for a malformed stream.
  bool server_error() const { return server_error_; }

  // Bytes copied into the private mark window (never output). 0 in length mode; at most
  // 2 * 39 per Feed() in mark mode. The zero-copy tests and the benchmark read it.
  uint64_t copied() const { return copied_; }
  // The current state's name ("line-start", "line", "length-payload", "mark-payload", "done",
  // "error"), for traces.
  std::string_view state_name() const;

 private:
  enum class State : uint8_t { kLineStart, kLine, kLengthPayload, kMarkPayload, kDone, kError };
  // One step consumes bytes from in[pos] on and returns the position after them. Only the
  // payload steps write `out` (the payload range of this span).
  using Step = size_t (ReplFraming::*)(std::span<const uint8_t> in, size_t pos, FeedResult& out);
  struct StateInfo {
    Step step;  // null for the final states
    const char* name;
  };
  static const StateInfo kStates[];

  size_t StepLineStart(std::span<const uint8_t> in, size_t pos, FeedResult& out);
  size_t StepLine(std::span<const uint8_t> in, size_t pos, FeedResult& out);
  size_t StepLengthPayload(std::span<const uint8_t> in, size_t pos, FeedResult& out);
  size_t StepMarkPayload(std::span<const uint8_t> in, size_t pos, FeedResult& out);

  // Acts on a complete line (CRLF stripped) that ended just before in[pos].
  void EndLine(size_t pos, FeedResult& out);
  void EndStatusLine();
  void EndBulkLine(size_t pos, FeedResult& out);

  // Returns the end (exclusive) within `s` of the first mark that ends in `s`, counting a mark
  // that began in earlier spans; or npos, after remembering the last 39 bytes for the next span.
  size_t FindMarkEnd(std::span<const uint8_t> s);
  // Horspool search for the mark in [first, first + size); the index of the first match or npos.
  size_t Search(const uint8_t* first, size_t size) const;

  void Fail(uint64_t at, std::string_view what);

  State state_ = State::kLineStart;
  Mode mode_ = Mode::kUnknown;
  uint64_t reply_bytes_ = 0;  // bytes of the reply consumed by earlier Feed() calls
  std::string line_;          // the preamble line being read, up to kMaxLineBytes + 1 bytes
  uint64_t line_start_ = 0;   // its position in the reply
  int keepalives_ = 0;
  std::string replid_;
  std::optional<uint64_t> offset_;
  std::optional<uint64_t> declared_length_;
  uint64_t seen_ = 0;

  // Mark mode. shift_ is the search's skip table (Horspool on byte pairs): how far it may move
  // on when the candidate window's last two bytes hash to h; last_pair_ is the mark's own.
  std::array<uint8_t, kMarkSize> mark_{};
  std::array<uint8_t, 256> shift_{};
  uint8_t last_pair_ = 0;
  // The last window_len_ (< 40) payload bytes, followed during FindMarkEnd by the first 39 bytes
  // of the new span, so that a mark split across spans is found in one small search.
  std::array<uint8_t, 2 * (kMarkSize - 1)> window_{};
  size_t window_len_ = 0;
  uint64_t copied_ = 0;

  std::string error_;
  bool server_error_ = false;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_REPL_FRAMING_H_
