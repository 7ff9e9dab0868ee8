// FillMixed: a Filler walks the kinds in a fixed order, drawing every size and value from one
// seeded generator, and sends the commands through a pipeline that reads replies in batches.
#include "support/dataset.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace finalsnap::testing {
namespace {

// A batch is flushed at this many bytes even before batch_commands: big values would otherwise
// make a batch of 1000 commands hold hundreds of megabytes in hiredis' output buffer.
constexpr size_t kBatchBytes = size_t{8} << 20;
// During the fill, list elements of at least this size become PLAIN quicklist nodes. It is above
// 4095 so that list:quicklist can still hold packed 32-bit-length listpack strings.
constexpr uint64_t kFillPackedThreshold = 16384;
// Redis 7.0's default packed threshold, restored after the fill.
constexpr uint64_t kDefaultPackedThreshold = uint64_t{1} << 30;
// Expiry times: from 2100-01-01 on, fixed so that the data set does not depend on the clock.
constexpr uint64_t kExpireBaseSeconds = 4102444800;
constexpr uint64_t kStreamBaseMs = 1'600'000'000'000;
// Redis 7.0's default encoding limits: zset-max-listpack-entries, hash-max-listpack-entries,
// *-max-listpack-value, set-max-intset-entries; set-max-listpack-entries is 7.2's.
constexpr uint64_t kZsetMaxListpackEntries = 128;
constexpr uint64_t kHashMaxListpackEntries = 512;
constexpr uint64_t kSetMaxListpackEntries = 128;
constexpr uint64_t kListpackMaxValue = 64;
constexpr uint64_t kIntsetMaxEntries = 512;
// Lists have no count limit in 7.0 (list-max-listpack-size -2 bounds a node at 8 KB); this many
// elements make several quicklist nodes.
constexpr uint64_t kQuicklistMinElements = 129;

// A seeded generator with its own range functions: the std:: distributions are
// implementation-defined, and the data set must be the same wherever the test is built.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_(); }
  // Uniform in [lo, hi]; the modulo bias is irrelevant for test data.
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    uint64_t span = hi - lo;
    return span == std::numeric_limits<uint64_t>::max() ? Next() : lo + Next() % (span + 1);
  }
  int64_t Signed(int64_t lo, int64_t hi) {
    return static_cast<int64_t>(static_cast<uint64_t>(lo) +
                                Uniform(0, static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo)));
  }
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

 private:
  std::mt19937_64 gen_;
};

// An integer of one of the widths the RDB string and listpack integer encodings distinguish.
std::string Integer(Rng& rng) {
  int64_t v = 0;
  switch (rng.Uniform(0, 6)) {
    case 0:
      v = rng.Signed(0, 127);  // shared integers, listpack 7-bit
      break;
    case 1:
      v = rng.Signed(-4096, 4095);  // listpack 13-bit
      break;
    case 2:
      v = rng.Signed(std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max());
      break;
    case 3:
      v = rng.Signed(-(int64_t{1} << 23), (int64_t{1} << 23) - 1);  // listpack 24-bit
      break;
    case 4:
      v = rng.Signed(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
      break;
    case 5:
      v = static_cast<int64_t>(rng.Next());  // beyond RDB's 32-bit int encoding
      break;
    default:
      v = rng.Chance(0.5) ? std::numeric_limits<int64_t>::min()
                          : std::numeric_limits<int64_t>::max();
      break;
  }
  return std::to_string(v);
}

std::string Alnum(Rng& rng, size_t len) {
  static constexpr std::string_view kChars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string s(len, '\0');
  uint64_t bits = 0;
  for (size_t i = 0; i < len; ++i) {
    if (i % 10 == 0) bits = rng.Next();
    s[i] = kChars[bits & 63];
    bits >>= 6;
  }
  return s;
}

// Random bytes: incompressible, and NUL, CR and LF make sure nothing treats values as C strings
// or lines.
std::string Binary(Rng& rng, size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; i += 8) {
    uint64_t bits = rng.Next();
    for (size_t j = i; j < len && j < i + 8; ++j, bits >>= 8) s[j] = static_cast<char>(bits & 0xff);
  }
  if (len >= 3) s.replace(0, 3, std::string_view("\0\r\n", 3));
  return s;
}

// Words from a small vocabulary: compresses well, as real cached values often do, so LZF
// encoding shows up in the RDB when rdbcompression is on.
std::string Text(Rng& rng, size_t len) {
  static constexpr std::string_view kWords[] = {
      "redis",    "snapshot",  "final", "backup", "cluster", "replica", "primary",  "shard",
      "stream",   "consumer",  "group", "value",  "key",     "expire",  "listpack", "quicklist",
      "lorem",    "ipsum",     "dolor", "sit",    "amet",    "user",    "session",  "token",
      "{\"id\":", "\"name\":", "true,", "null}",  "0",       "42",      "3.14",     "\n"};
  std::string s;
  s.reserve(len + 16);
  uint64_t bits = 0;
  for (int n = 0; s.size() < len; ++n) {
    if (n % 12 == 0) bits = rng.Next();
    s += kWords[bits & 31];
    s += ' ';
    bits >>= 5;
  }
  s.resize(len);
  return s;
}

// A collection element that keeps listpack encoding (at most 64 bytes).
std::string SmallElement(Rng& rng) {
  return rng.Chance(0.4) ? Integer(rng) : Alnum(rng, rng.Uniform(1, 40));
}

// A score: integers, fractions, huge and tiny magnitudes and the infinities, printed so that
// they read back as the same double.
std::string Score(Rng& rng) {
  switch (rng.Uniform(0, 9)) {
    case 0:
      return "inf";
    case 1:
      return "-inf";
    case 2:
    case 3:
    case 4:
      return std::to_string(rng.Signed(-100000, 100000));
    default: {
      double mantissa = static_cast<double>(rng.Signed(-1'000'000'000, 1'000'000'000)) / 997.0;
      double value = std::ldexp(mantissa, static_cast<int>(rng.Signed(-60, 60)));
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
      return std::string(buf, end);
    }
  }
}

// Appends commands with redisAppendCommandArgv and reads their replies in batches, so the
// server sees a stream of commands instead of one round trip each.
class Pipeline {
 public:
  Pipeline(redisContext* c, size_t batch_commands, std::function<void()> on_flush)
      : c_(c), batch_commands_(batch_commands), on_flush_(std::move(on_flush)) {}

  void Append(const std::vector<std::string>& argv) {
    ptrs_.clear();
    lens_.clear();
    size_t bytes = 0;
    for (const std::string& a : argv) {
      ptrs_.push_back(a.data());
      lens_.push_back(a.size());
      bytes += a.size();
    }
    if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), ptrs_.data(), lens_.data()) !=
        REDIS_OK) {
      throw std::runtime_error("FillMixed: cannot queue " + argv[0] + ": " + c_->errstr);
    }
    // Remember what each pending command was, so an error reply can be named.
    pending_.push_back(argv[0] + (argv.size() > 1 ? " " + argv[1].substr(0, 64) : ""));
    pending_bytes_ += bytes;
    ++commands_;
    if (pending_.size() >= batch_commands_ || pending_bytes_ >= kBatchBytes) Flush();
  }

  void Flush() {
    std::string first_error;
    for (const std::string& what : pending_) {
      void* reply = nullptr;
      if (redisGetReply(c_, &reply) != REDIS_OK || reply == nullptr) {
        throw std::runtime_error("FillMixed: connection failed while waiting for the reply to " +
                                 what + ": " + c_->errstr);
      }
      auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ERROR && first_error.empty()) {
        first_error = what + ": " + std::string(r->str, r->len);
      }
      freeReplyObject(r);
    }
    pending_.clear();
    pending_bytes_ = 0;
    // Every reply was read before throwing, so the connection stays usable for the caller.
    if (!first_error.empty()) throw std::runtime_error("FillMixed: error reply to " + first_error);
    if (on_flush_) on_flush_();
  }

  uint64_t commands() const { return commands_; }

 private:
  redisContext* c_;
  size_t batch_commands_;
  std::function<void()> on_flush_;
  std::vector<std::string> pending_;
  size_t pending_bytes_ = 0;
  uint64_t commands_ = 0;
  std::vector<const char*> ptrs_;
  std::vector<size_t> lens_;
};

class Filler {
 public:
  Filler(redisContext* c, const DatasetOptions& options)
      : c_(c),
        options_(options),
        rng_(options.seed),
        pipeline_(c, options.batch_commands == 0 ? 1 : options.batch_commands, [this] {
          if (options_.progress) options_.progress(stats_.bytes);
        }) {}

  DatasetStats Run() {
    if (options_.key_count == 0 && options_.target_bytes == 0) {
      throw std::invalid_argument("FillMixed: set key_count or target_bytes");
    }
    if (options_.databases.empty()) throw std::invalid_argument("FillMixed: no databases");
    if (!(options_.expire_fraction >= 0 && options_.expire_fraction <= 1)) {
      throw std::invalid_argument("FillMixed: expire_fraction must be in [0, 1]");
    }
    if (options_.with_functions) LoadFunctions();
    if (options_.plain_list_nodes) {
      stats_.plain_list_nodes = SetPackedThreshold(kFillPackedThreshold);
    }

    using Kind = void (Filler::*)();
    std::vector<Kind> kinds = {
        &Filler::StrInt,        &Filler::StrShort,      &Filler::StrLong,
        &Filler::StrBinary,     &Filler::StrEmpty,      &Filler::ListListpack,
        &Filler::ListQuicklist, &Filler::SetIntset,     &Filler::SetListpack,
        &Filler::SetHashtable,  &Filler::ZsetListpack,  &Filler::ZsetSkiplist,
        &Filler::HashListpack,  &Filler::HashHashtable, &Filler::StreamGroups,
        &Filler::StreamPlain,   &Filler::StreamEmpty};
    if (stats_.plain_list_nodes) kinds.push_back(&Filler::ListPlain);

    for (uint64_t cycle = 0; !Done(); ++cycle) {
      db_ = options_.databases[cycle % options_.databases.size()];
      Send({"SELECT", std::to_string(db_)});
      for (Kind kind : kinds) {
        if (Done()) break;
        (this->*kind)();
      }
    }
    Send({"SELECT", "0"});
    pipeline_.Flush();
    if (stats_.plain_list_nodes) SetPackedThreshold(kDefaultPackedThreshold);
    stats_.commands = pipeline_.commands();
    return stats_;
  }

 private:
  bool Done() const {
    return stats_.keys >= options_.key_count && stats_.bytes >= options_.target_bytes;
  }

  // A command that writes payload: its arguments after the command name count as bytes.
  void Write(const std::vector<std::string>& argv) {
    for (size_t i = 1; i < argv.size(); ++i) stats_.bytes += argv[i].size();
    pipeline_.Append(argv);
  }
  // A command that only shapes the data (groups, reads, deletes): not counted as payload.
  void Send(const std::vector<std::string>& argv) { pipeline_.Append(argv); }

  // Names the next key of `kind` and counts it in the current database.
  std::string NewKey(const std::string& kind) {
    uint64_t n = stats_.keys_by_kind[kind]++;
    std::string key = options_.key_prefix + kind + ":" + std::to_string(n);
    stats_.samples.try_emplace(kind, SampleKey{db_, key});
    ++stats_.keys;
    ++stats_.databases[db_].keys;
    return key;
  }

  // Called after the key exists: EXPIREAT on a missing key would do nothing.
  void MaybeExpire(const std::string& key) {
    if (!rng_.Chance(options_.expire_fraction)) return;
    uint64_t at = kExpireBaseSeconds + rng_.Uniform(0, 365 * 86400);
    // Both forms end up as a millisecond expiry in the RDB; PEXPIREAT gives non-round ones.
    if (rng_.Chance(0.5)) {
      Send({"EXPIREAT", key, std::to_string(at)});
    } else {
      Send({"PEXPIREAT", key, std::to_string(at * 1000 + rng_.Uniform(0, 999))});
    }
    ++stats_.expires;
    ++stats_.databases[db_].expires;
  }

  // Sent directly, not pipelined, because whether the server allows DEBUG decides what follows.
  bool SetPackedThreshold(uint64_t bytes) {
    pipeline_.Flush();
    std::string value = std::to_string(bytes);
    const char* argv[] = {"DEBUG", "QUICKLIST-PACKED-THRESHOLD", value.c_str()};
    size_t lens[] = {5, 26, value.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, 3, argv, lens));
    if (r == nullptr) {
      throw std::runtime_error(std::string("FillMixed: DEBUG QUICKLIST-PACKED-THRESHOLD: ") +
                               c_->errstr);
    }
    bool ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
  }

  void LoadFunctions() {
    for (int i = 0; i < options_.function_libraries; ++i) {
      std::string suffix = std::to_string(options_.seed) + "_" + std::to_string(i);
      std::string code = "#!lua name=finalsnap_lib_" + suffix +
                         "\n"
                         "-- " +
                         Alnum(rng_, rng_.Uniform(1, 200)) +
                         "\n"
                         "local function echo(keys, args) return args[1] end\n"
                         "redis.register_function('finalsnap_echo_" +
                         suffix +
                         "', echo)\n"
                         "redis.register_function{function_name='finalsnap_count_" +
                         suffix +
                         "', callback=function(keys, args) return #keys end, "
                         "flags={'no-writes'}, description='counts its keys'}\n";
      Send({"FUNCTION", "LOAD", "REPLACE", code});
      ++stats_.functions;
    }
  }

  // --- strings

  void StrInt() {
    std::string key = NewKey("str:int");
    Write({"SET", key, Integer(rng_)});
    MaybeExpire(key);
  }

  void StrShort() {
    std::string key = NewKey("str:short");
    // "00123" looks numeric but is not canonical, so it must stay a string.
    std::string value = rng_.Chance(0.2) ? "00" + std::to_string(rng_.Uniform(0, 99999))
                                         : Alnum(rng_, rng_.Uniform(1, 20));
    Write({"SET", key, value});
    MaybeExpire(key);
  }

  void StrLong() {
    std::string key = NewKey("str:long");
    size_t len = rng_.Chance(0.9) ? rng_.Uniform(21, 4096) : rng_.Uniform(4097, 65536);
    Write({"SET", key, Text(rng_, len)});
    MaybeExpire(key);
  }

  void StrBinary() {
    std::string key = NewKey("str:binary");
    Write({"SET", key, Binary(rng_, rng_.Uniform(1, 2048))});
    MaybeExpire(key);
  }

  void StrEmpty() {
    std::string key = NewKey("str:empty");
    Write({"SET", key, ""});
    MaybeExpire(key);
  }

  // --- lists (Redis 7.0 keeps every list as a quicklist of listpacks)

  void ListListpack() {
    std::string key = NewKey("list:listpack");
    std::vector<std::string> argv = {"RPUSH", key};
    for (uint64_t n = rng_.Uniform(1, 20); n > 0; --n) argv.push_back(SmallElement(rng_));
    Write(argv);
    MaybeExpire(key);
  }

  void ListQuicklist() {
    std::string key = NewKey("list:quicklist");
    std::vector<std::string> argv = {rng_.Chance(0.5) ? "RPUSH" : "LPUSH", key};
    for (uint64_t n = rng_.Uniform(kQuicklistMinElements, 400); n > 0; --n) {
      uint64_t pick = rng_.Uniform(0, 99);
      if (pick < 35) {
        argv.push_back(Integer(rng_));
      } else if (pick < 90) {
        argv.push_back(Alnum(rng_, rng_.Uniform(1, 63)));  // listpack 6-bit length strings
      } else if (pick < 98) {
        argv.push_back(Text(rng_, rng_.Uniform(64, 1024)));  // 12-bit length strings
      } else {
        argv.push_back(Text(rng_, rng_.Uniform(4096, 9000)));  // 32-bit length strings
      }
    }
    Write(argv);
    MaybeExpire(key);
  }

  void ListPlain() {
    std::string key = NewKey("list:plain");
    std::vector<std::string> argv = {"RPUSH", key};
    for (uint64_t n = rng_.Uniform(1, 6); n > 0; --n) {
      uint64_t pick = rng_.Uniform(0, 2);
      if (pick == 0) {
        argv.push_back(SmallElement(rng_));
      } else if (pick == 1) {
        argv.push_back(Text(rng_, rng_.Uniform(kFillPackedThreshold, 2 * kFillPackedThreshold)));
      } else {
        argv.push_back(Binary(rng_, rng_.Uniform(kFillPackedThreshold, 2 * kFillPackedThreshold)));
      }
    }
    Write(argv);
    MaybeExpire(key);
  }

  // --- sets

  void SetIntset() {
    std::string key = NewKey("set:intset");
    // Each key picks one width, so all three intset encodings (2, 4 and 8 bytes) appear.
    int64_t lo = 0, hi = 0;
    switch (rng_.Uniform(0, 2)) {
      case 0:
        lo = std::numeric_limits<int16_t>::min(), hi = std::numeric_limits<int16_t>::max();
        break;
      case 1:
        lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
        break;
      default:
        lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
        break;
    }
    std::vector<std::string> argv = {"SADD", key};
    for (uint64_t n = rng_.Uniform(1, kIntsetMaxEntries); n > 0; --n) {
      argv.push_back(std::to_string(rng_.Signed(lo, hi)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  void SetListpack() {
    std::string key = NewKey("set:listpack");
    std::vector<std::string> argv = {"SADD", key};
    for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
      argv.push_back(Alnum(rng_, rng_.Uniform(1, 40)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  void SetHashtable() {
    std::string key = NewKey("set:hashtable");
    std::vector<std::string> argv = {"SADD", key};
    // Members are made unique (by their index i), so that duplicates cannot bring the count
    // back under the limit that selects the encoding.
    if (rng_.Chance(0.5)) {
      // Too many integers for an intset.
      for (uint64_t i = 0, n = rng_.Uniform(kIntsetMaxEntries + 1, 1000); i < n; ++i) {
        argv.push_back(
            std::to_string(rng_.Signed(-1'000'000, 1'000'000) * 1024 + static_cast<int64_t>(i)));
      }
    } else {
      for (uint64_t i = 0, n = rng_.Uniform(kSetMaxListpackEntries + 1, 300); i < n; ++i) {
        argv.push_back(Alnum(rng_, rng_.Uniform(1, 30)) + "#" + std::to_string(i));
      }
      if (rng_.Chance(0.5)) argv.push_back(Text(rng_, rng_.Uniform(kListpackMaxValue + 1, 300)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  // --- sorted sets

  void ZsetListpack() {
    std::string key = NewKey("zset:listpack");
    std::vector<std::string> argv = {"ZADD", key};
    for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
      argv.push_back(Score(rng_));
      argv.push_back(SmallElement(rng_));
    }
    Write(argv);
    MaybeExpire(key);
  }

  void ZsetSkiplist() {
    std::string key = NewKey("zset:skiplist");
    std::vector<std::string> argv = {"ZADD", key};
    bool many = rng_.Chance(0.7);
    uint64_t n = many ? rng_.Uniform(kZsetMaxListpackEntries + 1, 300) : rng_.Uniform(1, 50);
    for (uint64_t i = 0; i < n; ++i) {
      argv.push_back(Score(rng_));
      // Unique members (see SetHashtable), integers or strings.
      argv.push_back(rng_.Chance(0.4) ? std::to_string(i * 1000 + rng_.Uniform(0, 999))
                                      : Alnum(rng_, rng_.Uniform(1, 40)) + "#" + std::to_string(i));
    }
    if (!many) {
      // One long member converts even a small sorted set to a skiplist.
      argv.push_back(Score(rng_));
      argv.push_back(Text(rng_, rng_.Uniform(kListpackMaxValue + 1, 200)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  // --- hashes

  void HashListpack() {
    std::string key = NewKey("hash:listpack");
    std::vector<std::string> argv = {"HSET", key};
    for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
      argv.push_back(Alnum(rng_, rng_.Uniform(1, 30)));
      argv.push_back(rng_.Chance(0.3) ? Integer(rng_) : Text(rng_, rng_.Uniform(0, 64)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  void HashHashtable() {
    std::string key = NewKey("hash:hashtable");
    std::vector<std::string> argv = {"HSET", key};
    bool many = rng_.Chance(0.4);
    uint64_t n = many ? rng_.Uniform(kHashMaxListpackEntries + 1, 700) : rng_.Uniform(1, 50);
    for (uint64_t i = 0; i < n; ++i) {
      // Unique fields (see SetHashtable).
      argv.push_back(Alnum(rng_, rng_.Uniform(1, 30)) + "." + std::to_string(i));
      argv.push_back(rng_.Chance(0.3) ? Integer(rng_) : Text(rng_, rng_.Uniform(0, 64)));
    }
    if (!many) {
      // One long value converts even a small hash to a hashtable.
      argv.push_back("long-field");
      argv.push_back(Text(rng_, rng_.Uniform(kListpackMaxValue + 1, 2000)));
    }
    Write(argv);
    MaybeExpire(key);
  }

  // --- streams

  // Explicit, increasing IDs keep the data set independent of the clock.
  std::vector<std::string> StreamIds(uint64_t count) {
    std::vector<std::string> ids;
    ids.reserve(count);
    uint64_t ms = kStreamBaseMs + rng_.Uniform(0, 1'000'000'000);
    uint64_t seq = rng_.Uniform(0, 3);
    for (uint64_t i = 0; i < count; ++i) {
      ids.push_back(std::to_string(ms) + "-" + std::to_string(seq));
      if (rng_.Chance(0.3)) {
        ++seq;
      } else {
        ms += rng_.Uniform(1, 1000);
        seq = 0;
      }
    }
    return ids;
  }

  // XADDs one entry per ID. Most entries share the first entry's fields (the listpack's master
  // entry, stored with the SAMEFIELDS flag); the rest have fields of their own.
  void AddEntries(const std::string& key, const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      std::vector<std::string> argv = {"XADD", key, id};
      if (rng_.Chance(0.7)) {
        argv.insert(argv.end(), {"event", Alnum(rng_, rng_.Uniform(1, 16)), "user", Integer(rng_),
                                 "payload", Text(rng_, rng_.Uniform(0, 120))});
      } else {
        for (uint64_t n = rng_.Uniform(1, 4); n > 0; --n) {
          argv.push_back("f" + std::to_string(rng_.Uniform(0, 9)));
          argv.push_back(SmallElement(rng_));
        }
      }
      Write(argv);
    }
  }

  void StreamGroups() {
    std::string key = NewKey("stream:groups");
    uint64_t count = rng_.Uniform(1, 300);
    std::vector<std::string> ids = StreamIds(count);
    AddEntries(key, ids);
    // g1: two consumers with pending entries, some acknowledged, one entry claimed by a third.
    Send({"XGROUP", "CREATE", key, "g1", "0"});
    uint64_t alice = rng_.Uniform(0, count);
    uint64_t bob = rng_.Uniform(0, count - alice);
    Send({"XREADGROUP", "GROUP", "g1", "alice", "COUNT", std::to_string(alice == 0 ? 1 : alice),
          "STREAMS", key, ">"});
    if (alice == 0) alice = 1;
    if (alice + bob > count) bob = count - alice;
    if (bob > 0) {
      Send({"XREADGROUP", "GROUP", "g1", "bob", "COUNT", std::to_string(bob), "STREAMS", key, ">"});
    }
    std::vector<std::string> ack = {"XACK", key, "g1"};
    for (uint64_t i = 0; i < alice; ++i) {
      if (rng_.Chance(0.5)) ack.push_back(ids[i]);
    }
    if (ack.size() > 3) Send(ack);
    if (bob > 0) Send({"XCLAIM", key, "g1", "carol", "0", ids[alice + rng_.Uniform(0, bob - 1)]});
    // g2: starts part-way, has an idle consumer with nothing pending and one reading with NOACK.
    Send({"XGROUP", "CREATE", key, "g2", ids[rng_.Uniform(0, count - 1)]});
    Send({"XGROUP", "CREATECONSUMER", key, "g2", "dave"});
    Send({"XREADGROUP", "GROUP", "g2", "erin", "COUNT", std::to_string(rng_.Uniform(1, 50)),
          "NOACK", "STREAMS", key, ">"});
    std::vector<std::string> del = {"XDEL", key};
    for (const std::string& id : ids) {
      if (rng_.Chance(0.1)) del.push_back(id);
    }
    if (del.size() > 2) Send(del);
    if (rng_.Chance(0.3)) {
      // 7.0's stream fields: entries-added and max-deleted-id.
      Send({"XSETID", key, ids.back(), "ENTRIESADDED", std::to_string(count + rng_.Uniform(0, 99)),
            "MAXDELETEDID", ids[rng_.Uniform(0, count - 1)]});
    }
    MaybeExpire(key);
  }

  void StreamPlain() {
    std::string key = NewKey("stream:plain");
    uint64_t count = rng_.Uniform(1, 150);
    AddEntries(key, StreamIds(count));
    // Trimming drops whole listpack nodes from the front.
    if (rng_.Chance(0.2)) Send({"XTRIM", key, "MAXLEN", std::to_string(count / 2)});
    MaybeExpire(key);
  }

  void StreamEmpty() {
    std::string key = NewKey("stream:empty");
    if (rng_.Chance(0.5)) {
      std::string id = StreamIds(1).front();
      Write({"XADD", key, id, "f", "v"});
      Send({"XDEL", key, id});
    } else {
      Send({"XGROUP", "CREATE", key, "g", "$", "MKSTREAM"});
    }
    MaybeExpire(key);
  }

  redisContext* c_;
  const DatasetOptions& options_;
  Rng rng_;
  Pipeline pipeline_;
  DatasetStats stats_;
  uint64_t db_ = 0;
};

}  // namespace

DatasetStats FillMixed(redisContext* c, const DatasetOptions& options) {
  if (c == nullptr) throw std::invalid_argument("FillMixed: null context");
  return Filler(c, options).Run();
}

}  // namespace finalsnap::testing
