// Synthetic RDBs for what no server here writes: RDB versions 1..9, Valkey 80/81, every object
// type in every encoding and every opcode, each fed whole, in 1-byte and in random pieces.
#include <gtest/gtest.h>

#include <vector>

#include "finalsnap/rdb/validator.h"
#include "support/feed.h"
#include "support/rdb_builder.h"

namespace finalsnap::rdb {
namespace {

using testing::Chunking;
using testing::RdbBuilder;
using testing::Trailer;

const std::string kLong(200, 'z');  // long enough to be worth LZF

testing::Outcome ExpectValid(const std::vector<uint8_t>& data) {
  testing::Outcome whole;
  for (Chunking c : testing::kAllChunkings) {
    SCOPED_TRACE(testing::ChunkingName(c));
    testing::Outcome out = testing::Validate(data, c, 9);
    EXPECT_EQ(out.progress, Progress::kDone) << out.diagnostic.ToString();
    if (c == Chunking::kWhole) {
      whole = out;
    } else {
      EXPECT_EQ(out.report.databases, whole.report.databases);
      EXPECT_EQ(out.report.computed_crc, whole.report.computed_crc);
    }
  }
  return whole;
}

TEST(ValidatorSynthetic, EveryRedisVersionFrom1To12) {
  for (int version = 1; version <= 12; ++version) {
    SCOPED_TRACE("RDB version " + std::to_string(version));
    RdbBuilder b("REDIS", version);
    b.SelectDb(0).Key(type::kString, "a").String("1");
    b.ExpireMs(4102444800000).Key(type::kSet, "s").Length(2).String("x").IntString(5);
    const testing::Outcome out = ExpectValid(b.Finish());
    EXPECT_EQ(out.report.rdb_version, version);
    EXPECT_EQ(out.report.databases.at(0), (DbCounts{2, 1}));
    EXPECT_EQ(out.report.checksum,
              version < 5 ? ChecksumVerdict::kAbsent : ChecksumVerdict::kMatch);
  }
}

TEST(ValidatorSynthetic, ChecksumVerdicts) {
  auto make = [](Trailer t) {
    RdbBuilder b("REDIS", 9);
    b.SelectDb(0).Key(type::kString, "k").String("v");
    return b.Finish(t);
  };
  EXPECT_EQ(ExpectValid(make(Trailer::kCorrectCrc)).report.checksum, ChecksumVerdict::kMatch);
  EXPECT_EQ(ExpectValid(make(Trailer::kZeroCrc)).report.checksum, ChecksumVerdict::kDisabled);
  const testing::Outcome wrong = testing::Validate(make(Trailer::kWrongCrc), Chunking::kOneByte);
  EXPECT_EQ(wrong.progress, Progress::kError);
  EXPECT_EQ(wrong.diagnostic.code, Errc::kChecksumMismatch);
  EXPECT_EQ(wrong.report.checksum, ChecksumVerdict::kMismatch);
}

TEST(ValidatorSynthetic, EveryOpcode) {
  RdbBuilder b("REDIS", 12);
  b.Aux("redis-ver", "7.4.1").Aux("ctime", "").Byte(opcode::kAux).String("lzf-aux").LzfString(
      kLong);
  b.Byte(opcode::kAux).String("int-aux").IntString(-70000);
  // MODULE_AUX before the keyspace: module id, when-opcode UINT, when=1, body, EOF.
  b.Byte(opcode::kModuleAux).Length(0x1234567890ULL, 9).Length(2).Length(1);
  b.Length(2).Length(7).Length(5).String("aux-body").Length(0);
  // FUNCTION2 and the pre-GA FUNCTION (name, engine, has-desc, desc, code).
  b.Byte(opcode::kFunction2).String("#!lua name=lib\nredis.register_function('f', function() end)");
  b.Byte(opcode::kFunctionPreGa).String("f2").String("LUA").Length(1).String("d").String("code");
  b.SelectDb(5).ResizeDb(4, 2);
  b.Byte(opcode::kSlotInfo).Length(42).Length(4).Length(2);
  b.Byte(opcode::kExpireTime).Le32(2000000000).Key(type::kString, "old-expire").String("v");
  b.ExpireMs(4102444800000).Byte(opcode::kIdle).Length(1000).Key(type::kString, "idle").String("");
  b.Byte(opcode::kFreq).Byte(5).Key(type::kString, "freq").LzfString(kLong);
  b.Key(type::kString, "int").IntString(123456789);
  b.Byte(opcode::kModuleAux).Length(0x1234567890ULL, 9).Length(2).Length(2).Length(0);
  const testing::Outcome out = ExpectValid(b.Finish());
  EXPECT_EQ(out.report.databases.at(5), (DbCounts{4, 2}));
  EXPECT_EQ(out.report.functions, 2u);
  EXPECT_EQ(out.report.module_aux, 2u);
  EXPECT_EQ(out.report.slot_info, 1u);
  EXPECT_EQ(out.report.Aux("redis-ver"), "7.4.1");
  EXPECT_EQ(out.report.Aux("ctime"), "");
  EXPECT_EQ(out.report.Aux("lzf-aux"), kLong);
  EXPECT_EQ(out.report.Aux("int-aux"), "-70000");
}

TEST(ValidatorSynthetic, EveryRedisTypeInEveryEncoding) {
  RdbBuilder b("REDIS", 12);
  b.SelectDb(0);
  int keys = 0;
  auto key = [&](uint8_t t) -> RdbBuilder& { ++keys; return b.Key(t, "key" + std::to_string(keys)); };
  key(type::kString).String("plain");
  key(type::kString).LzfString(kLong);
  key(type::kList).Length(3).String("a").IntString(300).LzfString(kLong);
  key(type::kSet).Length(1).String("m");
  // zset v1: text scores, including the NaN/+inf/-inf single-byte forms.
  key(type::kZset).Length(4).String("a").Byte(3).Raw("1.5").String("b").Byte(253).String("c")
      .Byte(254).String("d").Byte(255);
  key(type::kHash).Length(2).String("f").String("v").String("g").LzfString(kLong);
  key(type::kZset2).Length(1).String("m").Le64(0x3ff0000000000000ULL);
  // MODULE_2: id, then typed opcodes: SINT, UINT, FLOAT, DOUBLE, STRING, EOF.
  key(type::kModule2).Length(0xABCDEF0123ULL, 9).Length(1).Length(7).Length(2).Length(9)
      .Length(3).Le32(0).Length(4).Le64(0).Length(5).String("s").Length(0);
  key(type::kHashZipmap).String(testing::Zipmap({{"f", "v"}}));
  key(type::kListZiplist).String(testing::Ziplist({"a", "b"}));
  key(type::kSetIntset).String(testing::Intset({1, 2, 3}));
  key(type::kZsetZiplist).String(testing::Ziplist({"m", "1"}));
  key(type::kHashZiplist).LzfString(testing::Ziplist({"f", "v", "f", "v", "f", "v", "f", "v"}));
  key(type::kListQuicklist).Length(2).String(testing::Ziplist({"a"})).String(testing::Ziplist({}));
  key(type::kHashListpack).String(testing::Listpack({"f", "v"}));
  key(type::kZsetListpack).String(testing::Listpack({"m", "1"}));
  // quicklist v2: a packed (listpack) node and a plain node.
  key(type::kListQuicklist2).Length(2).Length(2).String(testing::Listpack({"a", "b"}))
      .Length(1).LzfString(kLong);
  key(type::kSetListpack).String(testing::Listpack({"x"}));
  // Streams v1, v2, v3: one node, metadata, a group with a PEL entry and a consumer.
  for (uint8_t t : {type::kStreamListpacks, type::kStreamListpacks2, type::kStreamListpacks3}) {
    key(t).Length(1).String(std::string(16, '\0')).String(testing::Listpack({"1", "0", "f"}));
    b.Length(1).Length(1700000000000ULL, 9).Length(0);  // length, last id
    if (t != type::kStreamListpacks) b.Length(1).Length(0).Length(0).Length(0).Length(1);
    b.Length(1).String("group").Length(1700000000000ULL, 9).Length(0);
    if (t != type::kStreamListpacks) b.Length(1);  // entries_read
    b.Length(1).Raw(std::string(16, '\1')).Le64(1700000000000ULL).Length(1);  // PEL
    b.Length(1).String("consumer").Le64(1700000000000ULL);
    if (t == type::kStreamListpacks3) b.Le64(1700000000000ULL);  // active time
    b.Length(1).Raw(std::string(16, '\1'));
  }
  // Hash field TTLs: pre-GA metadata (ttl, field, value), pre-GA listpack, GA forms.
  key(type::kHashMetadataPreGa).Length(2).Length(0).String("f").String("v").Length(
      4102444800000ULL, 9).String("g").String("w");
  key(type::kHashListpackExPreGa).String(testing::Listpack({"f", "v", "0"}));
  key(type::kHashMetadata).Le64(4102444800000ULL).Length(1).Length(1).String("f").String("v");
  key(type::kHashListpackEx).Le64(0).String(testing::Listpack({"f", "v", "0"}));
  const testing::Outcome out = ExpectValid(b.Finish());
  EXPECT_EQ(out.report.databases.at(0).keys, static_cast<uint64_t>(keys));
}

TEST(ValidatorSynthetic, ValkeyMagicAndItsOwnRecords) {
  RdbBuilder b("VALKEY", 80);
  b.Aux("valkey-ver", "9.0.0");
  b.Byte(opcode::kConflicting243).String(std::string(40, 'n')).Length(2).Length(0).Length(100)
      .Length(200).Length(300);  // SLOT_IMPORT: job name, 2 slot ranges
  b.SelectDb(0).Byte(opcode::kSlotInfo).Length(7).Length(1).Length(0);
  // HASH_2: field, value, 8-byte expiry (-1 = none) per entry.
  b.Key(type::kValkeyHash2, "h").Length(2).String("f").String("v").Le64(UINT64_MAX).String("g")
      .String("w").Le64(4102444800000ULL);
  b.Key(type::kSetListpack, "s").String(testing::Listpack({"x"}));
  const testing::Outcome out = ExpectValid(b.Finish());
  EXPECT_EQ(out.report.family, Family::kValkey);
  EXPECT_EQ(out.report.rdb_version, 80);
  EXPECT_EQ(out.report.databases.at(0).keys, 2u);
}

TEST(ValidatorSynthetic, ValkeyRecordsWithoutAKnownLayoutAreUnsupported) {
  RdbBuilder path_hash("VALKEY", 81);
  path_hash.SelectDb(0).Key(23, "p").Length(0);
  EXPECT_EQ(testing::Validate(path_hash.Finish(), Chunking::kWhole).diagnostic.code,
            Errc::kUnsupported);
  RdbBuilder update("VALKEY", 81);
  update.Byte(opcode::kValkeyUpdate).Raw("*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(testing::Validate(update.Finish(), Chunking::kWhole).diagnostic.code,
            Errc::kUnsupported);
  // Redis magic gives 243 no meaning before RDB 13.
  RdbBuilder redis("REDIS", 12);
  redis.Byte(opcode::kConflicting243).String("x");
  EXPECT_EQ(testing::Validate(redis.Finish(), Chunking::kWhole).diagnostic.code, Errc::kCorrupt);
}

TEST(ValidatorSynthetic, LengthsInEveryForm) {
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0);
  for (int form : {1, 2, 5, 9}) {
    b.Key(type::kString, "k" + std::to_string(form)).Length(3, form).Raw("abc");
  }
  EXPECT_EQ(ExpectValid(b.Finish()).report.databases.at(0).keys, 4u);
}

TEST(ValidatorSynthetic, LargeStringsStreamThroughWithoutBeingHeld) {
  RdbBuilder b("REDIS", 10);
  const std::string big(8 << 20, 'q');
  b.SelectDb(0).Key(type::kString, "big").String(big).Key(type::kString, "bigz").LzfString(
      std::string(100000, 'r'));
  const testing::Outcome out = testing::Validate(b.Finish(), Chunking::kRandom, 4);
  ASSERT_EQ(out.progress, Progress::kDone) << out.diagnostic.ToString();
  EXPECT_EQ(out.report.databases.at(0).keys, 2u);
}

TEST(ValidatorSynthetic, BlobChecksCatchBadHeaders) {
  auto one = [](uint8_t t, const std::string& blob) {
    RdbBuilder b("REDIS", 11);
    b.SelectDb(0).Key(t, "k").String(blob);
    return testing::Validate(b.Finish(), Chunking::kOneByte);
  };
  std::string lp = testing::Listpack({"a"});
  lp.back() = 0;
  EXPECT_NE(one(type::kSetListpack, lp).diagnostic.message.find("listpack does not end"),
            std::string::npos);
  std::string zl = testing::Ziplist({"a"});
  zl[4] = 100;  // tail offset past the end
  EXPECT_NE(one(type::kListZiplist, zl).diagnostic.message.find("tail offset"), std::string::npos);
  std::string is = testing::Intset({1, 2});
  is[0] = 3;  // width 3 does not exist
  EXPECT_NE(one(type::kSetIntset, is).diagnostic.message.find("intset encoding"),
            std::string::npos);
  EXPECT_NE(one(type::kSetIntset, testing::Intset({1}).substr(0, 12)).diagnostic.message.find(
                "intset size"),
            std::string::npos);
  RdbBuilder node("REDIS", 11);
  node.SelectDb(0).Key(type::kStreamListpacks2, "s").Length(1).String("short");
  EXPECT_NE(testing::Validate(node.Finish(), Chunking::kWhole).diagnostic.message.find(
                "16 bytes"),
            std::string::npos);
  RdbBuilder container("REDIS", 11);
  container.SelectDb(0).Key(type::kListQuicklist2, "l").Length(1).Length(3);
  EXPECT_NE(testing::Validate(container.Finish(), Chunking::kWhole).diagnostic.message.find(
                "container 3"),
            std::string::npos);
}

}  // namespace
}  // namespace finalsnap::rdb

namespace finalsnap::rdb {
namespace {

TEST(ValidatorSynthetic, DeepModeProvesTheInsideOfLzfStrings) {
  // A valid LZF header around a stream whose first back-reference points before the output.
  RdbBuilder b("REDIS", 10);
  b.SelectDb(0).Key(type::kString, "k");
  const size_t string_at = b.bytes().size();
  b.Byte(0xC3).Length(4).Length(30).Byte(0x00).Byte('a').Byte(0x20).Byte(0x05);
  const std::vector<uint8_t> data = b.Finish(Trailer::kZeroCrc);

  // Without a checksum to lean on, deep mode walks the LZF stream and finds the fault.
  Options deep;
  deep.deep = true;
  for (Chunking c : testing::kAllChunkings) {
    const testing::Outcome out = testing::Validate(data, c, 2, deep);
    ASSERT_EQ(out.progress, Progress::kError) << testing::ChunkingName(c);
    EXPECT_EQ(out.diagnostic.code, Errc::kCorrupt);
    EXPECT_EQ(out.diagnostic.offset, string_at);
    EXPECT_NE(out.diagnostic.message.find("back-reference before the start"), std::string::npos);
  }
  // The default skips LZF payloads (the CRC-64 proves them when the file has one).
  EXPECT_EQ(testing::Validate(data, Chunking::kWhole).progress, Progress::kDone);
}

}  // namespace
}  // namespace finalsnap::rdb
