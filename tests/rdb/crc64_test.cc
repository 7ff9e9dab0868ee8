// CRC-64 (Jones, Redis's variant) through ISA-L: the check value, chaining, and a real RDB trailer.
#include "finalsnap/rdb/crc64.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

namespace finalsnap::rdb {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Crc64, CheckValue) { EXPECT_EQ(Crc64(0, Bytes("123456789")), 0xe9c6d914c4b8d9caULL); }

TEST(Crc64, EmptyInputLeavesValue) {
  EXPECT_EQ(Crc64(0, {}), 0u);
  EXPECT_EQ(Crc64(42, {}), 42u);
}

TEST(Crc64, ChainingEqualsOnePass) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 131 + (i >> 7)));
  const uint64_t whole = Crc64(0, Bytes(data));
  for (size_t split : {size_t{1}, size_t{7}, size_t{4096}, size_t{65537}}) {
    uint64_t crc = 0;
    for (size_t i = 0; i < data.size(); i += split) {
      crc = Crc64(crc, Bytes(std::string_view(data).substr(i, split)));
    }
    EXPECT_EQ(crc, whole) << "split " << split;
  }
  Crc64Tap tap;
  tap.Update(Bytes(std::string_view(data).substr(0, 10)));
  tap.Update(Bytes(std::string_view(data).substr(10)));
  EXPECT_EQ(tap.value(), whole);
}

TEST(Crc64, MatchesTrailerOfARealRdb) {
  std::ifstream f(FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-default.rdb",
                  std::ios::binary);
  std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), {});
  ASSERT_GT(d.size(), 8u);
  uint64_t stored;
  std::memcpy(&stored, d.data() + d.size() - 8, 8);  // little-endian host
  EXPECT_EQ(Crc64(0, {d.data(), d.size() - 8}), stored);
}

}  // namespace
}  // namespace finalsnap::rdb
