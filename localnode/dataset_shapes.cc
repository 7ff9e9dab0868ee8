// The benchmark shapes (DatasetOptions::Mix beyond kEveryEncoding and kApplication): each is one
// kind of data a real fleet holds a lot of, so that a benchmark can say how finalsnap does on
// millions of small keys as well as on a few large ones (localnode/dataset.h lists them).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "filler.h"

namespace finalsnap::localnode::detail {
namespace {

// Elements per command when a huge key is built: big enough to be quick, small enough that a
// batch stays a few megabytes.
constexpr uint64_t kHugeChunk = 1000;

constexpr std::string_view kFirstNames[] = {
    "ada",      "alan",   "grace",   "edsger", "barbara", "ken",     "dennis", "linus",
    "margaret", "donald", "frances", "john",   "leslie",  "niklaus", "radia",  "tim"};
constexpr std::string_view kTags[] = {"new", "vip", "beta", "eu", "us", "mobile", "web", "trial"};

}  // namespace

std::vector<Filler::Kind> Filler::ShapeKinds() const {
  using Mix = DatasetOptions::Mix;
  switch (options_.mix) {
    case Mix::kSessions:
      return {&Filler::SessionString};
    case Mix::kJsonDocuments:
      return {&Filler::JsonDocument};
    case Mix::kSmallHashes:
      return {&Filler::SmallHash};
    case Mix::kSmallCollections:
      return {&Filler::SmallSortedSet, &Filler::SmallList};
    case Mix::kHugeKeys:
      return {&Filler::HugeHash, &Filler::HugeList, &Filler::HugeSortedSet, &Filler::HugeString};
    case Mix::kStreams:
      return {&Filler::StreamGroups};
    case Mix::kSmallKeys:
      // The small-key mix: per cycle of 8, three JSON strings, a session, two hashes, a list
      // and a sorted set, all small enough to keep their compact encodings.
      return {&Filler::JsonDocument, &Filler::SessionString, &Filler::SmallHash,
              &Filler::JsonDocument, &Filler::SmallList,     &Filler::SmallHash,
              &Filler::JsonDocument, &Filler::SmallSortedSet};
    case Mix::kEveryEncoding:
      return EveryEncodingKinds();
    case Mix::kApplication:
      return ApplicationKinds();
  }
  return {};
}

// A session: a token of 40..160 bytes, always with a TTL.
void Filler::SessionString() {
  const std::string key = NewKey("session");
  Write({"SET", key, Alnum(rng_, 24) + ":" + Text(rng_, rng_.Uniform(16, 136))});
  Expire(key);
}

// A small JSON document of about 80..500 bytes: a user record with a few tags.
void Filler::JsonDocument() {
  const std::string key = NewKey("doc");
  const std::string_view name = kFirstNames[rng_.Uniform(0, std::size(kFirstNames) - 1)];
  std::string doc = "{\"id\":" + std::to_string(stats_.keys) + ",\"name\":\"" + std::string(name) +
                    "\",\"email\":\"" + std::string(name) + "." + Alnum(rng_, 6) +
                    "@example.com\",\"active\":" + (rng_.Chance(0.8) ? "true" : "false") +
                    ",\"score\":" + std::to_string(rng_.Uniform(0, 100'000)) + ",\"tags\":[";
  for (uint64_t t = 0, n = rng_.Uniform(0, 4); t < n; ++t) {
    doc += (t ? ",\"" : "\"") + std::string(kTags[rng_.Uniform(0, std::size(kTags) - 1)]) + "\"";
  }
  doc += "],\"bio\":\"" + Text(rng_, rng_.Uniform(0, 300)) + "\"}";
  Write({"SET", key, doc});
  MaybeExpire(key);
}

// A small hash (listpack): 3..16 fields of a profile, values 1..40 bytes.
void Filler::SmallHash() {
  const std::string key = NewKey("hash");
  std::vector<std::string> argv = {"HSET", key};
  for (uint64_t f = 0, n = rng_.Uniform(3, 16); f < n; ++f) {
    argv.push_back("f" + std::to_string(f));
    argv.push_back(SmallElement(rng_));
  }
  Write(argv);
  MaybeExpire(key);
}

// A small sorted set (listpack): 4..32 members with scores, a leaderboard.
void Filler::SmallSortedSet() {
  const std::string key = NewKey("zset");
  std::vector<std::string> argv = {"ZADD", key};
  for (uint64_t m = 0, n = rng_.Uniform(4, 32); m < n; ++m) {
    argv.push_back(std::to_string(rng_.Uniform(0, 1'000'000)));
    argv.push_back("player:" + std::to_string(rng_.Uniform(0, 9'999'999)));
  }
  Write(argv);
  MaybeExpire(key);
}

// A small list (one listpack node): 4..32 recent events of 8..48 bytes.
void Filler::SmallList() {
  const std::string key = NewKey("list");
  std::vector<std::string> argv = {"RPUSH", key};
  for (uint64_t n = rng_.Uniform(4, 32); n > 0; --n) {
    argv.push_back(Text(rng_, rng_.Uniform(8, 48)));
  }
  Write(argv);
  MaybeExpire(key);
}

// Huge keys: each hundreds of thousands of elements, written kHugeChunk at a time; `before`
// says what goes before each element (a hash's field name, a sorted set's score).
void Filler::HugeCollection(const std::string& kind, const char* command, uint64_t elements,
                            HugeElement before) {
  const std::string key = NewKey(kind);
  for (uint64_t done = 0; done < elements && !pipeline_.failed();) {
    std::vector<std::string> argv = {command, key};
    for (uint64_t i = 0; i < kHugeChunk && done < elements; ++i, ++done) {
      if (before == HugeElement::kScored) {
        argv.push_back(std::to_string(rng_.Uniform(0, 1'000'000'000)));
      } else if (before == HugeElement::kField) {
        argv.push_back("field:" + std::to_string(done));
      }
      argv.push_back(Text(rng_, rng_.Uniform(16, 96)));
    }
    Write(argv);
    if (Done()) break;
  }
  MaybeExpire(key);
}

void Filler::HugeHash() { HugeCollection("huge:hash", "HSET", 300'000, HugeElement::kField); }
void Filler::HugeList() { HugeCollection("huge:list", "RPUSH", 500'000, HugeElement::kPlain); }
void Filler::HugeSortedSet() { HugeCollection("huge:zset", "ZADD", 200'000, HugeElement::kScored); }

// A 32 MiB string, built by APPEND a megabyte at a time.
void Filler::HugeString() {
  const std::string key = NewKey("huge:string");
  for (int mb = 0; mb < 32 && !pipeline_.failed(); ++mb) {
    Write({"APPEND", key, Text(rng_, size_t{1} << 20)});
  }
  MaybeExpire(key);
}

}  // namespace finalsnap::localnode::detail
