// Mix::kApplication: the data an application keeps in a cache, for `finalsnap demo`. Mostly
// small keys of compressible text, so a few megabytes make thousands of keys, with now and then
// a large collection and 64 long streams per database (see localnode/dataset.h).
#include <cstdint>
#include <string>
#include <vector>

#include "filler.h"

namespace finalsnap::localnode::detail {
namespace {

// Streams per database; each write of the stream kind adds one entry to the next of them.
constexpr uint64_t kStreams = 64;

}  // namespace

std::vector<Filler::Kind> Filler::ApplicationKinds() const {
  // One cycle is 16 writes: 6 strings, 3 hashes, 2 lists, 2 sets, 2 sorted sets, 1 stream entry.
  return {
      &Filler::AppString, &Filler::AppString,    &Filler::AppString,    &Filler::AppString,
      &Filler::AppString, &Filler::AppCounter,   &Filler::AppHash,      &Filler::AppHash,
      &Filler::AppHash,   &Filler::AppList,      &Filler::AppList,      &Filler::AppIntegerSet,
      &Filler::AppSet,    &Filler::AppSortedSet, &Filler::AppSortedSet, &Filler::AppStreamEntry};
}

uint64_t Filler::AppElements() {
  return rng_.Chance(0.001) ? rng_.Uniform(600, 1200) : rng_.Uniform(4, 40);
}

void Filler::AppString() {
  std::string key = NewKey("str");
  Write({"SET", key, Text(rng_, rng_.Uniform(32, 1024))});
  MaybeExpire(key);
}

void Filler::AppCounter() {
  std::string key = NewKey("str");
  Write({"SET", key, std::to_string(rng_.Uniform(0, 99'999'999))});
  MaybeExpire(key);
}

void Filler::AppHash() {
  std::string key = NewKey("hash");
  std::vector<std::string> argv = {"HSET", key};
  for (uint64_t f = 0, n = AppElements(); f < n; ++f) {
    argv.push_back("field:" + std::to_string(f));
    argv.push_back(Text(rng_, rng_.Uniform(8, 128)));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::AppList() {
  std::string key = NewKey("list");
  std::vector<std::string> argv = {"RPUSH", key};
  for (uint64_t n = 2 * AppElements(); n > 0; --n) argv.push_back(Text(rng_, rng_.Uniform(8, 128)));
  Write(argv);
  MaybeExpire(key);
}

void Filler::AppIntegerSet() {
  std::string key = NewKey("set");
  std::vector<std::string> argv = {"SADD", key};
  for (uint64_t n = AppElements(); n > 0; --n)
    argv.push_back(std::to_string(rng_.Uniform(0, 999'999)));
  Write(argv);
  MaybeExpire(key);
}

void Filler::AppSet() {
  std::string key = NewKey("set");
  std::vector<std::string> argv = {"SADD", key};
  for (uint64_t m = 0, n = AppElements(); m < n; ++m) {
    argv.push_back("member:" + std::to_string(m) + ":" + Text(rng_, rng_.Uniform(4, 32)));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::AppSortedSet() {
  std::string key = NewKey("zset");
  std::vector<std::string> argv = {"ZADD", key};
  for (uint64_t m = 0, n = AppElements(); m < n; ++m) {
    // A price-like score with two decimals: 0.00 .. 9999.99.
    const uint64_t cents = rng_.Uniform(0, 999'999);
    const uint64_t fraction = cents % 100;
    argv.push_back(std::to_string(cents / 100) + (fraction < 10 ? ".0" : ".") +
                   std::to_string(fraction));
    argv.push_back("m:" + std::to_string(m) + ":" + Text(rng_, rng_.Uniform(4, 32)));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::AppStreamEntry() {
  const uint64_t entry = stream_entries_[db_]++;
  const std::string key = options_.key_prefix + "stream:" + std::to_string(entry % kStreams);
  const bool created = entry < kStreams;
  if (created) CountKey("stream", key);
  // IDs from one counter across the database's streams: increasing within each stream, and
  // independent of the clock.
  const std::string id = std::to_string(kStreamBaseMs + entry) + "-0";
  Write({"XADD", key, id, "event", Text(rng_, rng_.Uniform(8, 32)), "payload",
         Text(rng_, rng_.Uniform(32, 256))});
  if (created) MaybeExpire(key);
}

}  // namespace finalsnap::localnode::detail
