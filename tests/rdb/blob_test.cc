// The deep blob checks (rdb/blob.h) on valid encodings from the test builder and on hand-broken
// ones, and the validator's deep mode around them: each fault must be caught with
// Options::deep and only then, since the default leans on the CRC-64 for these bytes.
#include "blob.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "support/feed.h"
#include "support/rdb_builder.h"

namespace finalsnap::rdb {
namespace {

using detail::BlobShape;
using detail::FieldSet;
using testing::Chunking;
using testing::RdbBuilder;
using testing::Trailer;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The fault text for a blob, or "" when it is valid, so that failures print what was found.
std::string ListpackFault(const std::string& lp, BlobShape shape = BlobShape::kList) {
  FieldSet fields;
  const char* fault = detail::ValidateListpack(Bytes(lp), shape, fields);
  return fault == nullptr ? "" : fault;
}
std::string ZiplistFault(const std::string& zl, BlobShape shape = BlobShape::kList) {
  FieldSet fields;
  const char* fault = detail::ValidateZiplist(Bytes(zl), shape, fields);
  return fault == nullptr ? "" : fault;
}
std::string IntsetFault(const std::string& is) {
  const char* fault = detail::ValidateIntset(Bytes(is));
  return fault == nullptr ? "" : fault;
}
std::string ZipmapFault(const std::string& zm) {
  FieldSet fields;
  const char* fault = detail::ValidateZipmap(Bytes(zm), fields);
  return fault == nullptr ? "" : fault;
}
std::string StreamFault(const std::string& lp) {
  const char* fault = detail::ValidateStreamListpack(Bytes(lp));
  return fault == nullptr ? "" : fault;
}

void PutLe(std::string& s, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}

// A listpack from already encoded entries (encoding, data, back-length each), with a correct
// header; `count` overrides the header's entry count.
std::string RawListpack(const std::string& body, int count) {
  std::string lp(6, '\0');
  PutLe(lp, 0, 6 + body.size() + 1, 4);
  PutLe(lp, 4, static_cast<uint64_t>(count), 2);
  return lp + body + '\xff';
}

// Listpack entries that are integers rather than the builder's strings.
std::string LpInt7(uint8_t v) { return {static_cast<char>(v), '\x01'}; }
std::string LpInt16(int16_t v) {
  return {'\xf1', static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff), '\x03'};
}
std::string LpStr(const std::string& s) {
  return static_cast<char>(0x80 | s.size()) + s + static_cast<char>(1 + s.size());
}

TEST(BlobCanonicalInt, MatchesString2ll) {
  int64_t v = 0;
  const auto parse = [&](const std::string& s) {
    return detail::ParseCanonicalInt64(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &v);
  };
  EXPECT_TRUE(parse("0"));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(parse("-12"));
  EXPECT_EQ(v, -12);
  EXPECT_TRUE(parse("9223372036854775807"));
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_TRUE(parse("-9223372036854775808"));
  EXPECT_EQ(v, INT64_MIN);
  for (const char* bad : {"", "-", "-0", "01", "+1", " 1", "1 ", "1a", "9223372036854775808",
                          "-9223372036854775809", "000000000000000000001"}) {
    EXPECT_FALSE(parse(bad)) << bad;
  }
}

TEST(BlobListpack, AcceptsBuilderEncodings) {
  EXPECT_EQ(ListpackFault(testing::Listpack({})), "");
  EXPECT_EQ(ListpackFault(testing::Listpack({"a", "bb", std::string(63, 'c')})), "");
  EXPECT_EQ(ListpackFault(testing::Listpack({"f", "v", "g", "w"}), BlobShape::kPairs), "");
  EXPECT_EQ(ListpackFault(testing::Listpack({"x", "y"}), BlobShape::kSet), "");
  EXPECT_EQ(ListpackFault(testing::Listpack({"f", "v", "0"}), BlobShape::kTriplets), "");
  // Lists may repeat elements, and a pair blob may repeat values.
  EXPECT_EQ(ListpackFault(testing::Listpack({"a", "a"})), "");
  EXPECT_EQ(ListpackFault(testing::Listpack({"f", "v", "g", "v"}), BlobShape::kPairs), "");
  FieldSet fields;
  uint64_t entries = 0;
  const std::string lp = testing::Listpack({"a", "b", "c"});
  EXPECT_EQ(detail::ValidateListpack(Bytes(lp), BlobShape::kList, fields, &entries), nullptr);
  EXPECT_EQ(entries, 3u);
}

TEST(BlobListpack, AcceptsIntegersAndLongEntries) {
  // A 200-byte string takes the 12-bit encoding and a 2-byte back-length.
  std::string long_entry = "\xe0\xc8" + std::string(200, 'z');
  long_entry += "\x01\xca";  // back-length 202, written big end first: 0x01, 0x80 | 0x4a
  const std::string body = LpInt7(5) + LpInt16(-300) + long_entry;
  EXPECT_EQ(ListpackFault(RawListpack(body, 3)), "");
  // 65535 in the header means "count unknown": no comparison.
  EXPECT_EQ(ListpackFault(RawListpack(body, 65535)), "");
}

TEST(BlobListpack, RejectsBrokenHeaders) {
  const std::string lp = testing::Listpack({"a", "b"});
  EXPECT_NE(ListpackFault(lp.substr(0, 6)), "");
  std::string b = lp;
  PutLe(b, 0, lp.size() + 1, 4);
  EXPECT_NE(ListpackFault(b).find("header length"), std::string::npos);
  b = lp;
  b.back() = '\0';
  EXPECT_NE(ListpackFault(b).find("0xFF"), std::string::npos);
  b = lp;
  PutLe(b, 4, 3, 2);
  EXPECT_NE(ListpackFault(b).find("count"), std::string::npos);
}

TEST(BlobListpack, RejectsBrokenEntries) {
  const std::string lp = testing::Listpack({"ab", "cd"});  // 6 header, 4 + 4 entries, 0xFF
  std::string b = lp;
  b[6] = '\xf5';  // no such encoding
  EXPECT_NE(ListpackFault(b).find("invalid encoding"), std::string::npos);
  b = lp;
  b[9] = '\x04';  // back-length of the first entry
  EXPECT_NE(ListpackFault(b).find("back-length"), std::string::npos);
  b = lp;
  b[10] = '\xbf';  // the second entry claims 63 bytes
  EXPECT_NE(ListpackFault(b).find("runs past"), std::string::npos);
  // A terminator in the middle, with the bytes after it still inside the string.
  b = RawListpack(LpStr("ab") + '\xff' + LpStr("c"), 1);
  EXPECT_NE(ListpackFault(b).find("before its end"), std::string::npos);
}

TEST(BlobListpack, ShapeChecks) {
  EXPECT_NE(ListpackFault(testing::Listpack({"f", "v", "g"}), BlobShape::kPairs).find("odd"),
            std::string::npos);
  EXPECT_NE(ListpackFault(testing::Listpack({"f", "v"}), BlobShape::kTriplets), "");
  EXPECT_NE(
      ListpackFault(testing::Listpack({"f", "v", "f", "w"}), BlobShape::kPairs).find("duplicate"),
      std::string::npos);
  EXPECT_NE(ListpackFault(testing::Listpack({"x", "y", "x"}), BlobShape::kSet), "");
  EXPECT_NE(ListpackFault(testing::Listpack({"f", "v", "1", "f", "w", "2"}), BlobShape::kTriplets),
            "");
  // The string "5" and the integer 5 are the same field to Redis; "05" is not.
  EXPECT_NE(ListpackFault(RawListpack(LpStr("5") + LpStr("v") + LpInt7(5) + LpStr("w"), 4),
                          BlobShape::kPairs),
            "");
  EXPECT_EQ(ListpackFault(RawListpack(LpStr("05") + LpStr("v") + LpInt7(5) + LpStr("w"), 4),
                          BlobShape::kPairs),
            "");
  EXPECT_NE(ListpackFault(RawListpack(LpInt16(-300) + LpStr("-300"), 2), BlobShape::kSet), "");
}

TEST(BlobZiplist, AcceptsBuilderEncodings) {
  EXPECT_EQ(ZiplistFault(testing::Ziplist({})), "");
  EXPECT_EQ(ZiplistFault(testing::Ziplist({"a", "bb", std::string(63, 'c')})), "");
  EXPECT_EQ(ZiplistFault(testing::Ziplist({"f", "v", "g", "w"}), BlobShape::kPairs), "");
  FieldSet fields;
  uint64_t entries = 0;
  const std::string zl = testing::Ziplist({"a", "b"});
  EXPECT_EQ(detail::ValidateZiplist(Bytes(zl), BlobShape::kList, fields, &entries), nullptr);
  EXPECT_EQ(entries, 2u);
}

TEST(BlobZiplist, RejectsBrokenEntries) {
  // Header 10, entries "ab" at 10 (prevlen 0) and "cd" at 14 (prevlen 4), 0xFF at 18.
  const std::string zl = testing::Ziplist({"ab", "cd"});
  std::string b = zl;
  b[14] = '\x03';
  EXPECT_NE(ZiplistFault(b).find("previous-entry length"), std::string::npos);
  b = zl;
  PutLe(b, 4, 10, 4);  // tail offset at the first entry
  EXPECT_NE(ZiplistFault(b).find("tail"), std::string::npos);
  b = zl;
  PutLe(b, 8, 3, 2);
  EXPECT_NE(ZiplistFault(b).find("count"), std::string::npos);
  b = zl;
  b[15] = '\xc1';  // not an encoding
  EXPECT_NE(ZiplistFault(b).find("invalid encoding"), std::string::npos);
  b = zl;
  b[15] = '\x3f';  // 63 bytes: past the end
  EXPECT_NE(ZiplistFault(b).find("runs past"), std::string::npos);
  b = zl;
  b[10] = '\x05';  // the first entry's previous entry would start before the header's end
  EXPECT_NE(ZiplistFault(b), "");
  EXPECT_NE(ZiplistFault(testing::Ziplist({"f", "v", "g"}), BlobShape::kPairs), "");
  EXPECT_NE(ZiplistFault(testing::Ziplist({"f", "v", "f", "w"}), BlobShape::kPairs), "");
}

TEST(BlobZiplist, IntegerEntriesCompareAsTheirText) {
  // Entry "5" as a string, then 5 as a 4-bit immediate (0xf1 + 5), each with a value.
  std::string body;
  body += std::string("\x00\x01", 2) + "5";  // prevlen 0, 1-byte string
  body += std::string("\x03\x01", 2) + "v";  // prevlen 3
  body += "\x03\xf6";                        // prevlen 3, immediate 5
  body += std::string("\x02\x01", 2) + "w";  // prevlen 2
  std::string zl(10, '\0');
  PutLe(zl, 0, 10 + body.size() + 1, 4);
  PutLe(zl, 4, 10 + body.size() - 3, 4);
  PutLe(zl, 8, 4, 2);
  zl += body + '\xff';
  EXPECT_EQ(ZiplistFault(zl, BlobShape::kList), "");
  EXPECT_NE(ZiplistFault(zl, BlobShape::kPairs).find("duplicate"), std::string::npos);
}

TEST(BlobIntset, ChecksWidthSizeAndOrder) {
  EXPECT_EQ(IntsetFault(testing::Intset({-5, 0, 7})), "");
  EXPECT_NE(IntsetFault(testing::Intset({})).find("empty"), std::string::npos);
  EXPECT_NE(IntsetFault(testing::Intset({3, 2})).find("ascending"), std::string::npos);
  EXPECT_NE(IntsetFault(testing::Intset({2, 2})).find("ascending"), std::string::npos);
  std::string b = testing::Intset({1, 2});
  PutLe(b, 0, 3, 4);
  EXPECT_NE(IntsetFault(b).find("encoding"), std::string::npos);
  b = testing::Intset({1, 2});
  PutLe(b, 4, 3, 4);
  EXPECT_NE(IntsetFault(b).find("size"), std::string::npos);
  // 16-bit members compare as signed values.
  std::string narrow(8, '\0');
  PutLe(narrow, 0, 2, 4);
  PutLe(narrow, 4, 2, 4);
  narrow += std::string("\xff\xff\x01\x00", 4);  // -1, 1
  EXPECT_EQ(IntsetFault(narrow), "");
  std::swap(narrow[8], narrow[10]);
  std::swap(narrow[9], narrow[11]);  // 1, -1
  EXPECT_NE(IntsetFault(narrow), "");
}

TEST(BlobZipmap, WalksEntriesAndCounts) {
  EXPECT_EQ(ZipmapFault(testing::Zipmap({{"f", "v"}, {"g", "w"}})), "");
  EXPECT_NE(ZipmapFault(testing::Zipmap({})).find("empty"), std::string::npos);
  EXPECT_NE(ZipmapFault(testing::Zipmap({{"f", "v"}, {"f", "w"}})).find("duplicate"),
            std::string::npos);
  std::string b = testing::Zipmap({{"f", "v"}});
  b[0] = '\x02';
  EXPECT_NE(ZipmapFault(b).find("count"), std::string::npos);
  b[0] = '\xfe';  // 254: too many to count in a byte, so not compared
  EXPECT_EQ(ZipmapFault(b), "");
  // Free bytes after a value are skipped; claiming more than there are runs off the end.
  b = testing::Zipmap({{"f", "v"}});  // 01 01 'f' 01 00 'v' ff
  b.insert(6, "\0\0", 2);
  b[4] = '\x02';
  EXPECT_EQ(ZipmapFault(b), "");
  b[4] = '\x09';
  EXPECT_NE(ZipmapFault(b).find("runs past"), std::string::npos);
}

TEST(BlobStream, WalksMasterEntryAndEntries) {
  // Master entry: count 1, deleted 0, 1 field "f", 0. One entry with the master's fields:
  // flags SAMEFIELDS (2), ID deltas 0 0, value "v", lp-count = 1 field + 3.
  EXPECT_EQ(StreamFault(testing::Listpack({"1", "0", "1", "f", "0", "2", "0", "0", "v", "4"})), "");
  // An entry with its own fields: flags 0, deltas, 1 field "g", value, lp-count 1 + 3 + 1 + 1.
  EXPECT_EQ(
      StreamFault(testing::Listpack({"1", "0", "1", "f", "0", "0", "0", "0", "1", "g", "v", "6"})),
      "");
  // The same with integer entries, as Redis writes them.
  EXPECT_EQ(StreamFault(RawListpack(LpInt7(1) + LpInt7(0) + LpInt7(1) + LpStr("f") + LpInt7(0) +
                                        LpInt7(2) + LpInt7(0) + LpInt7(0) + LpStr("v") + LpInt7(4),
                                    10)),
            "");
  EXPECT_NE(StreamFault(testing::Listpack({})), "");
  EXPECT_NE(StreamFault(testing::Listpack({"1", "0", "1", "f", "0", "2", "0", "0", "v", "5"}))
                .find("lp-count"),
            std::string::npos);
  EXPECT_NE(StreamFault(testing::Listpack({"1", "0", "1", "f", "9", "2", "0", "0", "v", "4"})), "");
  EXPECT_NE(StreamFault(testing::Listpack({"1", "0", "1", "f", "0", "x", "0", "0", "v", "4"}))
                .find("not an integer"),
            std::string::npos);
  EXPECT_NE(StreamFault(testing::Listpack({"1", "0", "1", "f", "0", "2", "0", "0", "v", "4", "z"})),
            "");
  EXPECT_NE(StreamFault(testing::Listpack({"2", "0", "1", "f", "0", "2", "0", "0", "v", "4"})), "");
  // The header count is not compared for stream listpacks, as in t_stream.c.
  EXPECT_EQ(StreamFault(RawListpack(LpInt7(1) + LpInt7(0) + LpInt7(1) + LpStr("f") + LpInt7(0) +
                                        LpInt7(2) + LpInt7(0) + LpInt7(0) + LpStr("v") + LpInt7(4),
                                    3)),
            "");
}

// --- the validator in deep mode -----------------------------------------------------------------

Options Deep() {
  Options o;
  o.deep = true;
  return o;
}

// Valid in every chunking, with and without deep mode.
void ExpectValidBothWays(const std::vector<uint8_t>& data) {
  for (Chunking c : testing::kAllChunkings) {
    SCOPED_TRACE(testing::ChunkingName(c));
    EXPECT_EQ(testing::Validate(data, c, 3).progress, Progress::kDone);
    const testing::Outcome deep = testing::Validate(data, c, 3, Deep());
    EXPECT_EQ(deep.progress, Progress::kDone) << deep.diagnostic.ToString();
  }
}

// Valid by default, corrupt at `offset` with `text` in the message in deep mode, in every
// chunking.
void ExpectOnlyDeepFails(const std::vector<uint8_t>& data, uint64_t offset, const std::string& text,
                         Options deep = Deep()) {
  for (Chunking c : testing::kAllChunkings) {
    SCOPED_TRACE(testing::ChunkingName(c));
    const testing::Outcome fast = testing::Validate(data, c, 4);
    EXPECT_EQ(fast.progress, Progress::kDone) << fast.diagnostic.ToString();
    const testing::Outcome out = testing::Validate(data, c, 4, deep);
    ASSERT_EQ(out.progress, Progress::kError);
    EXPECT_EQ(out.diagnostic.code, Errc::kCorrupt);
    EXPECT_EQ(out.diagnostic.offset, offset) << out.diagnostic.ToString();
    EXPECT_NE(out.diagnostic.message.find(text), std::string::npos) << out.diagnostic.ToString();
  }
}

// The stream listpack of one entry, in Redis's layout.
std::string StreamNode() {
  return testing::Listpack({"1", "0", "1", "f", "0", "2", "0", "0", "v", "4"});
}

TEST(BlobDeepValidator, AcceptsEveryBlobKindWhole) {
  const std::string kLong(300, 'q');
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0);
  b.Key(type::kHashListpack, "h").String(testing::Listpack({"f", "v", "g", "w"}));
  b.Key(type::kZsetListpack, "z")
      .LzfString(testing::Listpack({"m", "1", "n", "2", kLong.substr(0, 60), "3"}));
  b.Key(type::kSetIntset, "i").String(testing::Intset({1, 2, 3}));
  b.Key(type::kHashZiplist, "hz").String(testing::Ziplist({"f", "v"}));
  b.Key(type::kListZiplist, "lz").LzfString(testing::Ziplist({"a", "a", "a", "a", "a", "a"}));
  b.Key(type::kHashZipmap, "zm").String(testing::Zipmap({{"f", "v"}}));
  // Quicklists: v1 with a ziplist node; v2 with an empty packed node, a plain and a packed one.
  b.Key(type::kListQuicklist, "q1").Length(1).String(testing::Ziplist({"a"}));
  b.Key(type::kListQuicklist2, "q2").Length(3).Length(2).String(testing::Listpack({}));
  b.Length(1).String(kLong).Length(2).String(testing::Listpack({"x", "y"}));
  // Plain collections with members in all three string encodings.
  b.Key(type::kSet, "s").Length(3).String("a").IntString(7).LzfString(kLong);
  b.Key(type::kZset2, "z2").Length(2).String("a").Le64(0).IntString(7).Le64(0);
  b.Key(type::kHash, "h2").Length(2).String("f").String("f").String("g").String("f");
  // A stream with a group whose PEL entries are owned by its two consumers.
  const std::string id1(16, '\1');
  const std::string id2(16, '\2');
  b.Key(type::kStreamListpacks, "st").Length(1).String(std::string(16, '\0')).String(StreamNode());
  b.Length(1).Length(0).Length(0);
  b.Length(1).String("g").Length(0).Length(0);
  b.Length(2).Raw(id2).Le64(0).Length(1).Raw(id1).Le64(0).Length(1);
  b.Length(2).String("c1").Le64(0).Length(1).Raw(id1);
  b.String("c2").Le64(0).Length(1).Raw(id2);
  ExpectValidBothWays(b.Finish(Trailer::kZeroCrc));
}

TEST(BlobDeepValidator, BrokenListpackEntryFailsOnlyInDeepMode) {
  std::string lp = testing::Listpack({"f", "v", "g", "w"});
  lp[8] = '\x05';  // the back-length of the first entry ("f": 2 bytes)
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0).Key(type::kString, "before").String("x");
  b.Key(type::kHashListpack, "h");
  const uint64_t at = b.bytes().size();
  b.String(lp).Key(type::kString, "after").String("y");
  ExpectOnlyDeepFails(b.Finish(Trailer::kZeroCrc), at, "back-length");
}

TEST(BlobDeepValidator, BrokenBlobInsideLzfFailsOnlyInDeepMode) {
  std::vector<std::string> entries(40, "element");
  std::string lp = testing::Listpack(entries);
  lp[6 + 9 * 20] = '\xf6';  // the encoding byte of entry 20
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0).Key(type::kListQuicklist2, "l").Length(1).Length(2);
  const uint64_t at = b.bytes().size();
  b.LzfString(lp);
  ExpectOnlyDeepFails(b.Finish(Trailer::kZeroCrc), at, "invalid encoding");
}

TEST(BlobDeepValidator, BlobsOverTheLimitGetOnlyHeaderChecks) {
  std::string lp = testing::Listpack({"f", "v", "g", "w"});
  lp[8] = '\x05';
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0).Key(type::kHashListpack, "h").String(lp);
  const std::vector<uint8_t> data = b.Finish(Trailer::kZeroCrc);
  Options small = Deep();
  small.max_deep_blob = lp.size() - 1;
  EXPECT_EQ(testing::Validate(data, Chunking::kOneByte, 1, small).progress, Progress::kDone);
  small.max_deep_blob = lp.size();
  EXPECT_EQ(testing::Validate(data, Chunking::kOneByte, 1, small).progress, Progress::kError);
}

TEST(BlobDeepValidator, TypeLevelChecks) {
  const auto file = [](auto&& body) {
    RdbBuilder b("REDIS", 10);
    b.SelectDb(0).Key(type::kString, "k").String("v");
    const uint64_t at = body(b);
    return std::make_pair(b.Finish(Trailer::kZeroCrc), at);
  };
  {
    SCOPED_TRACE("odd hash listpack");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kHashListpack, "h");
      const uint64_t pos = b.bytes().size();
      b.String(testing::Listpack({"f", "v", "g"}));
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "odd number");
  }
  {
    SCOPED_TRACE("empty zset listpack");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kZsetListpack, "z");
      const uint64_t pos = b.bytes().size();
      b.String(testing::Listpack({}));
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "empty collection");
  }
  {
    SCOPED_TRACE("empty set");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kSet, "s");
      const uint64_t pos = b.bytes().size();
      b.Length(0);
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "empty collection");
  }
  {
    SCOPED_TRACE("duplicate set member, the second one LZF-compressed");
    const std::string member(100, 'm');
    auto [data, at] = file([&](RdbBuilder& b) {
      b.Key(type::kSet, "s").Length(3).String(member).String("other");
      const uint64_t pos = b.bytes().size();
      b.LzfString(member);
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "duplicate member");
  }
  {
    SCOPED_TRACE("duplicate hash field, a string and an integer");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kHash, "h").Length(2).String("12").String("v");
      const uint64_t pos = b.bytes().size();
      b.IntString(12).String("w");
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "duplicate hash field");
  }
  {
    SCOPED_TRACE("zset NaN score");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kZset2, "z").Length(1).String("m");
      const uint64_t pos = b.bytes().size();
      b.Le64(0x7ff8000000000000ULL);
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "NaN");
  }
  {
    SCOPED_TRACE("quicklist of empty nodes only");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kListQuicklist2, "l");
      const uint64_t pos = b.bytes().size();
      b.Length(2).Length(2).String(testing::Listpack({})).Length(2).String(testing::Listpack({}));
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "all empty");
  }
  {
    SCOPED_TRACE("empty plain quicklist node");
    auto [data, at] = file([](RdbBuilder& b) {
      b.Key(type::kListQuicklist2, "l").Length(1).Length(1);
      const uint64_t pos = b.bytes().size();
      b.String("");
      return pos;
    });
    ExpectOnlyDeepFails(data, at, "plain node is empty");
  }
}

TEST(BlobDeepValidator, MemberChecksStayWithinTheirBudget) {
  // "" and 0 are different members (Redis compares "" with "0"), whatever the budget; "0" and 0
  // are the same one.
  const auto set = [](auto&& add) {
    RdbBuilder b("REDIS", 10);
    b.SelectDb(0).Key(type::kSet, "s").Length(2);
    add(b);
    return b.Finish(Trailer::kZeroCrc);
  };
  const std::vector<uint8_t> empty_and_zero = set([](RdbBuilder& b) { b.String("").IntString(0); });
  Options none = Deep();
  none.max_deep_blob = 0;
  EXPECT_EQ(testing::Validate(empty_and_zero, Chunking::kOneByte, 1, none).progress,
            Progress::kDone);
  EXPECT_EQ(testing::Validate(empty_and_zero, Chunking::kOneByte, 1, Deep()).progress,
            Progress::kDone);
  const std::vector<uint8_t> zeros = set([](RdbBuilder& b) { b.String("0").IntString(0); });
  EXPECT_EQ(testing::Validate(zeros, Chunking::kOneByte, 1, Deep()).progress, Progress::kError);

  // Members whose bytes exceed max_deep_blob are not checked for duplicates: the validator
  // gives no verdict rather than holding more than its bound.
  const std::string member(100, 'm');
  const std::vector<uint8_t> twice = set([&](RdbBuilder& b) { b.String(member).String(member); });
  Options small = Deep();
  small.max_deep_blob = 2 * member.size() - 1;
  EXPECT_EQ(testing::Validate(twice, Chunking::kRandom, 1, small).progress, Progress::kDone);
  small.max_deep_blob = 2 * member.size();
  EXPECT_EQ(testing::Validate(twice, Chunking::kRandom, 1, small).progress, Progress::kError);
}

TEST(BlobDeepValidator, StreamChecks) {
  const std::string id1(16, '\1');
  const std::string id2(16, '\2');
  // A v1 stream of one node, then one group: PEL ids, then consumers with their PEL ids.
  const auto stream = [&](const std::string& node, const std::vector<std::string>& pel,
                          const std::vector<std::vector<std::string>>& consumers,
                          uint64_t* node_at = nullptr, uint64_t* last_id_at = nullptr) {
    RdbBuilder b("REDIS", 10);
    b.SelectDb(0).Key(type::kStreamListpacks, "st").Length(1).String(std::string(16, '\0'));
    if (node_at != nullptr) *node_at = b.bytes().size();
    b.String(node).Length(1).Length(0).Length(0);
    b.Length(1).String("g").Length(0).Length(0).Length(pel.size());
    for (const std::string& id : pel) b.Raw(id).Le64(0).Length(1);
    b.Length(consumers.size());
    for (size_t i = 0; i < consumers.size(); ++i) {
      b.String("c" + std::to_string(i)).Le64(0).Length(consumers[i].size());
      for (const std::string& id : consumers[i]) {
        if (last_id_at != nullptr) *last_id_at = b.bytes().size();
        b.Raw(id);
      }
    }
    return b.Finish(Trailer::kZeroCrc);
  };
  ExpectValidBothWays(stream(StreamNode(), {id1, id2}, {{id1}, {id2}}));
  // Redis lets a later consumer claim an entry an earlier one held.
  ExpectValidBothWays(stream(StreamNode(), {id1}, {{id1}, {id1}}));

  uint64_t at = 0;
  std::vector<uint8_t> data =
      stream(testing::Listpack({"1", "0", "1", "f", "0", "2", "0", "0", "v", "9"}), {}, {}, &at);
  ExpectOnlyDeepFails(data, at, "lp-count");
  data = stream(StreamNode(), {id1}, {{id2}}, nullptr, &at);
  ExpectOnlyDeepFails(data, at, "missing from its group's PEL");
  data = stream(StreamNode(), {id1}, {{id1, id1}}, nullptr, &at);
  ExpectOnlyDeepFails(data, at, "duplicate entry in a consumer's PEL");
  data = stream(StreamNode(), {id1, id2}, {{id1}});
  for (Chunking c : testing::kAllChunkings) {
    const testing::Outcome out = testing::Validate(data, c, 5, Deep());
    ASSERT_EQ(out.progress, Progress::kError);
    EXPECT_NE(out.diagnostic.message.find("owned by no consumer"), std::string::npos);
  }
  data = stream(StreamNode(), {id1, id1}, {{id1}});
  EXPECT_NE(testing::Validate(data, Chunking::kOneByte, 5, Deep())
                .diagnostic.message.find("duplicate entry in a consumer group's PEL"),
            std::string::npos);
}

}  // namespace
}  // namespace finalsnap::rdb
