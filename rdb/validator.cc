// The streaming RDB validator: one state machine, one primitive per state.
//
// Reading guide:
//   - State and kStateNames: every place the parser can stop between two Feed() calls.
//   - Take / ReadLength / ReadStringHeader: the primitives. Each gets all its bytes or parks the
//     partial bytes in carry_ (at most 32) and reports kMore; nothing else is buffered.
//   - Strings are one sub-machine (kStringHeader -> kStringBody | kStringInt | kLzf*) entered with
//     BeginString(role, next): the role says what to keep (nothing, a capture, a blob header to
//     check) and `next` is the state to resume when the string ends. In deep mode a blob string
//     is also held whole (up to Options::max_deep_blob) and proved by blob.h at its end.
//   - Collections are driven by a short per-type program of element steps (kElementPrograms), so
//     a hash, a zset or a quicklist is the same loop with a different table row.
//   - Streams and module values have their own states: their nesting does not fit a flat program.
//
// The CRC-64 is a tap over the input, not parser code: Feed() hashes each chunk up to where the
// parser stopped, and the EOF opcode closes it.
#include "finalsnap/rdb/validator.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "blob.h"
#include "finalsnap/rdb/crc64.h"
#include "lzf.h"
#include "whole_record.h"

namespace finalsnap::rdb {
namespace {

enum class State : uint8_t {
  kMagic,
  kOpcode,
  kAuxKey,
  kAuxValue,
  kAuxDone,
  kSelectDb,
  kResizeDb,
  kSkipLengths,
  kSkipBytes,
  kExpireMs,
  kExpireSeconds,
  kIdle,
  kFreq,
  kModuleAuxId,
  kModuleAuxWhenOpcode,
  kModuleAuxWhen,
  kModuleId,
  kModuleOpcode,
  kModuleInteger,
  kModuleFloat,
  kModuleDouble,
  kFunction,
  kFunctionPreGaName,
  kFunctionPreGaEngine,
  kFunctionPreGaHasDesc,
  kFunctionPreGaDesc,
  kFunctionPreGaCode,
  kSlotInfo,
  kSlotImportName,
  kSlotImportCount,
  kKey,
  kValue,
  kValueEnd,
  kMinExpire,
  kCount,
  kElement,
  kStreamNodeCount,
  kStreamNode,
  kStreamNodeListpack,
  kStreamGroupCount,
  kStreamGroup,
  kStreamGroupMeta,
  kStreamPelCount,
  kStreamPelEntry,
  kStreamPelDeliveryCount,
  kStreamConsumerCount,
  kStreamConsumer,
  kStreamConsumerTimes,
  kStreamConsumerPelCount,
  kStreamConsumerPelId,
  kStringHeader,
  kStringInt,
  kStringBody,
  kLzfCompressedLength,
  kLzfExpandedLength,
  kLzfBody,
  kChecksum,
  kDone,
  kError,
  kCount_,
};

constexpr std::array<std::string_view, static_cast<size_t>(State::kCount_)> kStateNames = {
    "magic",
    "opcode",
    "aux-key",
    "aux-value",
    "aux-value",
    "select-db",
    "resize-db",
    "lengths",
    "fixed-bytes",
    "expire-time-ms",
    "expire-time",
    "idle",
    "freq",
    "module-aux-id",
    "module-aux-when-opcode",
    "module-aux-when",
    "module-id",
    "module-opcode",
    "module-integer",
    "module-float",
    "module-double",
    "function",
    "function-name",
    "function-engine",
    "function-has-description",
    "function-description",
    "function-code",
    "slot-info",
    "slot-import-name",
    "slot-import-ranges",
    "key",
    "value",
    "value",
    "hash-min-expire",
    "element-count",
    "element",
    "stream-listpack-count",
    "stream-node-key",
    "stream-listpack",
    "stream-group-count",
    "stream-group-name",
    "stream-group-ids",
    "stream-pel-count",
    "stream-pel-entry",
    "stream-pel-delivery-count",
    "stream-consumer-count",
    "stream-consumer-name",
    "stream-consumer-times",
    "stream-consumer-pel-count",
    "stream-consumer-pel-id",
    "string-header",
    "string-int",
    "string-body",
    "lzf-compressed-length",
    "lzf-expanded-length",
    "lzf-body",
    "checksum",
    "done",
    "error",
};

// What a string is for: whether any of its bytes are kept or checked.
enum class Role : uint8_t {
  kSkip,
  kKey,        // kept (capped) for diagnostics
  kCapture,    // kept (capped) for the report: AUX fields
  kNodeKey,    // stream node master ID: exactly 16 bytes
  kPlainNode,  // quicklist PLAIN node: in deep mode, not empty
  kMember,     // set member, zset member or hash field: in deep mode, held for the duplicate check
  kZiplist,    // blob headers checked against the string length (deep mode: the whole blob)
  kListpack,
  kIntset,
  kZipmap,
};

// One step of a collection element.
enum class Step : uint8_t {
  kString,     // a member, field or value
  kZiplist,    // a ziplist blob (quicklist v1 node)
  kLength,     // a length (a hash field TTL)
  kFixed8,     // 8 raw bytes (a binary double, an expire time)
  kTextDouble, // zset v1 score: 1 length byte, then that many ASCII bytes (253..255: no bytes)
  kContainer,  // quicklist v2 node container: 1 = plain, 2 = packed (listpack)
  kNode,       // the quicklist v2 node itself, as its container said
};

struct ElementProgram {
  std::array<Step, 3> steps;
  uint8_t size;
};

constexpr ElementProgram kOneString{{Step::kString}, 1};
constexpr ElementProgram kZsetV1{{Step::kString, Step::kTextDouble}, 2};
constexpr ElementProgram kZsetV2{{Step::kString, Step::kFixed8}, 2};
constexpr ElementProgram kHashPair{{Step::kString, Step::kString}, 2};
constexpr ElementProgram kHashWithTtl{{Step::kLength, Step::kString, Step::kString}, 3};
constexpr ElementProgram kValkeyHash2{{Step::kString, Step::kString, Step::kFixed8}, 3};
constexpr ElementProgram kQuicklist{{Step::kZiplist}, 1};
constexpr ElementProgram kQuicklist2{{Step::kContainer, Step::kNode}, 2};

enum class Read : uint8_t { kOk, kMore, kBad };

constexpr size_t kCarrySize = 32;
constexpr size_t kBlobHeadSize = 10;
constexpr size_t kKeyShown = 128;
constexpr size_t kStreamIdSize = 16;

using detail::Le32;
using detail::Le64;

}  // namespace

class Validator::Impl {
 public:
  static constexpr size_t kSlice = size_t{4} << 10;
  static constexpr size_t kCacheLine = 64;

  explicit Impl(Options options) : options_(options) {
    capture_.reserve(options_.max_captured_string);
    lzf_input_.reserve(options_.max_captured_string);
    // Twice max_deep_blob: at 48 bytes of bookkeeping a field, the check then covers the
    // collections of short members that fill the held bytes.
    fields_.SetMemoryLimit(
        static_cast<size_t>(std::min<uint64_t>(options_.max_deep_blob, SIZE_MAX / 2) * 2));
  }

  // Large inputs are validated in slices of kSlice bytes, the next slice's cache lines
  // requested while this one is parsed: small keys make the parser jump from one record header to
  // the next, a cache miss each that no hardware prefetcher predicts, and without this the wait
  // for memory is most of a small key's cost. Feeding slices is what a caller feeding smaller
  // chunks does, so the verdicts are the same.
  Progress Feed(std::span<const uint8_t> data) {
    Progress progress = Progress::kNeedMore;
    for (size_t off = 0; off < data.size() || off == 0; off += kSlice) {
      const size_t n = std::min(kSlice, data.size() - off);
      const size_t next = std::min(kSlice, data.size() - off - n);
      for (size_t line = 0; line < next; line += kCacheLine) {
        __builtin_prefetch(data.data() + off + n + line);
      }
      progress = FeedSlice(data.subspan(off, n));
      if (progress == Progress::kError) break;
    }
    return progress;
  }

  Progress FeedSlice(std::span<const uint8_t> data) {
    if (state_ == State::kError) return Progress::kError;
    begin_ = p_ = data.data();
    end_ = p_ + data.size();
    crc_from_ = crc_open_ ? begin_ : nullptr;
    const Progress progress = Run();
    if (crc_from_ != nullptr) crc_ = Crc64(crc_, {crc_from_, p_});
    consumed_ += static_cast<uint64_t>(p_ - begin_);
    report_.bytes = consumed_;
    begin_ = p_ = end_ = nullptr;
    return progress;
  }

  Progress Finish() {
    if (state_ == State::kError) return Progress::kError;
    if (state_ == State::kDone) return Progress::kDone;
    prim_offset_ = consumed_;
    return Fail(Errc::kTruncated, "unexpected end of input");
  }

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  const Report& report() const { return report_; }
  const Diagnostic& diagnostic() const { return diagnostic_; }
  uint64_t offset() const { return consumed_ + static_cast<uint64_t>(p_ - begin_); }

 private:
  Progress Run();

  // --- primitives ---------------------------------------------------------------------------

  uint64_t Pos() const { return consumed_ + static_cast<uint64_t>(p_ - begin_); }

  // Returns `n` (<= kCarrySize) contiguous bytes and consumes them, or nullptr when the input ends
  // first; the partial bytes wait in carry_ for the next Feed().
  const uint8_t* Take(size_t n) {
    if (carry_n_ == 0) {
      prim_offset_ = Pos();
      if (static_cast<size_t>(end_ - p_) >= n) {
        const uint8_t* r = p_;
        p_ += n;
        return r;
      }
    }
    const size_t got = std::min(n - carry_n_, static_cast<size_t>(end_ - p_));
    std::memcpy(carry_.data() + carry_n_, p_, got);
    carry_n_ += got;
    p_ += got;
    if (carry_n_ < n) return nullptr;
    carry_n_ = 0;
    return carry_.data();
  }

  // The first byte of the next primitive, or -1 when there is none yet.
  int Peek() const {
    if (carry_n_ > 0) return carry_[0];
    return p_ < end_ ? *p_ : -1;
  }

  Read ReadLength(uint64_t& out) {
    if (carry_n_ == 0 && end_ - p_ >= 9) {
      prim_offset_ = Pos();
      const int n = LengthSize(*p_);
      if (n == 0) return Read::kBad;
      out = DecodeLength(p_);
      p_ += n;
      return Read::kOk;
    }
    const int first = Peek();
    if (first < 0) return Read::kMore;
    if (carry_n_ == 0) prim_offset_ = Pos();
    const int n = LengthSize(static_cast<uint8_t>(first));
    if (n == 0) return Read::kBad;
    const uint8_t* d = Take(static_cast<size_t>(n));
    if (d == nullptr) return Read::kMore;
    out = DecodeLength(d);
    return Read::kOk;
  }

  // Reads a length that must not be a special encoding. Returns false with the outcome in *result
  // (kNeedMore, or kError after failing) when it could not.
  bool Length(uint64_t& out, Progress* result, uint64_t limit, const char* what) {
    switch (ReadLength(out)) {
      case Read::kOk:
        if (out > limit) {
          *result = Fail(Errc::kCorrupt, std::string(what) + " " + std::to_string(out) +
                                             " exceeds the limit of " + std::to_string(limit));
          return false;
        }
        return true;
      case Read::kMore:
        *result = Progress::kNeedMore;
        return false;
      case Read::kBad:
        *result = Fail(Errc::kCorrupt, "invalid length encoding 0x" + Hex(Peek()));
        return false;
    }
    return false;
  }

  static std::string Hex(int byte) {
    static constexpr char kDigits[] = "0123456789abcdef";
    return {kDigits[(byte >> 4) & 15], kDigits[byte & 15]};
  }

  Progress Fail(Errc code, std::string message) {
    diagnostic_.code = code;
    diagnostic_.offset = prim_offset_;
    State shown = state_;
    std::string suffix;
    if (shown >= State::kStringHeader && shown <= State::kLzfBody) {
      suffix = std::string(" ") + std::string(kStateNames[static_cast<size_t>(shown)]);
      shown = string_owner_;
    } else if (shown == State::kSkipLengths) {
      shown = lengths_owner_;
    }
    diagnostic_.state = std::string(kStateNames[static_cast<size_t>(shown)]) + suffix;
    diagnostic_.message = std::move(message);
    if (in_key_) {
      diagnostic_.key = key_.substr(0, kKeyShown);
      diagnostic_.type = std::string(TypeName(report_.family, type_));
    }
    if (selected_db_) diagnostic_.db = db_index_;
    state_ = State::kError;
    return Progress::kError;
  }

  // --- strings ------------------------------------------------------------------------------

  void BeginString(Role role, State next) {
    string_role_ = role;
    string_next_ = next;
    string_owner_ = state_;
    state_ = State::kStringHeader;
  }

  bool Keeps() const { return string_role_ == Role::kKey || string_role_ == Role::kCapture; }
  bool IsBlob() const { return string_role_ >= Role::kZiplist; }

  void KeepBytes(const uint8_t* p, size_t n) {
    const size_t room = options_.max_captured_string - capture_.size();
    capture_.append(reinterpret_cast<const char*>(p), std::min(n, room));
  }

  Progress StringHeader() {
    const int first = Peek();
    if (first < 0) return Progress::kNeedMore;
    if ((first >> 6) == 3 && carry_n_ == 0) {
      prim_offset_ = Pos();
      ++p_;
      string_offset_ = prim_offset_;
      switch (first & 0x3f) {
        case encoding::kInt8:
        case encoding::kInt16:
        case encoding::kInt32:
          if (IsBlob() || string_role_ == Role::kNodeKey) {
            return Fail(Errc::kCorrupt, "an integer-encoded string where a blob is expected");
          }
          int_size_ = static_cast<uint8_t>(1u << (first & 0x3f));
          state_ = State::kStringInt;
          return Progress::kNeedMore;  // not returned to the caller: Run() continues
        case encoding::kLzf:
          state_ = State::kLzfCompressedLength;
          return Progress::kNeedMore;
        default:
          return Fail(Errc::kCorrupt, "unknown string encoding 0x" + Hex(first));
      }
    }
    Progress result;
    if (!Length(string_length_, &result, options_.max_string_length, "string length")) {
      return result;
    }
    string_offset_ = prim_offset_;
    string_left_ = string_length_;
    if (Keeps()) capture_.clear();
    held_ = Hold(string_length_);
    state_ = State::kStringBody;
    return StringBody();  // most strings end in the same chunk: finish them without a loop turn
  }

  Progress StringInt() {
    const uint8_t* d = Take(int_size_);
    if (d == nullptr) return Progress::kNeedMore;
    const int64_t v = int_size_ == 1   ? static_cast<int8_t>(d[0])
                      : int_size_ == 2 ? static_cast<int16_t>(d[0] | d[1] << 8)
                                       : static_cast<int32_t>(Le32(d));
    if (Keeps()) capture_ = std::to_string(v);
    if (string_role_ == Role::kMember && checking_members_) fields_.AddInteger(v, string_offset_);
    state_ = string_next_;
    return Progress::kNeedMore;
  }

  Progress StringBody() {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(string_left_, end_ - p_));
    if (n > 0 && string_role_ != Role::kSkip) {
      if (Keeps()) {
        KeepBytes(p_, n);
      } else if (IsBlob()) {
        const uint64_t pos = string_length_ - string_left_;
        if (pos < kBlobHeadSize) {
          const size_t k = std::min<size_t>(kBlobHeadSize - pos, n);
          std::memcpy(blob_head_.data() + pos, p_, k);
        }
        blob_last_ = p_[n - 1];
      }
      if (held_) held_bytes_.insert(held_bytes_.end(), p_, p_ + n);
    }
    p_ += n;
    string_left_ -= n;
    if (string_left_ > 0) return Progress::kNeedMore;
    return EndPlainString();
  }

  Progress EndPlainString() {
    const uint64_t len = string_length_;
    const uint8_t* h = blob_head_.data();
    const char* fault = nullptr;
    switch (string_role_) {
      case Role::kNodeKey:
        if (len != 16) fault = "stream node key is not 16 bytes";
        break;
      case Role::kPlainNode:
        // rdbLoadObject refuses a zero-length node (it would be an empty list element).
        if (options_.deep && len == 0) fault = "quicklist plain node is empty";
        break;
      case Role::kMember:
        EndMember();
        break;
      case Role::kZiplist:
        if (len < 11) {
          fault = "ziplist shorter than its header";
        } else if (Le32(h) != len) {
          fault = "ziplist header length differs from the string length";
        } else if (Le32(h + 4) >= len) {
          fault = "ziplist tail offset beyond its end";
        } else if (blob_last_ != 0xff) {
          fault = "ziplist does not end with 0xFF";
        }
        break;
      case Role::kListpack:
        if (len < 7) {
          fault = "listpack shorter than its header";
        } else if (Le32(h) != len) {
          fault = "listpack header length differs from the string length";
        } else if (blob_last_ != 0xff) {
          fault = "listpack does not end with 0xFF";
        }
        break;
      case Role::kIntset: {
        if (len < 8) {
          fault = "intset shorter than its header";
          break;
        }
        const uint32_t width = Le32(h);
        if (width != 2 && width != 4 && width != 8) {
          fault = "intset encoding is not 2, 4 or 8";
        } else if (8 + uint64_t{width} * Le32(h + 4) != len) {
          fault = "intset size differs from its header";
        }
        break;
      }
      case Role::kZipmap:
        if (len < 2) {
          fault = "zipmap shorter than its header";
        } else if (blob_last_ != 0xff) {
          fault = "zipmap does not end with 0xFF";
        }
        break;
      default:
        break;
    }
    if (fault != nullptr) {
      prim_offset_ = string_offset_;
      return Fail(Errc::kCorrupt, fault);
    }
    if (IsBlob()) return EndBlob();
    state_ = string_next_;
    return Progress::kNeedMore;
  }

  // Whether the string about to be read, of `size` bytes (`compressed` bytes for LZF), is held
  // whole in held_bytes_ for a deep check: a blob, from the start of the buffer, or the next member
  // of a collection checked for duplicates, after the members before it. The buffer is reserved
  // to Options::max_deep_blob on first use and never grows past it, so deep mode's memory stays
  // fixed whatever the file holds, and the members' bytes never move while they are referenced.
  bool Hold(uint64_t size, uint64_t compressed = 0) {
    // No string is longer than max_string_length, so a buffer of that size is always enough.
    const uint64_t limit = std::min(options_.max_deep_blob, options_.max_string_length);
    if (!options_.deep) return false;
    if (IsBlob()) {
      held_from_ = 0;
    } else if (string_role_ == Role::kMember && checking_members_) {
      held_from_ = held_bytes_.size();
    } else {
      return false;
    }
    if (held_from_ + size > limit || compressed > limit) {
      // Too large to hold: a blob gets only its header checks, a collection no duplicate check.
      if (string_role_ == Role::kMember) checking_members_ = false;
      return false;
    }
    if (held_bytes_.capacity() < limit) held_bytes_.reserve(static_cast<size_t>(limit));
    held_bytes_.resize(static_cast<size_t>(held_from_));
    return true;
  }

  // The end of a set member, zset member or hash field: remember it for the duplicate check.
  void EndMember() {
    if (!held_) return;
    held_ = false;
    fields_.AddBytes(held_bytes_.data() + held_from_, held_bytes_.size() - held_from_,
                     string_offset_);
  }

  // How the entries of the blob being read group, from the type of the value that holds it.
  detail::BlobShape Shape() const {
    switch (type_) {
      case type::kSetListpack:
        return detail::BlobShape::kSet;
      case type::kHashListpack:
      case type::kZsetListpack:
      case type::kHashZiplist:
      case type::kZsetZiplist:
        return detail::BlobShape::kPairs;
      case type::kHashListpackEx:
      case type::kHashListpackExPreGa:
        return detail::BlobShape::kTriplets;
      default:
        return detail::BlobShape::kList;  // list encodings, quicklist nodes
    }
  }

  bool IsQuicklist() const {
    return type_ == type::kListQuicklist || type_ == type::kListQuicklist2;
  }

  // rdbLoadObject reports an empty collection as an "empty key", which redis-check-rdb (it passes
  // no error pointer) turns into a failure. Redis never writes one: a key goes with its last
  // element. Only the types whose emptiness Redis 7.0 tests are listed; intsets and zipmaps fail
  // their own checks when empty, and a quicklist may hold empty nodes as long as not all are.
  bool EmptyBlobIsCorrupt() const {
    switch (type_) {
      case type::kListZiplist:
      case type::kZsetZiplist:
      case type::kHashZiplist:
      case type::kHashListpack:
      case type::kZsetListpack:
      case type::kSetListpack:
        return true;
      default:
        return false;
    }
  }

  bool EmptyCountIsCorrupt() const {
    switch (type_) {
      case type::kList:
      case type::kSet:
      case type::kZset:
      case type::kHash:
      case type::kZset2:
      case type::kListQuicklist:
      case type::kListQuicklist2:
        return true;
      default:
        return false;
    }
  }

  // The deep check of the blob held in held_bytes_, by its role; `entries` gets its entry count.
  const char* BlobFault(uint64_t* entries) {
    const std::span<const uint8_t> blob(held_bytes_);
    switch (string_role_) {
      case Role::kZiplist:
        return detail::ValidateZiplist(blob, Shape(), fields_, entries);
      case Role::kListpack:
        if (type_ == type::kStreamListpacks || type_ == type::kStreamListpacks2 ||
            type_ == type::kStreamListpacks3) {
          return detail::ValidateStreamListpack(blob);
        }
        return detail::ValidateListpack(blob, Shape(), fields_, entries);
      case Role::kIntset:
        return detail::ValidateIntset(blob, entries);
      case Role::kZipmap:
        return detail::ValidateZipmap(blob, fields_, entries);
      default:
        return nullptr;
    }
  }

  // The end of a blob string, plain or LZF, once its header checks passed: in deep mode, the
  // checks of the whole blob (when it was held) and of the value type around it. Faults are
  // reported at the blob's string offset.
  Progress EndBlob() {
    uint64_t entries = 1;  // a blob too large to hold is taken to be non-empty
    const char* fault = nullptr;
    if (held_) {
      held_ = false;
      fault = BlobFault(&entries);
      if (fault == nullptr && entries == 0 && EmptyBlobIsCorrupt()) {
        fault = "empty collection (Redis never writes one; redis-check-rdb rejects it)";
      }
    }
    if (fault != nullptr) {
      prim_offset_ = string_offset_;
      return Fail(Errc::kCorrupt, fault);
    }
    value_entries_ += entries;
    state_ = string_next_;
    return Progress::kNeedMore;
  }

  Progress LzfLengths(bool compressed) {
    Progress result;
    uint64_t v;
    if (!Length(v, &result, options_.max_string_length,
                compressed ? "LZF compressed length" : "LZF expanded length")) {
      return result;
    }
    if (compressed) {
      if (v == 0) return Fail(Errc::kCorrupt, "LZF string with no compressed bytes");
      lzf_compressed_ = v;
      state_ = State::kLzfExpandedLength;
      return Progress::kNeedMore;
    }
    const uint64_t minimum = string_role_ == Role::kZiplist   ? 11
                             : string_role_ == Role::kListpack ? 7
                             : string_role_ == Role::kIntset   ? 8
                             : string_role_ == Role::kZipmap   ? 2
                                                                : 0;
    if (v < minimum) return Fail(Errc::kCorrupt, "LZF blob expands to less than its header");
    if (string_role_ == Role::kNodeKey && v != 16) {
      return Fail(Errc::kCorrupt, "stream node key is not 16 bytes");
    }
    string_length_ = v;
    held_ = false;
    if (!options_.deep && !Keeps()) {
      // The CRC-64 proves these bytes; skip them like a plain string of the compressed size.
      string_role_ = Role::kSkip;
      string_length_ = string_left_ = lzf_compressed_;
      state_ = State::kStringBody;
      return StringBody();
    }
    lzf_.Begin(lzf_compressed_, v);
    if (Keeps()) {
      capture_.clear();
      lzf_input_.clear();
    }
    if (Hold(v, lzf_compressed_)) {
      // The compressed bytes are collected and expanded into held_bytes_ when the string ends.
      held_ = true;
      const auto reserve =
          static_cast<size_t>(std::min(options_.max_deep_blob, options_.max_string_length));
      if (lzf_input_.capacity() < reserve) lzf_input_.reserve(reserve);
      lzf_input_.clear();
    }
    state_ = State::kLzfBody;
    return Progress::kNeedMore;
  }

  Progress LzfBody() {
    const uint8_t* start = p_;
    p_ += lzf_.Feed(p_, static_cast<size_t>(end_ - p_));
    if (held_ || (Keeps() && lzf_compressed_ <= options_.max_captured_string)) {
      lzf_input_.append(reinterpret_cast<const char*>(start), static_cast<size_t>(p_ - start));
    }
    if (lzf_.error() != nullptr) {
      prim_offset_ = string_offset_;
      return Fail(Errc::kCorrupt, lzf_.error());
    }
    if (!lzf_.complete()) return Progress::kNeedMore;
    if (const char* fault = lzf_.Finish(); fault != nullptr) {
      prim_offset_ = string_offset_;
      return Fail(Errc::kCorrupt, fault);
    }
    if (held_) {
      held_bytes_.resize(static_cast<size_t>(held_from_ + string_length_));
      if (!detail::LzfDecompress(
              {reinterpret_cast<const uint8_t*>(lzf_input_.data()), lzf_input_.size()},
              std::span<uint8_t>(held_bytes_).subspan(static_cast<size_t>(held_from_)))) {
        // The checker above has proved the stream, so this is not expected to happen.
        prim_offset_ = string_offset_;
        return Fail(Errc::kCorrupt, "LZF blob does not expand to its declared length");
      }
    }
    if (Keeps()) {
      if (lzf_compressed_ <= options_.max_captured_string &&
          string_length_ <= options_.max_captured_string) {
        capture_.resize(string_length_);
        detail::LzfDecompress(
            {reinterpret_cast<const uint8_t*>(lzf_input_.data()), lzf_input_.size()},
            {reinterpret_cast<uint8_t*>(capture_.data()), capture_.size()});
      } else {
        capture_ = "(" + std::to_string(string_length_) + " bytes, LZF-compressed)";
      }
    }
    if (IsBlob()) return EndBlob();
    if (string_role_ == Role::kMember) EndMember();
    state_ = string_next_;
    return Progress::kNeedMore;
  }

  // --- records ------------------------------------------------------------------------------

  Progress Magic() {
    const uint8_t* m = Take(kMagicSize);
    if (m == nullptr) return Progress::kNeedMore;
    const std::string_view magic(reinterpret_cast<const char*>(m), kMagicSize);
    size_t digits_at;
    if (magic.starts_with(kRedisMagic)) {
      report_.family = Family::kRedis;
      digits_at = kRedisMagic.size();
    } else if (magic.starts_with(kValkeyMagic)) {
      report_.family = Family::kValkey;
      digits_at = kValkeyMagic.size();
    } else if (magic.starts_with("VKCS")) {
      return Fail(Errc::kUnsupported,
                  "Valkey compression-stream envelope (VKCS) around the RDB is not supported");
    } else {
      return Fail(Errc::kCorrupt, "wrong signature: not an RDB file (no REDIS or VALKEY magic)");
    }
    int version = 0;
    for (size_t i = digits_at; i < kMagicSize; ++i) {
      if (m[i] < '0' || m[i] > '9') return Fail(Errc::kCorrupt, "RDB version is not a number");
      version = version * 10 + (m[i] - '0');
    }
    report_.rdb_version = version;
    const bool valkey = report_.family == Family::kValkey;
    const int lo = valkey ? kMinValkeyVersion : kMinRedisVersion;
    const int hi = valkey ? kMaxValkeyVersion : kMaxRedisVersion;
    if (version < lo || version > hi) {
      return Fail(Errc::kUnsupported, "can't handle RDB format version " + std::to_string(version) +
                                          " (" + std::string(valkey ? "VALKEY" : "REDIS") +
                                          " magic; supported " + std::to_string(lo) + ".." +
                                          std::to_string(hi) + ")");
    }
    state_ = State::kOpcode;
    return Progress::kNeedMore;
  }

  bool Valkey() const { return report_.family == Family::kValkey; }
  int Version() const { return report_.rdb_version; }

  // Whether object type `t` may appear in this (family, version); fails the stream if not.
  Progress CheckType(uint8_t t) {
    if (t == type::kModulePreGa) {
      return Fail(Errc::kUnsupported, "pre-release module format (type 6) not supported");
    }
    int since = -1;  // the first RDB version that has type t, or -1 when unknown
    if (t == 8) {
      since = -1;  // never assigned
    } else if (t <= type::kStreamListpacks) {
      since = 1;
    } else if (t <= type::kStreamListpacks2) {
      since = 10;
    } else if (t <= type::kStreamListpacks3) {
      since = 11;
    } else if (!Valkey() && t <= type::kHashListpackEx) {
      since = 12;
    } else if (Valkey() && t == type::kValkeyHash2) {
      since = 80;
    } else if (Valkey() && t == 23 && Version() >= 81) {
      return Fail(Errc::kUnsupported, "Valkey PATH_HASH values (type 23) are not supported");
    }
    if (since < 0) return Fail(Errc::kCorrupt, "unknown record type " + std::to_string(t));
    if (!Valkey() && Version() < since) {
      return Fail(Errc::kCorrupt, "type " + std::to_string(t) + " (" +
                                      std::string(TypeName(report_.family, t)) +
                                      ") cannot appear in an RDB version " +
                                      std::to_string(Version()) + " file");
    }
    return Progress::kNeedMore;
  }

  Progress Opcode() {
    if (!expire_pending_) SkipWholeKeys();
    const uint8_t* b = Take(1);
    if (b == nullptr) return Progress::kNeedMore;
    const uint8_t op = *b;
    switch (op) {
      case opcode::kEof:
        // The CRC covers everything up to and including this byte.
        crc_ = Crc64(crc_, {crc_from_, p_});
        crc_from_ = nullptr;
        crc_open_ = false;
        report_.computed_crc = crc_;
        if (Version() < kFirstVersionWithChecksum) {
          report_.checksum = ChecksumVerdict::kAbsent;
          state_ = State::kDone;
        } else {
          state_ = State::kChecksum;
        }
        return Progress::kNeedMore;
      case opcode::kSelectDb:
        state_ = State::kSelectDb;
        return Progress::kNeedMore;
      case opcode::kResizeDb:
        state_ = State::kResizeDb;
        return Progress::kNeedMore;
      case opcode::kAux:
        state_ = State::kAuxKey;
        return Progress::kNeedMore;
      case opcode::kExpireTimeMs:
        state_ = State::kExpireMs;
        return Progress::kNeedMore;
      case opcode::kExpireTime:
        state_ = State::kExpireSeconds;
        return Progress::kNeedMore;
      case opcode::kIdle:
        state_ = State::kIdle;
        return Progress::kNeedMore;
      case opcode::kFreq:
        state_ = State::kFreq;
        return Progress::kNeedMore;
      case opcode::kModuleAux:
        ++report_.module_aux;
        state_ = State::kModuleAuxId;
        return Progress::kNeedMore;
      case opcode::kFunction2:
      case opcode::kFunctionPreGa:
        if (!Valkey() && Version() < 10) break;
        ++report_.functions;
        state_ = op == opcode::kFunction2 ? State::kFunction : State::kFunctionPreGaName;
        return Progress::kNeedMore;
      case opcode::kSlotInfo:
        if (!Valkey() && Version() < 12) break;
        ++report_.slot_info;
        state_ = State::kSlotInfo;
        return Progress::kNeedMore;
      case opcode::kConflicting243:
        if (!Valkey()) break;
        state_ = State::kSlotImportName;
        return Progress::kNeedMore;
      case opcode::kValkeyUpdate:
        if (!Valkey() || Version() < 81) break;
        return Fail(Errc::kUnsupported, "Valkey UPDATE records (opcode 242) are not supported");
      default:
        if (Progress p = CheckType(op); p == Progress::kError) return p;
        type_ = op;
        in_key_ = true;
        key_.clear();
        state_ = State::kKey;
        return Progress::kNeedMore;
    }
    return Fail(Errc::kCorrupt, "opcode " + std::to_string(op) +
                                    " cannot appear in an RDB version " +
                                    std::to_string(Version()) + " file");
  }

  Progress SkipLengths(uint64_t n, State next) {
    lengths_owner_ = state_;
    lengths_left_ = n;
    lengths_next_ = next;
    state_ = State::kSkipLengths;
    return Progress::kNeedMore;
  }

  Progress SkipBytes(uint64_t n, State next) {
    bytes_left_ = n;
    bytes_next_ = next;
    state_ = State::kSkipBytes;
    return Progress::kNeedMore;
  }

  void StartCollection(const ElementProgram& program, State after_count = State::kCount) {
    program_ = &program;
    step_ = 0;
    state_ = after_count;
  }

  // Starts reading the value of the key just read; state_ is kValue, the owner of value strings.
  Progress Value() {
    key_ = capture_;
    value_entries_ = 0;
    // Redis 7.0 refuses a set, zset or hash with a repeated member or field (it loads them into a
    // dictionary), and a zset with a NaN score. Deep mode checks these element by element, which
    // SkipWholeElements does not do.
    element_checks_ = options_.deep && (type_ == type::kSet || type_ == type::kZset ||
                                        type_ == type::kZset2 || type_ == type::kHash);
    checking_members_ = element_checks_;
    fields_.Clear();
    held_bytes_.clear();
    switch (type_) {
      case type::kString:
        BeginString(Role::kSkip, State::kValueEnd);
        break;
      case type::kList:
      case type::kSet:
        StartCollection(kOneString);
        break;
      case type::kZset:
        StartCollection(kZsetV1);
        break;
      case type::kZset2:
        StartCollection(kZsetV2);
        break;
      case type::kHash:
        StartCollection(kHashPair);
        break;
      case type::kListQuicklist:
        StartCollection(kQuicklist);
        break;
      case type::kListQuicklist2:
        StartCollection(kQuicklist2);
        break;
      case type::kModule2:
        state_ = State::kModuleId;
        module_next_ = State::kValueEnd;
        break;
      case type::kHashZipmap:
        BeginString(Role::kZipmap, State::kValueEnd);
        break;
      case type::kListZiplist:
      case type::kZsetZiplist:
      case type::kHashZiplist:
        BeginString(Role::kZiplist, State::kValueEnd);
        break;
      case type::kSetIntset:
        BeginString(Role::kIntset, State::kValueEnd);
        break;
      case type::kHashListpack:
      case type::kZsetListpack:
      case type::kSetListpack:
      case type::kHashListpackExPreGa:  // Valkey's 23 is refused by CheckType
        BeginString(Role::kListpack, State::kValueEnd);
        break;
      case type::kStreamListpacks:
      case type::kStreamListpacks2:
      case type::kStreamListpacks3:
        state_ = State::kStreamNodeCount;
        break;
      case 22:
        StartCollection(Valkey() ? kValkeyHash2 : kHashWithTtl);
        break;
      case type::kHashMetadata:
        StartCollection(kHashWithTtl, State::kMinExpire);
        break;
      case type::kHashListpackEx:
        state_ = State::kMinExpire;
        program_ = nullptr;
        break;
    }
    return Progress::kNeedMore;
  }

  // Called when a key's value has been read completely.
  Progress FinishKey() {
    if (current_db_ == nullptr) {
      auto it = report_.databases.find(db_index_);
      if (it == report_.databases.end()) {
        if (report_.databases.size() >= options_.max_databases) {
          return Fail(Errc::kUnsupported, "more than " + std::to_string(options_.max_databases) +
                                              " databases in one file");
        }
        it = report_.databases.emplace(db_index_, DbCounts{}).first;
      }
      current_db_ = &it->second;
    }
    ++current_db_->keys;
    if (expire_pending_) ++current_db_->expires;
    expire_pending_ = false;
    in_key_ = false;
    state_ = State::kOpcode;
    return Progress::kNeedMore;
  }

  // The fast path's view of the chunk at hand (whole_record.h).
  detail::WholeRecords Whole() const {
    return detail::WholeRecords(end_, options_, Valkey(), Version());
  }

  // Fast path for whole keys in the current chunk ([EXPIRETIME_MS] type key value) whose values
  // WholeRecords::SkipValue takes; the same contract as SkipWholeElements below.
  void SkipWholeKeys() {
    const detail::WholeRecords whole = Whole();
    while (carry_n_ == 0 && end_ - p_ >= 3) {
      const uint8_t* q = p_;
      bool expire = false;
      if (*q == opcode::kExpireTimeMs) {
        if (end_ - q < 12) return;
        q += 9;
        expire = true;
      }
      const uint8_t t = *q;
      if (t != type::kString && (t < type::kHashListpack || t > type::kSetListpack)) return;
      ++q;
      if (!whole.SkipString(q, /*lzf=*/false) || !whole.SkipValue(t, q)) return;
      if (current_db_ == nullptr) return;  // the first key of a database takes the slow path
      ++current_db_->keys;
      if (expire) ++current_db_->expires;
      p_ = q;
    }
  }

  // Fast path for whole elements that lie in the current chunk: skips them in a tight loop with
  // no state changes. It decides nothing the state machine would not: on anything unusual
  // (a carry, a blob to check, a string to keep, a bad encoding, the chunk's end) it stops before
  // the element and the states below take over from the same byte, which also report errors.
  // Tests feed every input whole and byte by byte, so both paths are held to the same verdicts.
  void SkipWholeElements() {
    if (element_checks_) return;
    const ElementProgram& prog = *program_;
    const detail::WholeRecords whole = Whole();
    while (carry_n_ == 0 && step_ == 0 && elements_left_ > 0) {
      const uint8_t* q = p_;
      for (uint8_t i = 0; i < prog.size; ++i) {
        if (q >= end_) return;
        switch (prog.steps[i]) {
          case Step::kString:
            if (!whole.SkipString(q)) return;
            break;
          case Step::kLength:
            if (!whole.SkipLength(q, UINT64_MAX)) return;
            break;
          case Step::kFixed8:
            q += 8;
            break;
          case Step::kTextDouble:
            q += 1 + (*q < 253 ? *q : 0);
            break;
          default:
            return;
        }
        if (q > end_) return;
      }
      p_ = q;
      --elements_left_;
    }
  }

  Progress Element() {
    if (step_ == 0 && elements_left_ > 0) SkipWholeElements();
    if (step_ == 0 && elements_left_ == 0) {
      // Redis skips empty quicklist nodes but reports a list left with no element at all as an
      // empty key, which redis-check-rdb rejects.
      if (options_.deep && IsQuicklist() && value_entries_ == 0) {
        prim_offset_ = count_offset_;
        return Fail(Errc::kCorrupt, "quicklist whose nodes are all empty");
      }
      if (checking_members_ && fields_.HasDuplicate(&prim_offset_)) {
        return Fail(Errc::kCorrupt,
                    type_ == type::kHash ? "duplicate hash field" : "duplicate member");
      }
      return FinishKey();
    }
    Progress result = Progress::kNeedMore;
    switch (program_->steps[step_]) {
      case Step::kString: {
        // The first string of a set, zset or hash element is the member or field.
        const Role role = element_checks_ && step_ == 0 ? Role::kMember : Role::kSkip;
        NextStep();
        BeginString(role, State::kElement);
        return result;
      }
      case Step::kZiplist:
        NextStep();
        BeginString(Role::kZiplist, State::kElement);
        return result;
      case Step::kNode:
        NextStep();
        BeginString(node_role_, State::kElement);
        return result;
      case Step::kLength: {
        uint64_t v;
        if (!Length(v, &result, UINT64_MAX, "length")) return result;
        NextStep();
        return result;
      }
      case Step::kFixed8: {
        const uint8_t* d = Take(8);
        if (d == nullptr) return result;
        if (element_checks_ && type_ == type::kZset2 &&
            std::isnan(std::bit_cast<double>(Le64(d)))) {
          return Fail(Errc::kCorrupt, "zset score is NaN");
        }
        NextStep();
        return result;
      }
      case Step::kTextDouble: {
        const uint8_t* b = Take(1);
        if (b == nullptr) return result;
        if (element_checks_ && *b == 253) return Fail(Errc::kCorrupt, "zset score is NaN");
        NextStep();
        if (*b < 253) return SkipBytes(*b, State::kElement);
        return result;
      }
      case Step::kContainer: {
        uint64_t v;
        if (!Length(v, &result, UINT64_MAX, "quicklist container")) return result;
        if (v != 1 && v != 2) {
          return Fail(Errc::kCorrupt, "quicklist node container " + std::to_string(v) +
                                          " is neither 1 (plain) nor 2 (packed)");
        }
        node_role_ = v == 2 ? Role::kListpack : Role::kPlainNode;
        if (v == 1) ++value_entries_;  // a plain node is one element (and must not be empty)
        NextStep();
        return result;
      }
    }
    return result;
  }

  void NextStep() {
    if (++step_ == program_->size) {
      step_ = 0;
      --elements_left_;
    }
  }

  // --- stream consumer groups (deep mode) ------------------------------------------------------
  //
  // rdbLoadObject cross-checks a group's PELs: the group PEL holds each ID once, every ID in a
  // consumer's PEL is in the group PEL and only once in that consumer's, and (with deep
  // sanitization) every group PEL entry ends up owned by a consumer. The group PEL's IDs are kept
  // in pel_ for that, up to Options::max_deep_blob bytes of IDs; a larger PEL is not checked.

  void BeginGroup() {
    pel_.clear();
    checking_pel_ = options_.deep;
    consumer_index_ = 0;
  }

  void AddGroupPelEntry(const uint8_t* id) {
    if (!checking_pel_) return;
    const uint64_t limit = options_.max_deep_blob / kStreamIdSize;
    if (pel_.size() >= limit) {
      checking_pel_ = false;
      return;
    }
    if (pel_.capacity() < limit) pel_.reserve(static_cast<size_t>(limit));
    PelEntry e;
    std::memcpy(e.id.data(), id, kStreamIdSize);
    pel_.push_back(e);
  }

  Progress EndGroupPel() {
    if (!checking_pel_) return Progress::kNeedMore;
    std::sort(pel_.begin(), pel_.end(),
              [](const PelEntry& a, const PelEntry& b) { return a.id < b.id; });
    for (size_t i = 1; i < pel_.size(); ++i) {
      if (pel_[i - 1].id == pel_[i].id) {
        return Fail(Errc::kCorrupt, "duplicate entry in a consumer group's PEL");
      }
    }
    return Progress::kNeedMore;
  }

  Progress ConsumerPelEntry(const uint8_t* id) {
    if (!checking_pel_) return Progress::kNeedMore;
    PelEntry key;
    std::memcpy(key.id.data(), id, kStreamIdSize);
    const auto it =
        std::lower_bound(pel_.begin(), pel_.end(), key,
                         [](const PelEntry& a, const PelEntry& b) { return a.id < b.id; });
    if (it == pel_.end() || it->id != key.id) {
      return Fail(Errc::kCorrupt, "consumer PEL entry missing from its group's PEL");
    }
    if (it->owner == consumer_index_) {
      return Fail(Errc::kCorrupt, "duplicate entry in a consumer's PEL");
    }
    // A later consumer may claim the entry again: Redis lets the last one own it.
    it->owner = consumer_index_;
    return Progress::kNeedMore;
  }

  Progress EndGroup() {
    if (!checking_pel_) return Progress::kNeedMore;
    for (const PelEntry& e : pel_) {
      if (e.owner == 0) {
        return Fail(Errc::kCorrupt, "consumer group PEL entry owned by no consumer");
      }
    }
    return Progress::kNeedMore;
  }

  Progress ModuleOpcode() {
    Progress result;
    uint64_t op;
    if (!Length(op, &result, UINT64_MAX, "module opcode")) return result;
    switch (op) {
      case module_opcode::kEof:
        state_ = module_next_;
        break;
      case module_opcode::kSint:
      case module_opcode::kUint:
        state_ = State::kModuleInteger;
        break;
      case module_opcode::kFloat:
        state_ = State::kModuleFloat;
        break;
      case module_opcode::kDouble:
        state_ = State::kModuleDouble;
        break;
      case module_opcode::kString:
        BeginString(Role::kSkip, State::kModuleOpcode);
        break;
      default:
        return Fail(Errc::kCorrupt, "unknown module opcode " + std::to_string(op));
    }
    return Progress::kNeedMore;
  }

  Progress Checksum() {
    const uint8_t* d = Take(8);
    if (d == nullptr) return Progress::kNeedMore;
    report_.stored_crc = Le64(d);
    if (report_.stored_crc == 0) {
      report_.checksum = ChecksumVerdict::kDisabled;
    } else if (report_.stored_crc == report_.computed_crc) {
      report_.checksum = ChecksumVerdict::kMatch;
    } else {
      report_.checksum = ChecksumVerdict::kMismatch;
      char buf[96];
      std::snprintf(buf, sizeof buf, "RDB CRC error: stored %016llx, computed %016llx",
                    static_cast<unsigned long long>(report_.stored_crc),
                    static_cast<unsigned long long>(report_.computed_crc));
      return Fail(Errc::kChecksumMismatch, buf);
    }
    state_ = State::kDone;
    return Progress::kNeedMore;
  }

  Options options_;
  Report report_;
  Diagnostic diagnostic_;
  State state_ = State::kMagic;

  // Input window of the current Feed() call.
  const uint8_t* begin_ = nullptr;
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  uint64_t consumed_ = 0;     // bytes consumed by earlier Feed() calls
  uint64_t prim_offset_ = 0;  // stream offset of the primitive being read
  std::array<uint8_t, kCarrySize> carry_{};
  size_t carry_n_ = 0;

  // CRC tap.
  uint64_t crc_ = 0;
  const uint8_t* crc_from_ = nullptr;
  bool crc_open_ = true;

  // Database and key being read.
  uint64_t db_index_ = 0;
  bool selected_db_ = false;
  DbCounts* current_db_ = nullptr;
  bool expire_pending_ = false;
  bool in_key_ = false;
  uint8_t type_ = 0;
  std::string key_;

  // String sub-machine.
  Role string_role_ = Role::kSkip;
  State string_next_ = State::kOpcode;
  State string_owner_ = State::kOpcode;
  uint64_t string_length_ = 0;
  uint64_t string_left_ = 0;
  uint64_t string_offset_ = 0;
  uint8_t int_size_ = 0;
  std::array<uint8_t, kBlobHeadSize> blob_head_{};
  uint8_t blob_last_ = 0;
  uint64_t lzf_compressed_ = 0;
  detail::LzfChecker lzf_;
  std::string capture_;    // kept bytes of a kKey / kCapture string
  std::string lzf_input_;  // compressed bytes of a kept LZF string or of a held LZF blob
  std::string aux_key_;

  // Deep checks: held strings (blobs, collection members).
  std::vector<uint8_t> held_bytes_;  // the blob being read, or the members of a collection so far
  uint64_t held_from_ = 0;           // where the current held string starts in held_bytes_
  bool held_ = false;                // whether the current string goes into held_bytes_
  bool element_checks_ = false;      // whether the collection's elements get the deep checks
  bool checking_members_ = false;    // whether the collection is checked for duplicate members
  // The fields of the blob, or the members of the collection, being checked for duplicates. The
  // two never overlap: set, zset and hash elements hold no blob.
  detail::FieldSet fields_;
  struct PelEntry {
    std::array<uint8_t, kStreamIdSize> id;
    uint32_t owner = 0;  // the consumer (1, 2, ...) whose PEL holds it; 0 for none yet
  };
  std::vector<PelEntry> pel_;  // the current consumer group's PEL, sorted once complete
  bool checking_pel_ = false;
  uint32_t consumer_index_ = 0;  // the consumer being read, counted from 1 in its group
  uint64_t value_entries_ = 0;   // entries of the current quicklist's nodes so far
  uint64_t count_offset_ = 0;    // stream offset of the current collection's element count

  // Collections, modules, streams, skips.
  const ElementProgram* program_ = nullptr;
  uint8_t step_ = 0;
  Role node_role_ = Role::kSkip;
  uint64_t elements_left_ = 0;
  State module_next_ = State::kOpcode;
  uint64_t stream_nodes_left_ = 0;
  uint64_t stream_groups_left_ = 0;
  uint64_t stream_pel_left_ = 0;
  uint64_t stream_consumers_left_ = 0;
  uint64_t stream_consumer_pel_left_ = 0;
  uint64_t lengths_left_ = 0;
  State lengths_owner_ = State::kOpcode;
  State lengths_next_ = State::kOpcode;
  uint64_t bytes_left_ = 0;
  State bytes_next_ = State::kOpcode;
};

Progress Validator::Impl::Run() {
  Progress r = Progress::kNeedMore;
  const uint64_t max_count = options_.max_element_count;
  // Each case returns kNeedMore both when it finished its primitive (state_ moved on) and when
  // the input ran out; the loop tells them apart by whether the state still has input to use.
  for (;;) {
    const State before = state_;
    const uint8_t* const at = p_;
    const size_t carried = carry_n_;
    switch (state_) {
      case State::kMagic:
        r = Magic();
        break;
      case State::kOpcode:
        r = Opcode();
        break;
      case State::kAuxKey:
        BeginString(Role::kCapture, State::kAuxValue);
        break;
      case State::kAuxValue:
        aux_key_ = capture_;
        BeginString(Role::kCapture, State::kAuxDone);
        break;
      case State::kAuxDone:
        if (report_.aux.size() < options_.max_aux_fields) {
          report_.aux.emplace_back(std::move(aux_key_), capture_);
        }
        aux_key_.clear();
        state_ = State::kOpcode;
        break;
      case State::kSelectDb: {
        uint64_t db;
        if (!Length(db, &r, options_.max_database_index, "database index")) break;
        db_index_ = db;
        selected_db_ = true;
        current_db_ = nullptr;
        state_ = State::kOpcode;
        break;
      }
      case State::kSkipLengths: {
        uint64_t v;
        while (lengths_left_ > 0) {
          if (!Length(v, &r, UINT64_MAX, "length")) break;
          --lengths_left_;
        }
        if (lengths_left_ == 0) state_ = lengths_next_;
        break;
      }
      case State::kSkipBytes: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes_left_, end_ - p_));
        p_ += n;
        bytes_left_ -= n;
        if (bytes_left_ == 0) state_ = bytes_next_;
        break;
      }
      case State::kExpireMs:
      case State::kExpireSeconds:
        if (Take(state_ == State::kExpireMs ? 8 : 4) == nullptr) break;
        expire_pending_ = true;
        state_ = State::kOpcode;
        break;
      case State::kIdle: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "idle time")) break;
        state_ = State::kOpcode;
        break;
      }
      case State::kFreq:
        if (Take(1) == nullptr) break;
        state_ = State::kOpcode;
        break;
      case State::kModuleAuxId: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "module id")) break;
        state_ = State::kModuleAuxWhenOpcode;
        break;
      }
      case State::kModuleAuxWhenOpcode: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "module aux opcode")) break;
        if (v != module_opcode::kUint) {
          r = Fail(Errc::kCorrupt, "module aux 'when' is not a UINT (opcode " +
                                       std::to_string(v) + ")");
          break;
        }
        state_ = State::kModuleAuxWhen;
        break;
      }
      case State::kModuleAuxWhen: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "module aux when")) break;
        if (v != 1 && v != 2) {
          r = Fail(Errc::kCorrupt, "module aux 'when' " + std::to_string(v) +
                                       " is neither before (1) nor after (2) the keyspace");
          break;
        }
        module_next_ = State::kOpcode;
        state_ = State::kModuleOpcode;
        break;
      }
      case State::kModuleId: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "module id")) break;
        state_ = State::kModuleOpcode;
        break;
      }
      case State::kModuleOpcode:
        r = ModuleOpcode();
        break;
      case State::kModuleInteger: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "module integer")) break;
        state_ = State::kModuleOpcode;
        break;
      }
      case State::kModuleFloat:
      case State::kModuleDouble:
        if (Take(state_ == State::kModuleFloat ? 4 : 8) == nullptr) break;
        state_ = State::kModuleOpcode;
        break;
      case State::kResizeDb:
        r = SkipLengths(2, State::kOpcode);
        break;
      case State::kFunction:
        BeginString(Role::kSkip, State::kOpcode);
        break;
      case State::kFunctionPreGaName:
        BeginString(Role::kSkip, State::kFunctionPreGaEngine);
        break;
      case State::kFunctionPreGaEngine:
        BeginString(Role::kSkip, State::kFunctionPreGaHasDesc);
        break;
      case State::kFunctionPreGaHasDesc: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "function has-description flag")) break;
        state_ = v ? State::kFunctionPreGaDesc : State::kFunctionPreGaCode;
        break;
      }
      case State::kFunctionPreGaDesc:
        BeginString(Role::kSkip, State::kFunctionPreGaCode);
        break;
      case State::kFunctionPreGaCode:
        BeginString(Role::kSkip, State::kOpcode);
        break;
      case State::kSlotInfo:
        r = SkipLengths(3, State::kOpcode);
        break;
      case State::kSlotImportName:
        BeginString(Role::kSkip, State::kSlotImportCount);
        break;
      case State::kSlotImportCount: {
        uint64_t v;
        if (!Length(v, &r, max_count, "slot range count")) break;
        r = SkipLengths(2 * v, State::kOpcode);
        break;
      }
      case State::kKey:
        BeginString(Role::kKey, State::kValue);
        break;
      case State::kValue:
        r = Value();
        break;
      case State::kValueEnd:
        // A single-string or blob value (or a module value) has been read.
        r = FinishKey();
        break;
      case State::kMinExpire:
        if (Take(8) == nullptr) break;
        if (program_ == nullptr) {
          BeginString(Role::kListpack, State::kValueEnd);
        } else {
          state_ = State::kCount;
        }
        break;
      case State::kCount:
        if (!Length(elements_left_, &r, max_count, "element count")) break;
        if (options_.deep && elements_left_ == 0 && EmptyCountIsCorrupt()) {
          r = Fail(Errc::kCorrupt,
                   "empty collection (Redis never writes one; redis-check-rdb rejects it)");
          break;
        }
        count_offset_ = prim_offset_;
        state_ = State::kElement;
        break;
      case State::kElement:
        r = Element();
        break;
      case State::kStreamNodeCount:
        if (!Length(stream_nodes_left_, &r, max_count, "stream listpack count")) break;
        state_ = State::kStreamNode;
        break;
      case State::kStreamNode:
        if (stream_nodes_left_ == 0) {
          r = SkipLengths(type_ == type::kStreamListpacks ? 3 : 8, State::kStreamGroupCount);
          break;
        }
        --stream_nodes_left_;
        BeginString(Role::kNodeKey, State::kStreamNodeListpack);
        break;
      case State::kStreamNodeListpack:
        BeginString(Role::kListpack, State::kStreamNode);
        break;
      case State::kStreamGroupCount:
        if (!Length(stream_groups_left_, &r, max_count, "stream group count")) break;
        state_ = State::kStreamGroup;
        break;
      case State::kStreamGroup:
        if (stream_groups_left_ == 0) {
          r = FinishKey();
          break;
        }
        --stream_groups_left_;
        BeginGroup();
        BeginString(Role::kSkip, State::kStreamGroupMeta);
        break;
      case State::kStreamGroupMeta:
        r = SkipLengths(type_ == type::kStreamListpacks ? 2 : 3, State::kStreamPelCount);
        break;
      case State::kStreamPelCount:
        if (!Length(stream_pel_left_, &r, max_count, "stream PEL size")) break;
        state_ = State::kStreamPelEntry;
        break;
      case State::kStreamPelEntry:
        if (stream_pel_left_ == 0) {
          if (r = EndGroupPel(); r == Progress::kError) break;
          state_ = State::kStreamConsumerCount;
          break;
        }
        if (const uint8_t* d = Take(24); d != nullptr) {  // 16-byte entry ID, 8-byte delivery time
          AddGroupPelEntry(d);
          state_ = State::kStreamPelDeliveryCount;
        }
        break;
      case State::kStreamPelDeliveryCount: {
        uint64_t v;
        if (!Length(v, &r, UINT64_MAX, "PEL delivery count")) break;
        --stream_pel_left_;
        state_ = State::kStreamPelEntry;
        break;
      }
      case State::kStreamConsumerCount:
        if (!Length(stream_consumers_left_, &r, max_count, "stream consumer count")) break;
        state_ = State::kStreamConsumer;
        break;
      case State::kStreamConsumer:
        if (stream_consumers_left_ == 0) {
          if (r = EndGroup(); r == Progress::kError) break;
          state_ = State::kStreamGroup;
          break;
        }
        --stream_consumers_left_;
        ++consumer_index_;
        BeginString(Role::kSkip, State::kStreamConsumerTimes);
        break;
      case State::kStreamConsumerTimes:
        // Seen time, and from stream v3 on the active time.
        if (Take(type_ == type::kStreamListpacks3 ? 16 : 8) == nullptr) break;
        state_ = State::kStreamConsumerPelCount;
        break;
      case State::kStreamConsumerPelCount:
        if (!Length(stream_consumer_pel_left_, &r, max_count, "consumer PEL size")) break;
        state_ = State::kStreamConsumerPelId;
        break;
      case State::kStreamConsumerPelId:
        if (stream_consumer_pel_left_ == 0) {
          state_ = State::kStreamConsumer;
          break;
        }
        if (const uint8_t* d = Take(16); d != nullptr) {
          if (r = ConsumerPelEntry(d); r == Progress::kError) break;
          --stream_consumer_pel_left_;
        }
        break;
      case State::kStringHeader:
        r = StringHeader();
        break;
      case State::kStringInt:
        r = StringInt();
        break;
      case State::kStringBody:
        r = StringBody();
        break;
      case State::kLzfCompressedLength:
        r = LzfLengths(true);
        break;
      case State::kLzfExpandedLength:
        r = LzfLengths(false);
        break;
      case State::kLzfBody:
        r = LzfBody();
        break;
      case State::kChecksum:
        r = Checksum();
        break;
      case State::kDone:
        if (p_ < end_) {
          prim_offset_ = Pos();
          return Fail(Errc::kCorrupt, "data after the end of the RDB");
        }
        return Progress::kDone;
      case State::kError:
        return Progress::kError;
      case State::kCount_:
        return Fail(Errc::kCorrupt, "internal: invalid state");
    }
    if (r == Progress::kError) return r;
    // No progress in this step: the input is exhausted (or parked in carry_). Wait for more.
    if (state_ == before && p_ == at && carry_n_ == carried) {
      // Every state consumes what it is given; standing still with input left would drop it.
      if (p_ < end_) return Fail(Errc::kCorrupt, "internal: no progress in this state");
      return Progress::kNeedMore;
    }
  }
}

// --- public surface -------------------------------------------------------------------------

Validator::Validator(Options options) : impl_(std::make_unique<Impl>(options)) {}
Validator::~Validator() = default;
Validator::Validator(Validator&&) noexcept = default;
Validator& Validator::operator=(Validator&&) noexcept = default;

Progress Validator::Feed(std::span<const uint8_t> data) { return impl_->Feed(data); }
Progress Validator::Finish() { return impl_->Finish(); }
bool Validator::done() const { return impl_->done(); }
bool Validator::failed() const { return impl_->failed(); }
const Report& Validator::report() const { return impl_->report(); }
const Diagnostic& Validator::diagnostic() const { return impl_->diagnostic(); }
uint64_t Validator::offset() const { return impl_->offset(); }

uint64_t Report::TotalKeys() const {
  uint64_t n = 0;
  for (const auto& [db, c] : databases) n += c.keys;
  return n;
}

uint64_t Report::TotalExpires() const {
  uint64_t n = 0;
  for (const auto& [db, c] : databases) n += c.expires;
  return n;
}

std::optional<std::string> Report::Aux(std::string_view key) const {
  for (const auto& [k, v] : aux) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::string_view ChecksumVerdictName(ChecksumVerdict v) {
  switch (v) {
    case ChecksumVerdict::kPending:
      return "pending";
    case ChecksumVerdict::kMatch:
      return "match";
    case ChecksumVerdict::kDisabled:
      return "disabled";
    case ChecksumVerdict::kAbsent:
      return "absent";
    case ChecksumVerdict::kMismatch:
      return "mismatch";
  }
  return "unknown";
}

std::string Diagnostic::ToString() const {
  std::string s = std::string(ErrcName(code)) + " at offset " + std::to_string(offset) + " (" +
                  state;
  if (db) s += ", db " + std::to_string(*db);
  if (!key.empty()) s += ", key '" + key + "'";
  if (!type.empty()) s += ", type " + type;
  return s + "): " + message;
}

}  // namespace finalsnap::rdb
