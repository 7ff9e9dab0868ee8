// FillDataset's driver: the value generators, the pipeline, and the Filler's cycle over its table
// of kinds (see filler.h; the kinds are in dataset_kinds.cc and dataset_application.cc).
#include "localnode/dataset.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>
#include <utility>

#include "filler.h"

namespace finalsnap::localnode {
namespace detail {
namespace {

// A batch is flushed at this many bytes even before batch_commands: big values would otherwise
// make a batch of 1000 commands hold hundreds of megabytes in hiredis' output buffer.
constexpr size_t kBatchBytes = size_t{8} << 20;
// Redis 7.0's default packed threshold, restored after the fill.
constexpr uint64_t kDefaultPackedThreshold = uint64_t{1} << 30;
// Expiry times: from 2100-01-01 on, fixed so that the data set does not depend on the clock.
constexpr uint64_t kExpireBaseSeconds = 4102444800;
// Spot checks are every this many keys: a prime, so that they fall on every kind in turn.
constexpr uint64_t kSpotCheckEvery = 97;

}  // namespace

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

Pipeline::Pipeline(redisContext* c, size_t batch_commands, std::function<void()> on_flush)
    : c_(c), batch_commands_(batch_commands), on_flush_(std::move(on_flush)) {}

void Pipeline::Append(const std::vector<std::string>& argv) {
  if (failed()) return;
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
    Fail("FillDataset: cannot queue " + argv[0] + ": " + c_->errstr);
    return;
  }
  // Remember what each pending command was, so an error reply can be named.
  pending_.push_back(argv[0] + (argv.size() > 1 ? " " + argv[1].substr(0, 64) : ""));
  pending_bytes_ += bytes;
  ++commands_;
  if (pending_.size() >= batch_commands_ || pending_bytes_ >= kBatchBytes) Flush();
}

void Pipeline::Flush() {
  for (const std::string& what : pending_) {
    void* reply = nullptr;
    if (redisGetReply(c_, &reply) != REDIS_OK || reply == nullptr) {
      // The context is unusable now: no reply after this one can be read.
      Fail("FillDataset: connection failed while waiting for the reply to " + what + ": " +
           c_->errstr);
      break;
    }
    auto* r = static_cast<redisReply*>(reply);
    // Every reply is read even after an error reply, so the connection stays usable.
    if (r->type == REDIS_REPLY_ERROR) {
      Fail("FillDataset: error reply to " + what + ": " + std::string(r->str, r->len));
    }
    freeReplyObject(r);
  }
  pending_.clear();
  pending_bytes_ = 0;
  if (!failed() && on_flush_) on_flush_();
}

void Pipeline::Fail(std::string message) {
  if (error_.ok()) error_ = Status::Error(std::move(message));
}

Filler::Filler(redisContext* c, const DatasetOptions& options)
    : c_(c),
      options_(options),
      rng_(options.seed),
      pipeline_(c, options.batch_commands == 0 ? 1 : options.batch_commands, [this] {
        if (options_.progress) options_.progress(stats_.bytes);
      }) {}

Expected<DatasetStats> Filler::Run() {
  if (options_.key_count == 0 && options_.target_bytes == 0) {
    return Status::Error("FillDataset: set key_count or target_bytes");
  }
  if (options_.databases.empty()) return Status::Error("FillDataset: no databases");
  if (!(options_.expire_fraction >= 0 && options_.expire_fraction <= 1)) {
    return Status::Error("FillDataset: expire_fraction must be in [0, 1]");
  }
  const bool every_encoding = options_.mix == DatasetOptions::Mix::kEveryEncoding;
  if (options_.with_functions) LoadFunctions();
  if (every_encoding && options_.plain_list_nodes) {
    stats_.plain_list_nodes = SetPackedThreshold(kFillPackedThreshold);
  }
  const std::vector<Kind> kinds = ShapeKinds();

  for (uint64_t cycle = 0; !Done() && !pipeline_.failed(); ++cycle) {
    db_ = options_.databases[cycle % options_.databases.size()];
    Send({"SELECT", std::to_string(db_)});
    for (Kind kind : kinds) {
      if (Done() || pipeline_.failed()) break;
      (this->*kind)();
    }
  }
  Send({"SELECT", "0"});
  pipeline_.Flush();
  if (stats_.plain_list_nodes && !pipeline_.failed()) {
    SetPackedThreshold(kDefaultPackedThreshold);
  }
  if (pipeline_.failed()) return pipeline_.error();
  stats_.commands = pipeline_.commands();
  return stats_;
}

bool Filler::Done() const {
  return stats_.keys >= options_.key_count && stats_.bytes >= options_.target_bytes;
}

void Filler::Write(const std::vector<std::string>& argv) {
  for (size_t i = 1; i < argv.size(); ++i) stats_.bytes += argv[i].size();
  pipeline_.Append(argv);
}

void Filler::Send(const std::vector<std::string>& argv) { pipeline_.Append(argv); }

std::string Filler::NewKey(const std::string& kind) {
  std::string key = options_.key_prefix + kind + ":" + std::to_string(stats_.keys_by_kind[kind]);
  CountKey(kind, key);
  return key;
}

void Filler::CountKey(const std::string& kind, const std::string& key) {
  ++stats_.keys_by_kind[kind];
  stats_.samples.try_emplace(kind, SampleKey{db_, key});
  if (stats_.keys % kSpotCheckEvery == 0 && stats_.spot_checks.size() < options_.spot_checks) {
    stats_.spot_checks.push_back(SampleKey{db_, key});
  }
  ++stats_.keys;
  ++stats_.databases[db_].keys;
}

void Filler::MaybeExpire(const std::string& key) {
  if (rng_.Chance(options_.expire_fraction)) Expire(key);
}

void Filler::Expire(const std::string& key) {
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
bool Filler::SetPackedThreshold(uint64_t bytes) {
  pipeline_.Flush();
  if (pipeline_.failed()) return false;
  std::string value = std::to_string(bytes);
  const char* argv[] = {"DEBUG", "QUICKLIST-PACKED-THRESHOLD", value.c_str()};
  size_t lens[] = {5, 26, value.size()};
  auto* r = static_cast<redisReply*>(redisCommandArgv(c_, 3, argv, lens));
  if (r == nullptr) {
    pipeline_.Fail(std::string("FillDataset: DEBUG QUICKLIST-PACKED-THRESHOLD: ") + c_->errstr);
    return false;
  }
  bool ok = r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  return ok;
}

void Filler::LoadFunctions() {
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

}  // namespace detail

Expected<DatasetStats> FillDataset(redisContext* c, const DatasetOptions& options) {
  if (c == nullptr) return Status::Error("FillDataset: null context");
  return detail::Filler(c, options).Run();
}

namespace {

constexpr std::pair<DatasetOptions::Mix, std::string_view> kMixNames[] = {
    {DatasetOptions::Mix::kEveryEncoding, "encodings"},
    {DatasetOptions::Mix::kApplication, "application"},
    {DatasetOptions::Mix::kSessions, "sessions"},
    {DatasetOptions::Mix::kJsonDocuments, "json"},
    {DatasetOptions::Mix::kSmallHashes, "hashes"},
    {DatasetOptions::Mix::kSmallCollections, "collections"},
    {DatasetOptions::Mix::kSmallKeys, "smallkeys"},
    {DatasetOptions::Mix::kHugeKeys, "huge"},
    {DatasetOptions::Mix::kStreams, "streams"},
};

}  // namespace

std::string MixName(DatasetOptions::Mix mix) {
  for (const auto& [m, name] : kMixNames) {
    if (m == mix) return std::string(name);
  }
  return "?";
}

Expected<DatasetOptions::Mix> MixByName(std::string_view name) {
  std::string known;
  for (const auto& [m, n] : kMixNames) {
    if (n == name) return m;
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  return Status::Error("unknown shape '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace finalsnap::localnode
