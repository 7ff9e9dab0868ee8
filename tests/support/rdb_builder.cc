#include "support/rdb_builder.h"

#include <algorithm>
#include <stdexcept>

#include "finalsnap/rdb/crc64.h"
#include "finalsnap/rdb/format.h"

namespace finalsnap::testing {
namespace {

void PutLe(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

RdbBuilder::RdbBuilder(std::string_view magic, int version) : version_(version) {
  std::string m(magic);
  const int digits = magic == "VALKEY" ? 3 : 4;
  std::string v = std::to_string(version);
  m += std::string(digits - std::min<int>(digits, static_cast<int>(v.size())), '0') + v;
  Raw(m);
}

RdbBuilder& RdbBuilder::Byte(uint8_t b) {
  bytes_.push_back(b);
  return *this;
}

RdbBuilder& RdbBuilder::Raw(std::string_view s) {
  bytes_.insert(bytes_.end(), s.begin(), s.end());
  return *this;
}

RdbBuilder& RdbBuilder::Le32(uint32_t v) {
  std::string s;
  PutLe(s, v, 4);
  return Raw(s);
}

RdbBuilder& RdbBuilder::Le64(uint64_t v) {
  std::string s;
  PutLe(s, v, 8);
  return Raw(s);
}

RdbBuilder& RdbBuilder::Length(uint64_t v, int form) {
  if (form == 0) form = v < 64 ? 1 : v < 16384 ? 2 : v <= UINT32_MAX ? 5 : 9;
  switch (form) {
    case 1:
      if (v >= 64) throw std::invalid_argument("length does not fit 6 bits");
      return Byte(static_cast<uint8_t>(v));
    case 2:
      if (v >= 16384) throw std::invalid_argument("length does not fit 14 bits");
      Byte(static_cast<uint8_t>(0x40 | (v >> 8)));
      return Byte(static_cast<uint8_t>(v));
    case 5:
      Byte(0x80);
      for (int i = 3; i >= 0; --i) Byte(static_cast<uint8_t>(v >> (8 * i)));
      return *this;
    default:
      Byte(0x81);
      for (int i = 7; i >= 0; --i) Byte(static_cast<uint8_t>(v >> (8 * i)));
      return *this;
  }
}

RdbBuilder& RdbBuilder::String(std::string_view s) {
  Length(s.size());
  return Raw(s);
}

RdbBuilder& RdbBuilder::IntString(int64_t v) {
  std::string s;
  if (v >= INT8_MIN && v <= INT8_MAX) {
    Byte(0xC0);
    PutLe(s, static_cast<uint64_t>(v), 1);
  } else if (v >= INT16_MIN && v <= INT16_MAX) {
    Byte(0xC1);
    PutLe(s, static_cast<uint64_t>(v), 2);
  } else {
    Byte(0xC2);
    PutLe(s, static_cast<uint64_t>(v), 4);
  }
  return Raw(s);
}

RdbBuilder& RdbBuilder::LzfString(std::string_view s) {
  const std::string compressed = LzfCompress(s);
  Byte(0xC3);
  Length(compressed.size());
  Length(s.size());
  return Raw(compressed);
}

RdbBuilder& RdbBuilder::Aux(std::string_view key, std::string_view value) {
  Byte(rdb::opcode::kAux);
  String(key);
  return String(value);
}

RdbBuilder& RdbBuilder::SelectDb(uint64_t db) {
  Byte(rdb::opcode::kSelectDb);
  return Length(db);
}

RdbBuilder& RdbBuilder::ResizeDb(uint64_t keys, uint64_t expires) {
  Byte(rdb::opcode::kResizeDb);
  Length(keys);
  return Length(expires);
}

RdbBuilder& RdbBuilder::ExpireMs(uint64_t unix_ms) {
  Byte(rdb::opcode::kExpireTimeMs);
  return Le64(unix_ms);
}

RdbBuilder& RdbBuilder::Key(uint8_t type, std::string_view key) {
  Byte(type);
  return String(key);
}

std::vector<uint8_t> RdbBuilder::Finish(Trailer trailer) {
  Byte(rdb::opcode::kEof);
  if (trailer == Trailer::kNone || version_ < rdb::kFirstVersionWithChecksum) return bytes_;
  uint64_t crc = rdb::Crc64(0, bytes_);
  if (trailer == Trailer::kZeroCrc) crc = 0;
  if (trailer == Trailer::kWrongCrc) crc ^= 1;
  return Le64(crc).bytes_;
}

std::string Listpack(const std::vector<std::string>& entries) {
  std::string body;
  for (const std::string& e : entries) {
    if (e.size() >= 64) throw std::invalid_argument("listpack helper takes entries < 64 bytes");
    body.push_back(static_cast<char>(0x80 | e.size()));  // 6-bit string encoding
    body += e;
    body.push_back(static_cast<char>(1 + e.size()));  // back-length of encoding + data
  }
  std::string lp;
  PutLe(lp, 6 + body.size() + 1, 4);
  PutLe(lp, entries.size(), 2);
  return lp + body + '\xff';
}

std::string Ziplist(const std::vector<std::string>& entries) {
  std::string body;
  size_t prev = 0;
  size_t tail = 10;
  for (const std::string& e : entries) {
    if (e.size() >= 64) throw std::invalid_argument("ziplist helper takes entries < 64 bytes");
    tail = 10 + body.size();
    body.push_back(static_cast<char>(prev));     // prevlen (< 254)
    body.push_back(static_cast<char>(e.size()));  // 00pppppp string
    body += e;
    prev = 2 + e.size();
  }
  std::string zl;
  PutLe(zl, 10 + body.size() + 1, 4);
  PutLe(zl, tail, 4);
  PutLe(zl, entries.size(), 2);
  return zl + body + '\xff';
}

std::string Intset(const std::vector<int64_t>& values) {
  std::string is;
  PutLe(is, 8, 4);
  PutLe(is, values.size(), 4);
  for (int64_t v : values) PutLe(is, static_cast<uint64_t>(v), 8);
  return is;
}

std::string Zipmap(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string zm;
  zm.push_back(static_cast<char>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    zm.push_back(static_cast<char>(k.size()));
    zm += k;
    zm.push_back(static_cast<char>(v.size()));
    zm.push_back('\0');  // free bytes
    zm += v;
  }
  return zm + '\xff';
}

std::string LzfCompress(std::string_view in) {
  std::string out;
  std::string literal;
  auto flush = [&] {
    for (size_t i = 0; i < literal.size(); i += 32) {
      const size_t n = std::min<size_t>(32, literal.size() - i);
      out.push_back(static_cast<char>(n - 1));
      out.append(literal, i, n);
    }
    literal.clear();
  };
  size_t i = 0;
  while (i < in.size()) {
    size_t best_len = 0;
    size_t best_back = 0;
    const size_t window_start = i > 8192 ? i - 8192 : 0;
    for (size_t j = window_start; j < i; ++j) {
      size_t len = 0;
      while (i + len < in.size() && len < 264 && in[j + len] == in[i + len]) ++len;
      if (len > best_len) {
        best_len = len;
        best_back = i - j;
      }
    }
    if (best_len >= 3) {
      flush();
      const size_t l = best_len - 2;
      const size_t off = best_back - 1;
      if (l < 7) {
        out.push_back(static_cast<char>((l << 5) | (off >> 8)));
      } else {
        out.push_back(static_cast<char>((7 << 5) | (off >> 8)));
        out.push_back(static_cast<char>(l - 7));
      }
      out.push_back(static_cast<char>(off & 0xff));
      i += best_len;
    } else {
      literal.push_back(in[i++]);
    }
  }
  flush();
  return out;
}

}  // namespace finalsnap::testing
