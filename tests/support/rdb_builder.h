// RdbBuilder: writes small synthetic RDB files byte by byte, for tests of the validator that need
// what no server available here writes (RDB versions 1..9, Valkey 80/81, every type and opcode)
// and for precise corruptions (a chosen byte, a chosen length, a valid CRC over corrupt data).
//
//   RdbBuilder b("REDIS", 12);
//   b.Aux("redis-ver", "7.4.0").SelectDb(0).ResizeDb(1, 0).Key(type::kString, "k").String("v");
//   std::vector<uint8_t> rdb = b.Finish();   // EOF opcode + correct CRC-64
//
// Blob helpers (Listpack, Ziplist, Intset, Zipmap) produce structurally valid encodings.
#ifndef FINALSNAP_TESTS_SUPPORT_RDB_BUILDER_H_
#define FINALSNAP_TESTS_SUPPORT_RDB_BUILDER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace finalsnap::testing {

enum class Trailer { kCorrectCrc, kZeroCrc, kWrongCrc, kNone };

class RdbBuilder {
 public:
  RdbBuilder(std::string_view magic, int version);

  RdbBuilder& Byte(uint8_t b);
  RdbBuilder& Raw(std::string_view bytes);
  RdbBuilder& Le32(uint32_t v);
  RdbBuilder& Le64(uint64_t v);
  // A length in its shortest form, or in a chosen form: 1, 2, 5 or 9 bytes.
  RdbBuilder& Length(uint64_t v, int form = 0);
  RdbBuilder& String(std::string_view s);           // plain
  RdbBuilder& IntString(int64_t v);                  // INT8/16/32, the smallest that fits
  RdbBuilder& LzfString(std::string_view s);         // LZF-compressed (with back-references)
  RdbBuilder& Aux(std::string_view key, std::string_view value);
  RdbBuilder& SelectDb(uint64_t db);
  RdbBuilder& ResizeDb(uint64_t keys, uint64_t expires);
  RdbBuilder& ExpireMs(uint64_t unix_ms);
  RdbBuilder& Key(uint8_t type, std::string_view key);

  // Appends the EOF opcode and the trailer; returns the whole file.
  std::vector<uint8_t> Finish(Trailer trailer = Trailer::kCorrectCrc);
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  int version_;
  std::vector<uint8_t> bytes_;
};

// Structurally valid blob encodings of string elements.
std::string Listpack(const std::vector<std::string>& entries);
std::string Ziplist(const std::vector<std::string>& entries);
std::string Intset(const std::vector<int64_t>& values);
std::string Zipmap(const std::vector<std::pair<std::string, std::string>>& pairs);
// LZF compression (naive greedy matcher), as Redis's lzf_compress would produce a valid stream.
std::string LzfCompress(std::string_view in);

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_RDB_BUILDER_H_
