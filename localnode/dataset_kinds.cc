// Mix::kEveryEncoding: one kind of key per value type and encoding Redis 7.0 writes to an RDB
// file (the table is in localnode/dataset.h). Each kind draws its sizes and values from the
// Filler's generator, in an order that must not change: the data set follows from the seed.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "filler.h"

namespace finalsnap::localnode::detail {
namespace {

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

}  // namespace

std::vector<Filler::Kind> Filler::EveryEncodingKinds() const {
  std::vector<Kind> kinds = {&Filler::StrInt,        &Filler::StrShort,      &Filler::StrLong,
                             &Filler::StrBinary,     &Filler::StrEmpty,      &Filler::ListListpack,
                             &Filler::ListQuicklist, &Filler::SetIntset,     &Filler::SetListpack,
                             &Filler::SetHashtable,  &Filler::ZsetListpack,  &Filler::ZsetSkiplist,
                             &Filler::HashListpack,  &Filler::HashHashtable, &Filler::StreamGroups,
                             &Filler::StreamPlain,   &Filler::StreamEmpty};
  if (stats_.plain_list_nodes) kinds.push_back(&Filler::ListPlain);
  return kinds;
}

// --- strings

void Filler::StrInt() {
  std::string key = NewKey("str:int");
  Write({"SET", key, Integer(rng_)});
  MaybeExpire(key);
}

void Filler::StrShort() {
  std::string key = NewKey("str:short");
  // "00123" looks numeric but is not canonical, so it must stay a string.
  std::string value = rng_.Chance(0.2) ? "00" + std::to_string(rng_.Uniform(0, 99999))
                                       : Alnum(rng_, rng_.Uniform(1, 20));
  Write({"SET", key, value});
  MaybeExpire(key);
}

void Filler::StrLong() {
  std::string key = NewKey("str:long");
  size_t len = rng_.Chance(0.9) ? rng_.Uniform(21, 4096) : rng_.Uniform(4097, 65536);
  Write({"SET", key, Text(rng_, len)});
  MaybeExpire(key);
}

void Filler::StrBinary() {
  std::string key = NewKey("str:binary");
  Write({"SET", key, Binary(rng_, rng_.Uniform(1, 2048))});
  MaybeExpire(key);
}

void Filler::StrEmpty() {
  std::string key = NewKey("str:empty");
  Write({"SET", key, ""});
  MaybeExpire(key);
}

// --- lists (Redis 7.0 keeps every list as a quicklist of listpacks)

void Filler::ListListpack() {
  std::string key = NewKey("list:listpack");
  std::vector<std::string> argv = {"RPUSH", key};
  for (uint64_t n = rng_.Uniform(1, 20); n > 0; --n) argv.push_back(SmallElement(rng_));
  Write(argv);
  MaybeExpire(key);
}

void Filler::ListQuicklist() {
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

void Filler::ListPlain() {
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

void Filler::SetIntset() {
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

void Filler::SetListpack() {
  std::string key = NewKey("set:listpack");
  std::vector<std::string> argv = {"SADD", key};
  for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
    argv.push_back(Alnum(rng_, rng_.Uniform(1, 40)));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::SetHashtable() {
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

void Filler::ZsetListpack() {
  std::string key = NewKey("zset:listpack");
  std::vector<std::string> argv = {"ZADD", key};
  for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
    argv.push_back(Score(rng_));
    argv.push_back(SmallElement(rng_));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::ZsetSkiplist() {
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

void Filler::HashListpack() {
  std::string key = NewKey("hash:listpack");
  std::vector<std::string> argv = {"HSET", key};
  for (uint64_t n = rng_.Uniform(1, 100); n > 0; --n) {
    argv.push_back(Alnum(rng_, rng_.Uniform(1, 30)));
    argv.push_back(rng_.Chance(0.3) ? Integer(rng_) : Text(rng_, rng_.Uniform(0, 64)));
  }
  Write(argv);
  MaybeExpire(key);
}

void Filler::HashHashtable() {
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
std::vector<std::string> Filler::StreamIds(uint64_t count) {
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
void Filler::AddEntries(const std::string& key, const std::vector<std::string>& ids) {
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

void Filler::StreamGroups() {
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
  Send({"XREADGROUP", "GROUP", "g2", "erin", "COUNT", std::to_string(rng_.Uniform(1, 50)), "NOACK",
        "STREAMS", key, ">"});
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

void Filler::StreamPlain() {
  std::string key = NewKey("stream:plain");
  uint64_t count = rng_.Uniform(1, 150);
  AddEntries(key, StreamIds(count));
  // Trimming drops whole listpack nodes from the front.
  if (rng_.Chance(0.2)) Send({"XTRIM", key, "MAXLEN", std::to_string(count / 2)});
  MaybeExpire(key);
}

void Filler::StreamEmpty() {
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

}  // namespace finalsnap::localnode::detail
