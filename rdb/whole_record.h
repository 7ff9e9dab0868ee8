// WholeRecords: the validator's fast path over records that lie whole in the chunk at hand.
// Each Skip* moves `q` past one primitive or value in [q, end) when it is whole there and passes
// every check the validator's state machine would make on it; otherwise it returns false and
// leaves q alone, and the state machine reads (and judges) the same bytes from the same place.
// validator_fuzz holds both paths to the same verdicts (whole against chunked feeding).
//
// Header-only and inline on purpose: it runs once per key or element, on millions of small keys.
#ifndef FINALSNAP_RDB_WHOLE_RECORD_H_
#define FINALSNAP_RDB_WHOLE_RECORD_H_

#include <cstdint>

#include "blob.h"
#include "finalsnap/rdb/format.h"
#include "finalsnap/rdb/validator.h"

namespace finalsnap::rdb::detail {

class WholeRecords {
 public:
  WholeRecords(const uint8_t* end, const Options& options, bool valkey, int version)
      : end_(end), options_(options), valkey_(valkey), version_(version) {}

  // A length at most `limit` (not a special encoding).
  [[gnu::always_inline]] bool SkipLength(const uint8_t*& q, uint64_t limit,
                                         uint64_t* value = nullptr) const {
    if (q >= end_) return false;
    const int n = LengthSize(*q);
    if (n == 0 || end_ - q < n) return false;
    const uint64_t v = DecodeLength(q);
    if (v > limit) return false;
    if (value != nullptr) *value = v;
    q += n;
    return true;
  }

  // A string: plain, integer, or (unless deep) LZF. `lzf` false refuses LZF strings too: a key is
  // kept for diagnostics, so the string states decompress (and so check) an LZF key even outside
  // deep mode; the fast path must not pass one the states would refuse.
  [[gnu::always_inline]] bool SkipString(const uint8_t*& q, bool lzf = true) const {
    if (q >= end_) return false;
    const uint8_t first = *q;
    if ((first >> 6) != 3) return SkipPlain(q);
    const int enc = first & 0x3f;
    if (enc <= encoding::kInt32) {
      const uint8_t* r = q + 1 + (size_t{1} << enc);
      if (r > end_) return false;
      q = r;
      return true;
    }
    return enc == encoding::kLzf && lzf && !options_.deep && SkipLzf(q, 0);
  }

  // The value of a key of type `t`: a string (the bulk of a cache's keyspace), or, outside deep
  // mode, the compact encodings of small hashes, sorted sets, sets and lists (listpacks,
  // quicklist nodes), which deep mode checks inside.
  [[gnu::always_inline]] bool SkipValue(uint8_t t, const uint8_t*& q) const {
    switch (t) {
      case type::kString:
        return SkipString(q);
      case type::kHashListpack:
      case type::kZsetListpack:
      case type::kSetListpack:
        return Has(t == type::kSetListpack ? 11 : 10) && SkipListpack(q);
      case type::kListQuicklist2:
        return Has(10) && SkipQuicklist(q);
      default:
        return false;
    }
  }

 private:
  // Outside deep mode, and where this (family, version) has the type (CheckType's rule).
  bool Has(int since) const { return !options_.deep && (valkey_ || version_ >= since); }

  // A plain (length-prefixed) string.
  bool SkipPlain(const uint8_t*& q) const {
    const uint8_t* r = q;
    uint64_t len = 0;
    if (!SkipLength(r, options_.max_string_length, &len) || len > static_cast<uint64_t>(end_ - r)) {
      return false;
    }
    q = r + len;
    return true;
  }

  // An LZF string (q at its 0xC3 byte) whose expanded length is at least `min_expanded`
  // (LzfLengths' header minimum), skipped by its compressed size.
  bool SkipLzf(const uint8_t*& q, uint64_t min_expanded) const {
    const uint8_t* r = q + 1;
    uint64_t compressed = 0, expanded = 0;
    if (!SkipLength(r, options_.max_string_length, &compressed) ||
        !SkipLength(r, options_.max_string_length, &expanded)) {
      return false;
    }
    if (compressed == 0 || expanded < min_expanded ||
        compressed > static_cast<uint64_t>(end_ - r)) {
      return false;
    }
    q = r + compressed;
    return true;
  }

  // A listpack blob with the checks the string states make outside deep mode (EndPlainString's
  // kListpack case; an LZF one expands to at least its 7-byte header and terminator).
  bool SkipListpack(const uint8_t*& q) const {
    if (q >= end_) return false;
    if ((*q >> 6) == 3) return (*q & 0x3f) == encoding::kLzf && SkipLzf(q, 7);
    const uint8_t* r = q;
    if (!SkipPlain(r)) return false;
    const uint64_t len = static_cast<uint64_t>(r - q) - static_cast<uint64_t>(LengthSize(*q));
    const uint8_t* blob = r - len;
    if (len < 7 || Le32(blob) != len || blob[len - 1] != 0xff) return false;
    q = r;
    return true;
  }

  // A quicklist (RDB type 18): a node count, then per node its container (1 plain, 2 packed) and
  // the node's string.
  bool SkipQuicklist(const uint8_t*& q) const {
    const uint8_t* r = q;
    uint64_t nodes = 0;
    if (!SkipLength(r, options_.max_element_count, &nodes)) return false;
    for (; nodes > 0; --nodes) {
      uint64_t container = 0;
      if (!SkipLength(r, UINT64_MAX, &container)) return false;
      if (container == 2) {
        if (!SkipListpack(r)) return false;
      } else if (container != 1 || !SkipString(r)) {
        return false;
      }
    }
    q = r;
    return true;
  }

  const uint8_t* end_;
  const Options& options_;
  bool valkey_;
  int version_;
};

}  // namespace finalsnap::rdb::detail

#endif  // FINALSNAP_RDB_WHOLE_RECORD_H_
