// Deep blob checks, after Redis 7.0 (see blob.h). Positions are offsets into the blob, held in
// 64-bit integers, so that a corrupt length can never wrap a pointer: where Redis compares
// pointers, these compare offsets with the same bounds.
#include "blob.h"

#include <algorithm>
#include <cstring>

namespace finalsnap::rdb::detail {
namespace {

// Stands for the NULL entry pointer of listpack.c: "no entry", past the terminator.
constexpr size_t kNone = SIZE_MAX;
constexpr uint32_t kEmptySlot = UINT32_MAX;

// A 64-bit finalizer (from splitmix64): spreads the bits of `x` over the whole word.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A hash of a field's bytes, eight at a time. Only the duplicate check uses it, on fields it
// then compares byte for byte, so it needs speed and spread, not strength.
uint64_t HashBytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;  // one multiply a word; Mix below spreads the rest
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (n > 0) std::memcpy(&tail, p, n);
  return Mix(h ^ tail ^ 0xff51afd7ed558ccdULL);
}

constexpr size_t kListpackHeader = 6;  // total bytes (4), entry count (2)
constexpr size_t kZiplistHeader = 10;  // total bytes (4), tail offset (4), entry count (2)
constexpr uint8_t kEnd = 0xff;         // the terminator of all four encodings
constexpr uint16_t kUnknownCount = UINT16_MAX;

// Whether entry `index` of a blob of this shape is a field name that must be unique.
bool IsKeyed(BlobShape shape, uint64_t index) {
  switch (shape) {
    case BlobShape::kList:
      return false;
    case BlobShape::kSet:
      return true;
    case BlobShape::kPairs:
      return index % 2 == 0;
    case BlobShape::kTriplets:
      return index % 3 == 0;
  }
  return false;
}

// The count and duplicate checks rdbLoadObject adds once the entries themselves are valid.
const char* CheckShape(BlobShape shape, uint64_t count, FieldSet& fields) {
  if (shape == BlobShape::kPairs && count % 2 != 0) return "odd number of entries in a pair blob";
  if (shape == BlobShape::kTriplets && count % 3 != 0) {
    return "entry count of a triplet blob is not a multiple of 3";
  }
  if (shape != BlobShape::kList && fields.HasDuplicate()) return "duplicate field";
  return nullptr;
}

// --- listpack ---------------------------------------------------------------------------------

// lpCurrentEncodedSizeBytes: the bytes of the encoding byte and the length that follows it, or 0
// for an encoding listpack.c does not know.
uint32_t LpHeaderBytes(uint8_t b) {
  if ((b & 0x80) == 0) return 1;         // 7-bit unsigned integer
  if ((b & 0xc0) == 0x80) return 1;      // string up to 63 bytes
  if ((b & 0xe0) == 0xc0) return 1;      // 13-bit integer
  if (b >= 0xf1 && b <= 0xf4) return 1;  // 16, 24, 32 and 64-bit integers
  if ((b & 0xf0) == 0xe0) return 2;      // string up to 4095 bytes
  if (b == 0xf0) return 5;               // string with a 32-bit length
  if (b == kEnd) return 1;
  return 0;
}

// lpCurrentEncodedSizeUnsafe: the encoded size of the entry at p, without its back-length. The
// caller has checked that the LpHeaderBytes(p[0]) bytes at p are inside the listpack.
uint64_t LpEncodedSize(const uint8_t* p) {
  const uint8_t b = p[0];
  if ((b & 0x80) == 0) return 1;
  if ((b & 0xc0) == 0x80) return 1 + (b & 0x3f);
  if ((b & 0xe0) == 0xc0) return 2;
  if (b == 0xf1) return 3;
  if (b == 0xf2) return 4;
  if (b == 0xf3) return 5;
  if (b == 0xf4) return 9;
  if ((b & 0xf0) == 0xe0) return 2 + ((b & 0x0f) << 8 | p[1]);
  if (b == 0xf0) return 5 + uint64_t{Le32(p + 1)};
  return 1;  // the terminator
}

// lpEncodeBacklen(NULL, l): how many bytes the back-length of an entry of size l takes. The odd
// bounds (16383 takes three bytes) are listpack.c's, and the check below depends on them.
uint64_t LpBacklenSize(uint64_t l) {
  if (l <= 127) return 1;
  if (l < 16383) return 2;
  if (l < 2097151) return 3;
  if (l < 268435455) return 4;
  return 5;
}

// lpDecodeBacklen: reads the back-length that ends at lp[at], right to left; UINT64_MAX when it
// runs over five bytes. It never reads before the blob: an entry is at least two bytes and starts
// at offset 6 or later, so the five bytes end at offset 3 or later.
uint64_t LpDecodeBacklen(std::span<const uint8_t> lp, size_t at) {
  uint64_t value = 0;
  uint64_t shift = 0;
  for (;;) {
    value |= uint64_t{lp[at] & 127u} << shift;
    if ((lp[at] & 128) == 0) break;
    shift += 7;
    --at;
    if (shift > 28) return UINT64_MAX;
  }
  return value;
}

// lpValidateNext: checks the entry at *p and moves *p to the next one, or to kNone when *p is the
// terminator. Fails on kNone itself, as the original does on NULL: there is no entry left.
const char* LpValidateNext(std::span<const uint8_t> lp, size_t* p) {
  if (*p == kNone) return "listpack ends before an entry its structure requires";
  const uint64_t last = lp.size() - 1;
  const auto out_of_range = [last](uint64_t at) { return at < kListpackHeader || at > last; };
  if (out_of_range(*p)) return "listpack entry outside the listpack";
  if (lp[*p] == kEnd) {
    *p = kNone;
    return nullptr;
  }
  const uint32_t header_bytes = LpHeaderBytes(lp[*p]);
  if (header_bytes == 0) return "listpack entry with an invalid encoding";
  if (out_of_range(*p + header_bytes)) return "listpack entry header runs past the listpack";
  const uint64_t encoded = LpEncodedSize(&lp[*p]);
  const uint64_t backlen_size = LpBacklenSize(encoded);
  const uint64_t entry_size = encoded + backlen_size;
  if (out_of_range(*p + entry_size)) return "listpack entry runs past the listpack";
  const uint64_t next = *p + entry_size;
  // Unsigned wrap-around on a UINT64_MAX back-length is what listpack.c does too: never equal.
  if (LpDecodeBacklen(lp, static_cast<size_t>(next - 1)) + backlen_size != entry_size) {
    return "listpack entry back-length differs from the entry size";
  }
  *p = static_cast<size_t>(next);
  return nullptr;
}

// An entry's value as lpGet returns it: a string (data, size) or an integer.
struct LpValue {
  const uint8_t* data = nullptr;  // nullptr for an integer
  uint64_t size = 0;
  int64_t integer = 0;
};

// lpGet on a validated entry (or on the terminator, which lpGet reads as an odd integer: the
// stream check can reach it, and Redis then takes that integer at face value).
LpValue LpGet(const uint8_t* p) {
  LpValue v;
  uint64_t u;
  uint64_t negative_from;
  uint64_t negative_max;
  const uint8_t b = p[0];
  if ((b & 0x80) == 0) {
    v.integer = b & 0x7f;
    return v;
  } else if ((b & 0xc0) == 0x80) {
    v.data = p + 1;
    v.size = b & 0x3f;
    return v;
  } else if ((b & 0xe0) == 0xc0) {
    u = uint64_t{(b & 0x1fu) << 8 | p[1]};
    negative_from = uint64_t{1} << 12;
    negative_max = 8191;
  } else if (b == 0xf1) {
    u = Le16(p + 1);
    negative_from = uint64_t{1} << 15;
    negative_max = UINT16_MAX;
  } else if (b == 0xf2) {
    u = uint64_t{p[1]} | uint64_t{p[2]} << 8 | uint64_t{p[3]} << 16;
    negative_from = uint64_t{1} << 23;
    negative_max = UINT32_MAX >> 8;
  } else if (b == 0xf3) {
    u = Le32(p + 1);
    negative_from = uint64_t{1} << 31;
    negative_max = UINT32_MAX;
  } else if (b == 0xf4) {
    u = Le64(p + 1);
    negative_from = uint64_t{1} << 63;
    negative_max = UINT64_MAX;
  } else if ((b & 0xf0) == 0xe0) {
    v.data = p + 2;
    v.size = (b & 0x0fu) << 8 | p[1];
    return v;
  } else if (b == 0xf0) {
    v.data = p + 5;
    v.size = Le32(p + 1);
    return v;
  } else {
    u = 12345678900000000ULL + b;
    negative_from = UINT64_MAX;
    negative_max = 0;
  }
  if (u >= negative_from) {
    // Two's complement of the encoded width, as listpack.c converts it.
    v.integer = -static_cast<int64_t>(negative_max - u) - 1;
  } else {
    v.integer = static_cast<int64_t>(u);
  }
  return v;
}

// lpGetIntegerIfValid: the entry as an integer, whether encoded as one or as its decimal text.
bool LpInteger(std::span<const uint8_t> lp, size_t p, int64_t* out) {
  const LpValue v = LpGet(&lp[p]);
  if (v.data == nullptr) {
    *out = v.integer;
    return true;
  }
  return ParseCanonicalInt64(v.data, static_cast<size_t>(v.size), out);
}

// The header part of lpValidateIntegrity, which runs with or without `deep`.
const char* CheckListpackHeader(std::span<const uint8_t> lp) {
  if (lp.size() < kListpackHeader + 1) return "listpack shorter than its header";
  if (Le32(lp.data()) != lp.size()) return "listpack header length differs from the string length";
  if (lp.back() != kEnd) return "listpack does not end with 0xFF";
  return nullptr;
}

// --- ziplist ----------------------------------------------------------------------------------

constexpr uint8_t kZipStr06 = 0x00;
constexpr uint8_t kZipStr14 = 0x40;
constexpr uint8_t kZipStr32 = 0x80;
constexpr uint8_t kZipInt16 = 0xc0;
constexpr uint8_t kZipInt32 = 0xd0;
constexpr uint8_t kZipInt64 = 0xe0;
constexpr uint8_t kZipInt24 = 0xf0;
constexpr uint8_t kZipInt8 = 0xfe;
constexpr uint8_t kZipImmMin = 0xf1;
constexpr uint8_t kZipImmMax = 0xfd;
constexpr uint8_t kZipBigPrevlen = 254;

// zipEncodingLenSize: bytes of the encoding and length, or 0 for an invalid encoding.
uint32_t ZipEncodingLenSize(uint8_t encoding) {
  if (encoding == kZipInt16 || encoding == kZipInt32 || encoding == kZipInt24 ||
      encoding == kZipInt64 || encoding == kZipInt8) {
    return 1;
  }
  if (encoding >= kZipImmMin && encoding <= kZipImmMax) return 1;
  if (encoding == kZipStr06) return 1;
  if (encoding == kZipStr14) return 2;
  if (encoding == kZipStr32) return 5;
  return 0;
}

struct ZipEntry {
  uint32_t prevrawlen = 0;
  uint32_t headersize = 0;
  uint32_t len = 0;
  uint8_t encoding = 0;
};

// zipEntrySafe with validate_prevlen: decodes the entry at p, which must lie whole between the
// header and the terminator, with a previous-entry length that does not reach before the first
// entry. Its fast and slow paths reach the same verdict; this is the slow one.
const char* ZipEntrySafe(std::span<const uint8_t> zl, uint64_t p, ZipEntry* e) {
  const uint64_t last = zl.size() - 1;  // the terminator
  const auto out_of_range = [last](uint64_t at) { return at < kZiplistHeader || at > last; };
  if (out_of_range(p)) return "ziplist entry outside the ziplist";
  const uint32_t prevlen_size = zl[p] < kZipBigPrevlen ? 1 : 5;
  if (out_of_range(p + prevlen_size)) return "ziplist entry header runs past the ziplist";
  uint8_t encoding = zl[p + prevlen_size];
  if (encoding < 0xc0) encoding &= 0xc0;  // ZIP_STR_MASK: the top two bits are the string kind
  const uint32_t len_size = ZipEncodingLenSize(encoding);
  if (len_size == 0) return "ziplist entry with an invalid encoding";
  if (out_of_range(p + prevlen_size + len_size)) {
    return "ziplist entry header runs past the ziplist";
  }
  e->prevrawlen = prevlen_size == 1 ? zl[p] : Le32(&zl[p + 1]);
  const uint8_t* h = &zl[p + prevlen_size];
  switch (encoding) {
    case kZipStr06:
      e->len = h[0] & 0x3f;
      break;
    case kZipStr14:
      e->len = (h[0] & 0x3fu) << 8 | h[1];
      break;
    case kZipStr32:
      e->len = uint32_t{h[1]} << 24 | uint32_t{h[2]} << 16 | uint32_t{h[3]} << 8 | h[4];
      break;
    case kZipInt8:
      e->len = 1;
      break;
    case kZipInt16:
      e->len = 2;
      break;
    case kZipInt24:
      e->len = 3;
      break;
    case kZipInt32:
      e->len = 4;
      break;
    case kZipInt64:
      e->len = 8;
      break;
    default:
      e->len = 0;  // 4-bit immediate
      break;
  }
  e->encoding = encoding;
  e->headersize = prevlen_size + len_size;
  if (out_of_range(p + e->headersize + e->len)) return "ziplist entry runs past the ziplist";
  if (e->prevrawlen > p || out_of_range(p - e->prevrawlen)) {
    return "ziplist entry's previous-entry length reaches before the first entry";
  }
  return nullptr;
}

// zipLoadInteger for a validated integer entry whose data starts at p.
int64_t ZipInteger(const uint8_t* p, uint8_t encoding) {
  switch (encoding) {
    case kZipInt8:
      return static_cast<int8_t>(p[0]);
    case kZipInt16:
      return static_cast<int16_t>(Le16(p));
    case kZipInt24:
      // Three bytes placed in the top of an int32, then shifted down with sign extension.
      return static_cast<int32_t>(uint32_t{p[0]} << 8 | uint32_t{p[1]} << 16 |
                                  uint32_t{p[2]} << 24) >>
             8;
    case kZipInt32:
      return static_cast<int32_t>(Le32(p));
    case kZipInt64:
      return static_cast<int64_t>(Le64(p));
    default:
      return (encoding & 0x0f) - 1;  // 4-bit immediate, 0..12
  }
}

}  // namespace

// --- FieldSet -----------------------------------------------------------------------------------

void FieldSet::AddBytes(const uint8_t* data, size_t size, uint64_t origin) {
  // Redis keys its duplicate dictionary by the string form of each field, so a string that is
  // the canonical text of an integer is the same field as that integer.
  int64_t value;
  if (ParseCanonicalInt64(data, size, &value)) {
    AddInteger(value, origin);
  } else {
    // A null pointer marks an integer, so an empty string gets a real (if unread) address.
    static constexpr uint8_t kEmptyString[1] = {0};
    Add(data != nullptr ? data : kEmptyString, size, 0, origin);
  }
}

void FieldSet::AddInteger(int64_t value, uint64_t origin) { Add(nullptr, 0, value, origin); }

void FieldSet::Add(const uint8_t* data, size_t size, int64_t value, uint64_t origin) {
  // A field past the limit (or one of 4 GiB, which no limit lets through in practice) leaves
  // the set incomplete: no verdict on duplicates rather than a wrong one.
  if (fields_.size() >= max_fields_ || size > UINT32_MAX || fields_.size() >= kEmptySlot) {
    overflowed_ = true;
    return;
  }
  const uint64_t h = data == nullptr ? Mix(static_cast<uint64_t>(value)) : HashBytes(data, size);
  fields_.push_back(
      {data, static_cast<uint32_t>(size), static_cast<uint32_t>(h >> 32), value, origin});
}

bool FieldSet::HasDuplicate(uint64_t* origin) {
  if (overflowed_ || fields_.size() < 2) return false;
  size_t capacity = 4;
  while (capacity < 2 * fields_.size()) capacity <<= 1;
  slots_.assign(capacity, kEmptySlot);  // keeps the largest table so far: no new allocation
  const size_t mask = capacity - 1;
  for (size_t i = 0; i < fields_.size(); ++i) {
    const Field& f = fields_[i];
    for (size_t at = f.hash & mask;; at = (at + 1) & mask) {
      const uint32_t other = slots_[at];
      if (other == kEmptySlot) {
        slots_[at] = static_cast<uint32_t>(i);
        break;
      }
      const Field& g = fields_[other];
      const bool equal =
          g.hash == f.hash && (g.data == nullptr) == (f.data == nullptr) &&
          (f.data == nullptr ? g.value == f.value
                             : g.size == f.size && std::memcmp(g.data, f.data, f.size) == 0);
      if (equal) {
        // Fields go in in the order they were added, as Redis adds them, so the first repeat
        // found is the one where Redis stops.
        if (origin != nullptr) *origin = f.origin;
        return true;
      }
    }
  }
  return false;
}

bool ParseCanonicalInt64(const uint8_t* s, size_t size, int64_t* value) {
  // util.c string2ll, which rejects 21 characters and more before looking at them.
  if (size == 0 || size >= 21) return false;
  if (size == 1 && s[0] == '0') {
    *value = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative && ++i == size) return false;
  if (s[i] < '1' || s[i] > '9') return false;
  uint64_t v = static_cast<uint64_t>(s[i++] - '0');
  for (; i < size && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > UINT64_MAX / 10) return false;
    v *= 10;
    if (v > UINT64_MAX - static_cast<uint64_t>(s[i] - '0')) return false;
    v += static_cast<uint64_t>(s[i] - '0');
  }
  if (i < size) return false;
  if (negative) {
    if (v > uint64_t{1} << 63) return false;
    *value = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *value = static_cast<int64_t>(v);
  }
  return true;
}

// --- validators ---------------------------------------------------------------------------------

const char* ValidateListpack(std::span<const uint8_t> lp, BlobShape shape, FieldSet& fields,
                             uint64_t* entries) {
  if (const char* fault = CheckListpackHeader(lp)) return fault;
  fields.Clear();
  const uint16_t header_count = Le16(lp.data() + 4);
  uint64_t count = 0;
  size_t p = kListpackHeader;
  while (p != kNone && lp[p] != kEnd) {
    const size_t entry = p;
    if (const char* fault = LpValidateNext(lp, &p)) return fault;
    if (IsKeyed(shape, count)) {
      const LpValue v = LpGet(&lp[entry]);
      if (v.data == nullptr) {
        fields.AddInteger(v.integer);
      } else {
        fields.AddBytes(v.data, static_cast<size_t>(v.size));
      }
    }
    ++count;
  }
  if (p != lp.size() - 1) return "listpack has a 0xFF byte before its end";
  if (header_count != kUnknownCount && header_count != count) {
    return "listpack entry count differs from its header";
  }
  if (const char* fault = CheckShape(shape, count, fields)) return fault;
  if (entries != nullptr) *entries = count;
  return nullptr;
}

const char* ValidateZiplist(std::span<const uint8_t> zl, BlobShape shape, FieldSet& fields,
                            uint64_t* entries) {
  const uint64_t size = zl.size();
  if (size < kZiplistHeader + 1) return "ziplist shorter than its header";
  if (Le32(zl.data()) != size) return "ziplist header length differs from the string length";
  if (zl.back() != kEnd) return "ziplist does not end with 0xFF";
  const uint32_t tail = Le32(zl.data() + 4);
  if (tail > size - 1) return "ziplist tail offset beyond its end";
  fields.Clear();
  const uint16_t header_count = Le16(zl.data() + 8);
  uint64_t count = 0;
  uint64_t p = kZiplistHeader;
  uint64_t prev = kNone;
  uint64_t prev_size = 0;
  while (zl[p] != kEnd) {
    ZipEntry e;
    if (const char* fault = ZipEntrySafe(zl, p, &e)) return fault;
    if (e.prevrawlen != prev_size) {
      return "ziplist entry's previous-entry length differs from the previous entry";
    }
    if (IsKeyed(shape, count)) {
      const uint8_t* data = &zl[p + e.headersize];
      if (e.encoding < 0xc0) {
        fields.AddBytes(data, e.len);
      } else {
        fields.AddInteger(ZipInteger(data, e.encoding));
      }
    }
    prev_size = uint64_t{e.headersize} + e.len;
    prev = p;
    p += prev_size;
    ++count;
  }
  if (p != size - 1) return "ziplist has a 0xFF byte before its end";
  if (prev != kNone && prev != tail) return "ziplist tail offset is not its last entry";
  if (header_count != kUnknownCount && header_count != count) {
    return "ziplist entry count differs from its header";
  }
  if (const char* fault = CheckShape(shape, count, fields)) return fault;
  if (entries != nullptr) *entries = count;
  return nullptr;
}

const char* ValidateIntset(std::span<const uint8_t> is, uint64_t* entries) {
  if (is.size() < 8) return "intset shorter than its header";
  const uint32_t width = Le32(is.data());
  if (width != 2 && width != 4 && width != 8) return "intset encoding is not 2, 4 or 8";
  const uint32_t count = Le32(is.data() + 4);
  if (8 + uint64_t{width} * count != is.size()) return "intset size differs from its header";
  // An empty set is never written: Redis deletes a set with its last member.
  if (count == 0) return "intset is empty";
  const auto at = [&](uint32_t i) -> int64_t {
    const uint8_t* p = is.data() + 8 + uint64_t{width} * i;
    return width == 2   ? static_cast<int16_t>(Le16(p))
           : width == 4 ? static_cast<int32_t>(Le32(p))
                        : static_cast<int64_t>(Le64(p));
  };
  int64_t prev = at(0);
  for (uint32_t i = 1; i < count; ++i) {
    const int64_t cur = at(i);
    if (cur <= prev) return "intset values are not in strictly ascending order";
    prev = cur;
  }
  if (entries != nullptr) *entries = count;
  return nullptr;
}

const char* ValidateZipmap(std::span<const uint8_t> zm, FieldSet& fields, uint64_t* entries) {
  if (zm.size() < 2) return "zipmap shorter than its header";
  if (zm.back() != kEnd) return "zipmap does not end with 0xFF";
  const uint64_t last = zm.size() - 1;
  const auto out_of_range = [last](uint64_t at) { return at < 2 || at > last; };
  // A length is one byte below 254, else 254 and a 32-bit length (255 ends the map).
  const auto length_size = [&](uint64_t p) -> uint64_t { return zm[p] < 254 ? 1 : 5; };
  const auto length = [&](uint64_t p) -> uint32_t {
    return zm[p] < 254 ? zm[p] : Le32(&zm[p + 1]);
  };
  fields.Clear();
  uint64_t count = 0;
  uint64_t p = 1;  // past the count byte
  while (zm[p] != kEnd) {
    uint64_t s = length_size(p);
    if (out_of_range(p + s)) return "zipmap field length runs past the zipmap";
    const uint32_t field_size = length(p);
    p += s;
    const uint64_t field_at = p;
    p += field_size;
    if (out_of_range(p)) return "zipmap field runs past the zipmap";
    s = length_size(p);
    if (out_of_range(p + s)) return "zipmap value length runs past the zipmap";
    const uint32_t value_size = length(p);
    p += s;
    const uint8_t free = zm[p++];
    // zipmap.c adds the two in unsigned int: mirror its wrap-around so that the walk lands where
    // Redis's does.
    p += static_cast<uint32_t>(value_size + free);
    ++count;
    if (out_of_range(p)) return "zipmap value runs past the zipmap";
    // rdbLoadObject converts the zipmap to a listpack and refuses an entry that would take it
    // over 1 GiB (lpSafeToAdd); with the wrap-around above a value can claim nearly 4 GiB.
    if (uint64_t{field_size} + value_size > (uint64_t{1} << 30)) {
      return "zipmap entry larger than a listpack may hold";
    }
    fields.AddBytes(&zm[field_at], field_size);
  }
  // An empty hash is never written: Redis deletes a hash with its last field.
  if (count == 0) return "zipmap is empty";
  if (zm[0] != 254 && zm[0] != count) return "zipmap entry count differs from its header";
  if (fields.HasDuplicate()) return "duplicate field";
  if (entries != nullptr) *entries = count;
  return nullptr;
}

const char* ValidateStreamListpack(std::span<const uint8_t> lp) {
  // t_stream.c checks only the listpack header first, then walks the entries itself: the header
  // entry count is never compared with the entries, unlike in other listpacks.
  if (const char* fault = CheckListpackHeader(lp)) return fault;
  size_t p = lp[kListpackHeader] == kEnd ? kNone : kListpackHeader;
  size_t next = p;
  // Moves to the next entry: p = next, and next past it, failing where lpValidateNext does.
  const auto advance = [&]() -> const char* {
    p = next;
    return LpValidateNext(lp, &next);
  };
  const char* const kNotInteger = "stream listpack entry is not an integer where one is expected";
  if (const char* fault = LpValidateNext(lp, &next)) return fault;
  if (p == kNone) return "stream listpack is empty";
  // Counts use unsigned arithmetic so that corrupt values wrap instead of overflowing; the
  // comparisons below give the same result as Redis's int64_t ones on the usual two's complement.
  int64_t v;
  if (!LpInteger(lp, p, &v)) return kNotInteger;
  uint64_t entry_count = static_cast<uint64_t>(v);
  if (const char* fault = advance()) return fault;
  if (!LpInteger(lp, p, &v)) return kNotInteger;
  const uint64_t deleted_count = static_cast<uint64_t>(v);
  if (const char* fault = advance()) return fault;
  int64_t master_fields;
  if (!LpInteger(lp, p, &master_fields)) return kNotInteger;
  if (const char* fault = advance()) return fault;
  for (int64_t j = 0; j < master_fields; ++j) {
    if (const char* fault = advance()) return fault;
  }
  if (!LpInteger(lp, p, &v) || v != 0) return "stream master entry does not end with 0";
  if (const char* fault = advance()) return fault;

  constexpr int64_t kSameFields = 2;  // STREAM_ITEM_FLAG_SAMEFIELDS
  // A negative total loops until the listpack runs out, as in Redis, and then fails.
  for (entry_count += deleted_count; entry_count != 0; --entry_count) {
    if (p == kNone) return "stream listpack ends before its last entry";
    int64_t fields = master_fields;
    uint64_t extra_fields = 3;
    int64_t flags;
    if (!LpInteger(lp, p, &flags)) return kNotInteger;
    if (const char* fault = advance()) return fault;
    for (int id_part = 0; id_part < 2; ++id_part) {  // the ID's ms and seq deltas
      if (!LpInteger(lp, p, &v)) return kNotInteger;
      if (const char* fault = advance()) return fault;
    }
    if ((flags & kSameFields) == 0) {
      if (!LpInteger(lp, p, &fields)) return kNotInteger;
      if (const char* fault = advance()) return fault;
      for (int64_t j = 0; j < fields; ++j) {
        if (const char* fault = advance()) return fault;
      }
      extra_fields += static_cast<uint64_t>(fields) + 1;
    }
    for (int64_t j = 0; j < fields; ++j) {
      if (const char* fault = advance()) return fault;
    }
    if (!LpInteger(lp, p, &v)) return kNotInteger;
    if (static_cast<uint64_t>(v) != static_cast<uint64_t>(fields) + extra_fields) {
      return "stream entry lp-count differs from its fields";
    }
    if (const char* fault = advance()) return fault;
  }
  if (next != kNone) return "stream listpack has entries after its last stream entry";
  return nullptr;
}

}  // namespace finalsnap::rdb::detail
