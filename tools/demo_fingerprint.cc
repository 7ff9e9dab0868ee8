// TakeFingerprint: INFO and DBSIZE for the counts, then DEBUG DIGEST, or the sample hash.
#include "demo_fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "localnode/client.h"

namespace finalsnap::cli {
namespace {

using localnode::Reply;

using Clock = std::chrono::steady_clock;

void HashInto(uint64_t& h, std::string_view bytes) {
  // FNV-1a, with the length mixed in first so that element boundaries count.
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 0x100000001b3ULL; };
  const uint64_t n = bytes.size();
  for (size_t i = 0; i < sizeof(n); ++i) mix(static_cast<unsigned char>(n >> (8 * i)));
  for (const char c : bytes) mix(static_cast<unsigned char>(c));
}

void Flatten(const Reply& r, std::vector<std::string>& out) {
  if (r.type == Reply::Type::kArray) {
    for (const Reply& e : r.elements) Flatten(e, out);
  } else if (r.type == Reply::Type::kInteger) {
    out.push_back(std::to_string(r.integer));
  } else {
    out.push_back(r.type == Reply::Type::kNil ? "(nil)" : r.str);
  }
}

// The fallback: a content hash of sampled keys, read with type-specific commands and sorted
// where the server's order is not part of the value (hash fields, set members).
Expected<std::string> SampleHash(redisContext* c, const std::vector<localnode::SampleKey>& sample) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const localnode::SampleKey& sampled : sample) {
    const std::string& key = sampled.key;
    Expected<Reply> select = localnode::Command(c, {"SELECT", std::to_string(sampled.db)});
    if (!select.ok()) return select.error();
    Expected<Reply> type = localnode::Command(c, {"TYPE", key});
    if (!type.ok()) return type.error();
    const std::string t = type->str;
    std::vector<std::string> read;
    if (t == "string") read = {"GET", key};
    if (t == "hash") read = {"HGETALL", key};
    if (t == "list") read = {"LRANGE", key, "0", "-1"};
    if (t == "set") read = {"SMEMBERS", key};
    if (t == "zset") read = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
    if (t == "stream") read = {"XRANGE", key, "-", "+"};
    std::vector<std::string> items;
    if (!read.empty()) {
      Expected<Reply> value = localnode::Command(c, read);
      if (!value.ok()) return value.error();
      Flatten(*value, items);
    }
    if (t == "hash") {
      std::vector<std::string> pairs;
      for (size_t i = 0; i + 1 < items.size(); i += 2)
        pairs.push_back(items[i] + '\0' + items[i + 1]);
      items = std::move(pairs);
    }
    if (t == "hash" || t == "set") std::sort(items.begin(), items.end());
    Expected<Reply> ttl = localnode::Command(c, {"PTTL", key});
    if (!ttl.ok()) return ttl.error();
    const bool expires = ttl->type == Reply::Type::kInteger && ttl->integer > 0;
    for (const std::string& part : {key, t, std::string(expires ? "ttl" : "no-ttl")}) {
      HashInto(h, part);
    }
    for (const std::string& item : items) HashInto(h, item);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf);
}

}  // namespace

uint64_t Fingerprint::TotalKeys() const {
  uint64_t total = 0;
  for (const auto& [db, n] : keys) total += n;
  return total;
}

std::string Fingerprint::KeysText() const {
  std::string s;
  for (const auto& [db, n] : keys) {
    if (!s.empty()) s += ", ";
    s += "db" + std::to_string(db) + " " + std::to_string(n);
  }
  return s.empty() ? "none" : s;
}

Expected<Fingerprint> TakeFingerprint(int port, const std::vector<localnode::SampleKey>& sample,
                                      std::chrono::milliseconds timeout) {
  Expected<localnode::Context> c = localnode::Connect("127.0.0.1", port, timeout);
  if (!c.ok()) return c.error();
  Expected<Reply> info = localnode::Command(c->get(), {"INFO", "all"});
  if (!info.ok()) return info.error();
  if (info->type != Reply::Type::kString) return Status::Error("INFO failed: " + info->ToString());
  const std::map<std::string, std::string> fields = localnode::ParseInfo(info->str);
  Fingerprint f;
  if (auto it = fields.find("redis_version"); it != fields.end()) f.version = it->second;
  if (auto it = fields.find("used_memory"); it != fields.end()) {
    f.used_memory = std::strtoull(it->second.c_str(), nullptr, 10);
  }
  for (const auto& [db, counts] : localnode::ParseKeyspace(fields)) f.keys[db] = counts.keys;
  Expected<Reply> dbsize = localnode::Command(c->get(), {"DBSIZE"});
  if (!dbsize.ok()) return dbsize.error();
  if (dbsize->type == Reply::Type::kInteger) f.dbsize = static_cast<uint64_t>(dbsize->integer);

  const auto start = Clock::now();
  Expected<Reply> digest = localnode::Command(c->get(), {"DEBUG", "DIGEST"});
  if (!digest.ok()) return digest.error();
  if (digest->type == Reply::Type::kStatus) {
    f.digest = digest->str;
    f.method = "DEBUG DIGEST";
  } else {
    Expected<std::string> hash = SampleHash(c->get(), sample);
    if (!hash.ok()) return hash.error();
    f.digest = *hash;
    f.method = "sample of " + std::to_string(sample.size()) + " keys";
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return f;
}

}  // namespace finalsnap::cli
