// LZF: decompression of kept strings and the streaming structure checker, against streams made
// by a reference-style compressor (tests/support/rdb_builder.cc) and hand-made broken ones.
#include "lzf.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/rdb_builder.h"

namespace finalsnap::rdb::detail {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

const char* CheckInPieces(const std::string& compressed, size_t expanded, size_t piece) {
  LzfChecker c;
  c.Begin(compressed.size(), expanded);
  size_t pos = 0;
  while (pos < compressed.size()) {
    const size_t n = std::min(piece, compressed.size() - pos);
    const size_t took = c.Feed(reinterpret_cast<const uint8_t*>(compressed.data()) + pos, n);
    if (c.error() != nullptr) return c.error();
    EXPECT_EQ(took, n);
    pos += n;
  }
  EXPECT_TRUE(c.complete());
  return c.Finish();
}

TEST(Lzf, RoundTripsAndChecksInAnyPieces) {
  const std::vector<std::string> inputs = {
      "abc", std::string(300, 'a'), "hello hello hello hello world world world",
      std::string(20000, 'x') + "tail" + std::string(9000, 'y')};
  for (const std::string& in : inputs) {
    const std::string z = testing::LzfCompress(in);
    std::string out(in.size(), '\0');
    ASSERT_TRUE(LzfDecompress(Bytes(z), {reinterpret_cast<uint8_t*>(out.data()), out.size()}));
    EXPECT_EQ(out, in);
    for (size_t piece : {size_t{1}, size_t{2}, size_t{5}, z.size()}) {
      EXPECT_EQ(CheckInPieces(z, in.size(), piece), nullptr) << "piece " << piece;
    }
  }
}

TEST(Lzf, RejectsBackReferenceBeforeStart) {
  const std::string z = std::string("\x00" "a", 2) + "\x20\x05";  // back 6 with 1 byte of output
  std::string out(4, '\0');
  EXPECT_FALSE(LzfDecompress(Bytes(z), {reinterpret_cast<uint8_t*>(out.data()), out.size()}));
  EXPECT_STREQ(CheckInPieces(z, 4, 1), "LZF back-reference before the start of the output");
}

TEST(Lzf, RejectsWrongExpandedLength) {
  const std::string z = testing::LzfCompress(std::string(100, 'q'));
  EXPECT_STREQ(CheckInPieces(z, 101, 3), "LZF data expands to fewer bytes than declared");
  EXPECT_STREQ(CheckInPieces(z, 99, 3), "LZF back-reference overflows the output");
}

TEST(Lzf, RejectsDataEndingInsideAnInstruction) {
  std::string z = testing::LzfCompress("abcdefgh");
  z.pop_back();  // the literal run now claims one more byte than there is
  EXPECT_NE(CheckInPieces(z, 8, 1), nullptr);
}

}  // namespace
}  // namespace finalsnap::rdb::detail
