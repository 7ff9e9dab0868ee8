// The streaming RDB validator: proves, as the bytes arrive, that a stream is one complete and
// correct RDB file, and reports what it holds.
//
//   Validator v;
//   for (each chunk) if (v.Feed(chunk) == Progress::kError) break;   // any chunking, 1 byte too
//   v.Finish();                                                       // end of input
//   v.report() / v.diagnostic()
//
// The validator parses every record from the magic to the EOF opcode (every opcode, every value
// type in every encoding, module values by their typed opcodes, streams with consumer groups),
// counts keys and expires per database, and checks the trailing CRC-64. It does no I/O and keeps
// no more than a few fixed-size buffers, whatever the file size: strings are skipped as they
// stream past, LZF payloads are checked structurally without being decompressed, and only short
// strings the report needs (aux fields, the current key for diagnostics) are held, up to a cap.
//
// Internals: one table-driven state machine (validator.cc). Each state consumes one primitive
// (a byte, a length, a fixed-size field, a string) and either gets all of it or returns with the
// partial bytes parked in a small carry buffer. Errors are sticky: after the first one, Feed and
// Finish return kError and diagnostic() keeps the first error.
#ifndef FINALSNAP_RDB_VALIDATOR_H_
#define FINALSNAP_RDB_VALIDATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "finalsnap/rdb/errors.h"
#include "finalsnap/rdb/format.h"

namespace finalsnap::rdb {

enum class Progress { kNeedMore, kDone, kError };

enum class ChecksumVerdict {
  kPending,   // the stream has not reached its checksum yet
  kMatch,     // the trailing CRC-64 equals the computed one
  kDisabled,  // the trailer is zero: the server had `rdbchecksum no`
  kAbsent,    // RDB versions before 5 have no checksum
  kMismatch,
};

std::string_view ChecksumVerdictName(ChecksumVerdict v);

struct DbCounts {
  uint64_t keys = 0;
  uint64_t expires = 0;
  friend bool operator==(const DbCounts&, const DbCounts&) = default;
};

struct Report {
  Family family = Family::kRedis;
  int rdb_version = 0;
  // AUX fields in stream order. Integer-encoded values are given as decimal text, LZF values are
  // decompressed; a value longer than Options::max_captured_string is cut to that length.
  std::vector<std::pair<std::string, std::string>> aux;
  std::map<uint64_t, DbCounts> databases;  // only databases that hold keys
  uint64_t functions = 0;                  // FUNCTION2 (and pre-GA FUNCTION) records
  uint64_t module_aux = 0;                 // MODULE_AUX records
  uint64_t slot_info = 0;                  // SLOT_INFO records
  uint64_t bytes = 0;                      // bytes consumed, magic to checksum
  ChecksumVerdict checksum = ChecksumVerdict::kPending;
  uint64_t computed_crc = 0;  // CRC-64 over the bytes up to and including the EOF opcode
  uint64_t stored_crc = 0;    // the trailer as written

  uint64_t TotalKeys() const;
  uint64_t TotalExpires() const;
  // The AUX value for `key`, if present.
  std::optional<std::string> Aux(std::string_view key) const;
};

// What went wrong and where. `offset` is the position in the stream of the first byte of the
// element that could not be read (or the stream length, for a truncation).
struct Diagnostic {
  Errc code{};
  uint64_t offset = 0;
  std::string state;    // the parser state, e.g. "zset-score"
  std::string message;  // e.g. "string length 4294967296 exceeds the limit of 1073741824"
  std::string key;      // the key being read, if any (cut to 128 bytes)
  std::string type;     // the value type being read, if any, e.g. "stream-v3"
  std::optional<uint64_t> db;
  // One line: "corrupt at offset 123 (zset-score, key 'k', type zset-v2): <message>".
  std::string ToString() const;
};

struct Options {
  // Lengths read from the stream are checked against these before anything is done with them.
  uint64_t max_string_length = uint64_t{1} << 32;   // 4 GiB: above any server's proto-max-bulk-len
  uint64_t max_element_count = uint64_t{1} << 32;   // elements of one value; Redis caps at 2^32-1
  uint64_t max_database_index = (uint64_t{1} << 31) - 1;
  size_t max_databases = 1 << 16;                   // distinct databases the report may hold
  size_t max_aux_fields = 256;                      // AUX fields stored in the report
  size_t max_captured_string = 4096;                // bytes of an AUX key or value kept
  // Also prove the inside of LZF-compressed strings: every back-reference inside the output and
  // the expanded length as declared. Off by default because the CRC-64 already proves those bytes
  // and the walk costs most of the validator's time on compressible data; VerifyFile turns it on
  // for files whose checksum is disabled or absent.
  //
  // Deep mode also proves the inside of every listpack, ziplist, intset and zipmap blob (hash,
  // set, zset and list encodings, quicklist nodes, stream listpacks) and the checks Redis's loader
  // makes around them, as redis-check-rdb does (it loads with sanitize-dump-payload yes): no
  // duplicate set member, zset member or hash field, no NaN score, no empty collection, stream
  // consumer PELs that match their group's PEL.
  bool deep = false;
  // In deep mode, the largest blob (decompressed, and for an LZF blob compressed too) held whole
  // for the checks above; a larger blob gets only the header checks of the default mode. It also
  // bounds the member bytes of one set, zset or hash held for the duplicate check (and, at twice
  // this size, their bookkeeping of 48 bytes per field or member), and the IDs of one consumer
  // group PEL (16 bytes each): past it, that blob, collection or group gets no duplicate or PEL
  // check. The buffers are reserved on first use and reused (about 5.25 times this size in all),
  // so this is what deep mode's memory scales with.
  uint64_t max_deep_blob = uint64_t{1} << 20;
};

class Validator {
 public:
  explicit Validator(Options options = {});
  ~Validator();
  Validator(Validator&&) noexcept;
  Validator& operator=(Validator&&) noexcept;

  // Consumes `data`. Returns kNeedMore until the checksum (or, before RDB 5, the EOF opcode) has
  // been read, then kDone. Bytes fed after kDone are an error (the stream holds more than one RDB).
  Progress Feed(std::span<const uint8_t> data);
  // Declares the end of input: kDone if the RDB was complete, else a kTruncated error.
  Progress Finish();

  bool done() const;
  bool failed() const;
  const Report& report() const;
  // Valid when failed().
  const Diagnostic& diagnostic() const;
  // Stream position: bytes consumed so far.
  uint64_t offset() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace finalsnap::rdb

#endif  // FINALSNAP_RDB_VALIDATOR_H_
