// Deep checks of the blob encodings an RDB stores as single strings: listpack, ziplist, intset,
// zipmap, and the stream layout inside a listpack. Each validator takes a whole blob and returns
// nullptr when Redis would accept it or a fixed fault string when it would not.
//
// They mirror Redis 7.0's own deep integrity checks, which redis-check-rdb runs because it loads
// with sanitize-dump-payload yes (listpack.c lpValidateIntegrity / lpValidateNext, ziplist.c
// ziplistValidateIntegrity / zipEntrySafe, intset.c intsetValidateIntegrity, zipmap.c
// zipmapValidateIntegrity, t_stream.c streamValidateListpackIntegrity), together with the checks
// rdbLoadObject adds around them: no duplicate field (hash, zset, set, zipmap), an even number of
// entries for field-value pairs. They follow those functions check by check, including their
// quirks, because the point is to reach the same verdict as Redis on every input, not to define
// a stricter or looser format.
//
// The validator (validator.cc) runs them in deep mode only: when the file has a CRC-64, the CRC
// already proves these bytes are the ones the server wrote.
#ifndef FINALSNAP_RDB_BLOB_H_
#define FINALSNAP_RDB_BLOB_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace finalsnap::rdb::detail {

// Little-endian integers, as listpacks, ziplists, intsets and RDB fields store them.
inline uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t Le64(const uint8_t* p) { return uint64_t{Le32(p)} | uint64_t{Le32(p + 4)} << 32; }

// How the entries of a listpack or ziplist group, as the value type that holds it says.
enum class BlobShape : uint8_t {
  kList,      // list elements and quicklist nodes: any entries, duplicates allowed
  kSet,       // set members: no duplicate entry
  kPairs,     // hash field-value or zset member-score pairs: even count, no duplicate field
  kTriplets,  // hash field-value-TTL triplets (Redis 7.4+): count divisible by 3, no dup field
};

// Reusable memory for the duplicate checks, so that checking many blobs allocates only when one
// holds more fields than any before it. It holds at most the fields that fit a memory limit; past
// it, further fields are dropped and HasDuplicate() reports none (the check is skipped). The
// check is a hash table over the fields in the order they were added: linear time, where sorting
// long members with a common prefix took most of deep mode's time.
class FieldSet {
 public:
  // Bounds the memory the set may take, in bytes (the default is no bound): the fields and the
  // hash table, at most kBytesPerField bytes per field.
  void SetMemoryLimit(size_t bytes) { max_fields_ = bytes / kBytesPerField; }
  void Clear() {
    fields_.clear();
    overflowed_ = false;
  }
  // Whether fields were dropped since Clear() for want of room.
  bool overflowed() const { return overflowed_; }
  // A field given as bytes that stay in place until HasDuplicate() has run. `origin` is where the
  // caller found it (a stream offset, say), given back for a duplicate.
  void AddBytes(const uint8_t* data, size_t size, uint64_t origin = 0);
  // A field stored as an integer.
  void AddInteger(int64_t value, uint64_t origin = 0);
  // Whether two fields added since Clear() are equal as Redis compares them: an integer equals a
  // string holding its decimal text, since Redis turns both into the same string. On a duplicate,
  // `origin` (if not null) gets the origin of the earliest field that repeats an earlier one,
  // where Redis, which adds them in order, stops. False after an overflow.
  bool HasDuplicate(uint64_t* origin = nullptr);

 private:
  struct Field {
    const uint8_t* data;  // nullptr for an integer
    uint32_t size;
    uint32_t hash;
    int64_t value;
    uint64_t origin;
  };
  // A field and its share of a hash table of at most four slots per field.
  static constexpr size_t kBytesPerField = sizeof(Field) + 4 * sizeof(uint32_t);

  void Add(const uint8_t* data, size_t size, int64_t value, uint64_t origin);

  std::vector<Field> fields_;
  std::vector<uint32_t> slots_;  // the hash table: indexes into fields_, or kEmptySlot
  size_t max_fields_ = SIZE_MAX;
  bool overflowed_ = false;
};

// Each validator returns nullptr if the blob is valid, else a description of the first fault.
// `entries`, when not null, receives the number of entries (elements, members, fields and values
// each count) of a valid blob.
const char* ValidateListpack(std::span<const uint8_t> lp, BlobShape shape, FieldSet& fields,
                             uint64_t* entries = nullptr);
const char* ValidateZiplist(std::span<const uint8_t> zl, BlobShape shape, FieldSet& fields,
                            uint64_t* entries = nullptr);
const char* ValidateIntset(std::span<const uint8_t> is, uint64_t* entries = nullptr);
const char* ValidateZipmap(std::span<const uint8_t> zm, FieldSet& fields,
                           uint64_t* entries = nullptr);
// A stream node listpack: a valid listpack whose entries form the master entry (count, deleted,
// field names, 0) and then that many stream entries (flags, ID deltas, fields, values, lp-count).
const char* ValidateStreamListpack(std::span<const uint8_t> lp);

// Redis's string2ll: whether `s` is the canonical decimal text of an int64 (no sign other than a
// leading '-', no leading zeros, no spaces, at most 20 characters).
bool ParseCanonicalInt64(const uint8_t* s, size_t size, int64_t* value);

}  // namespace finalsnap::rdb::detail

#endif  // FINALSNAP_RDB_BLOB_H_
