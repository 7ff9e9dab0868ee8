// The RDB file format: magic, versions, opcodes, object types and the length encoding.
//
// Start here to read the validator (validator.h). Everything in this header is a constant or a
// small pure function over bytes; nothing does I/O.
//
// File layout (rdb.c rdbSaveRio order):
//
//   "REDIS" dddd | "VALKEY" ddd            9-byte magic, ASCII decimal version
//   AUX*  MODULE_AUX*  FUNCTION2*          header records
//   ( SELECTDB RESIZEDB? record* )*        one section per non-empty database
//   MODULE_AUX*                            after-keyspace module records
//   EOF (0xFF)  crc64 (8 bytes, LE)        crc64 over every byte up to and including 0xFF
//
//   record := EXPIRETIME_MS? (IDLE | FREQ)? type key value
//
// Length encoding (first byte, top two bits):
//
//   00xxxxxx                     6-bit length
//   01xxxxxx yyyyyyyy            14-bit length, high bits first
//   10000000 + 4 bytes           32-bit length, big-endian
//   10000001 + 8 bytes           64-bit length, big-endian
//   11xxxxxx                     special string encoding: INT8, INT16, INT32 (little-endian), LZF
#ifndef FINALSNAP_RDB_FORMAT_H_
#define FINALSNAP_RDB_FORMAT_H_

#include <cstdint>
#include <string_view>

namespace finalsnap::rdb {

// Which family wrote the file. Object types >= 22 and opcodes 242..244 mean different things in
// Redis and Valkey, so everything that depends on them dispatches on (family, version).
enum class Family : uint8_t { kRedis, kValkey };

inline constexpr std::string_view kRedisMagic = "REDIS";
inline constexpr std::string_view kValkeyMagic = "VALKEY";
inline constexpr int kMagicSize = 9;

// Versions this validator reads. Redis 1..12; Valkey's own numbering (magic VALKEY) 80..81.
inline constexpr int kMinRedisVersion = 1;
inline constexpr int kMaxRedisVersion = 12;
inline constexpr int kMinValkeyVersion = 80;
inline constexpr int kMaxValkeyVersion = 81;
// RDB files carry a trailing CRC-64 from version 5 on.
inline constexpr int kFirstVersionWithChecksum = 5;

namespace opcode {
inline constexpr uint8_t kValkeyUpdate = 242;      // Valkey 81+
inline constexpr uint8_t kConflicting243 = 243;    // Valkey SLOT_IMPORT, Redis 8.6 KEY_META
inline constexpr uint8_t kSlotInfo = 244;          // Redis 7.4+ cluster mode
inline constexpr uint8_t kFunction2 = 245;
inline constexpr uint8_t kFunctionPreGa = 246;
inline constexpr uint8_t kModuleAux = 247;
inline constexpr uint8_t kIdle = 248;
inline constexpr uint8_t kFreq = 249;
inline constexpr uint8_t kAux = 250;
inline constexpr uint8_t kResizeDb = 251;
inline constexpr uint8_t kExpireTimeMs = 252;
inline constexpr uint8_t kExpireTime = 253;
inline constexpr uint8_t kSelectDb = 254;
inline constexpr uint8_t kEof = 255;
}  // namespace opcode

namespace type {
inline constexpr uint8_t kString = 0;
inline constexpr uint8_t kList = 1;
inline constexpr uint8_t kSet = 2;
inline constexpr uint8_t kZset = 3;
inline constexpr uint8_t kHash = 4;
inline constexpr uint8_t kZset2 = 5;
inline constexpr uint8_t kModulePreGa = 6;
inline constexpr uint8_t kModule2 = 7;
inline constexpr uint8_t kHashZipmap = 9;
inline constexpr uint8_t kListZiplist = 10;
inline constexpr uint8_t kSetIntset = 11;
inline constexpr uint8_t kZsetZiplist = 12;
inline constexpr uint8_t kHashZiplist = 13;
inline constexpr uint8_t kListQuicklist = 14;
inline constexpr uint8_t kStreamListpacks = 15;
inline constexpr uint8_t kHashListpack = 16;
inline constexpr uint8_t kZsetListpack = 17;
inline constexpr uint8_t kListQuicklist2 = 18;
inline constexpr uint8_t kStreamListpacks2 = 19;
inline constexpr uint8_t kSetListpack = 20;
inline constexpr uint8_t kStreamListpacks3 = 21;
// Redis (RDB 12) meanings of 22..25.
inline constexpr uint8_t kHashMetadataPreGa = 22;
inline constexpr uint8_t kHashListpackExPreGa = 23;
inline constexpr uint8_t kHashMetadata = 24;
inline constexpr uint8_t kHashListpackEx = 25;
// Valkey (VALKEY080+) meaning of 22.
inline constexpr uint8_t kValkeyHash2 = 22;
}  // namespace type

// Special string encodings (the low six bits of an 11xxxxxx length byte).
namespace encoding {
inline constexpr uint8_t kInt8 = 0;
inline constexpr uint8_t kInt16 = 1;
inline constexpr uint8_t kInt32 = 2;
inline constexpr uint8_t kLzf = 3;
}  // namespace encoding

// Module value opcodes (module.c, RDB_MODULE_OPCODE_*).
namespace module_opcode {
inline constexpr uint64_t kEof = 0;
inline constexpr uint64_t kSint = 1;
inline constexpr uint64_t kUint = 2;
inline constexpr uint64_t kFloat = 3;
inline constexpr uint64_t kDouble = 4;
inline constexpr uint64_t kString = 5;
}  // namespace module_opcode

// The name redis-check-rdb uses for an object type ("string", "hash-listpack", ...), or "unknown".
std::string_view TypeName(Family family, uint8_t type);

// Bytes a length takes, from its first byte (1, 2, 5 or 9), or 0 when the first byte is not a
// length (a special encoding, or a reserved 10xxxxxx value).
inline constexpr int LengthSize(uint8_t first) {
  switch (first >> 6) {
    case 0:
      return 1;
    case 1:
      return 2;
    case 2:
      return first == 0x80 ? 5 : first == 0x81 ? 9 : 0;
    default:
      return 0;
  }
}

// Decodes a length whose LengthSize(p[0]) bytes are at p.
inline constexpr uint64_t DecodeLength(const uint8_t* p) {
  switch (p[0] >> 6) {
    case 0:
      return p[0] & 0x3f;
    case 1:
      return (uint64_t{p[0] & 0x3fu} << 8) | p[1];
    default: {
      const int n = p[0] == 0x80 ? 4 : 8;
      uint64_t v = 0;
      for (int i = 1; i <= n; ++i) v = (v << 8) | p[i];
      return v;
    }
  }
}

}  // namespace finalsnap::rdb

#endif  // FINALSNAP_RDB_FORMAT_H_
