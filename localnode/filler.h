// FillDataset's insides (private to localnode): a Filler walks a table of kinds, drawing every size
// and value from one seeded generator, and sends the commands through a Pipeline that reads
// replies in batches. dataset.cc has the driver and the value generators, dataset_kinds.cc the
// every-encoding kinds, dataset_application.cc the application kinds, dataset_shapes.cc the
// benchmark shapes.
//
// Errors are sticky: the first failure (an error reply, a lost connection) is kept by the
// Pipeline, every later command is dropped, and the driver stops at the next kind and returns
// it. So the kinds themselves are plain void functions.
#ifndef FINALSNAP_LOCALNODE_FILLER_H_
#define FINALSNAP_LOCALNODE_FILLER_H_

#include <hiredis/hiredis.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "localnode/dataset.h"

namespace finalsnap::localnode::detail {

// Stream IDs start here: fixed, so that the data set does not depend on the clock.
inline constexpr uint64_t kStreamBaseMs = 1'600'000'000'000;
// During an every-encoding fill, list elements of at least this size become PLAIN quicklist
// nodes. It is above 4095 so that list:quicklist can still hold packed 32-bit-length listpack
// strings.
inline constexpr uint64_t kFillPackedThreshold = 16384;

// A seeded generator with its own range functions: the std:: distributions are
// implementation-defined, and the data set must be the same wherever it is built.
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
std::string Integer(Rng& rng);
// `len` characters of [A-Za-z0-9-_].
std::string Alnum(Rng& rng, size_t len);
// Random bytes: incompressible, with NUL, CR and LF so that nothing treats values as C strings
// or lines.
std::string Binary(Rng& rng, size_t len);
// `len` bytes of words from a small vocabulary: compresses as well as real cached values often do.
std::string Text(Rng& rng, size_t len);
// A collection element that keeps listpack encoding (at most 64 bytes).
std::string SmallElement(Rng& rng);
// A sorted-set score: integers, fractions, huge and tiny magnitudes and the infinities.
std::string Score(Rng& rng);

// Appends commands with redisAppendCommandArgv and reads their replies in batches, so the
// server sees a stream of commands instead of one round trip each.
class Pipeline {
 public:
  Pipeline(redisContext* c, size_t batch_commands, std::function<void()> on_flush);

  void Append(const std::vector<std::string>& argv);
  // Reads every pending reply; the first error reply or a lost connection becomes error().
  void Flush();
  // Records a failure found outside the pipeline (the first one wins).
  void Fail(std::string message);
  bool failed() const { return !error_.ok(); }
  const Status& error() const { return error_; }
  uint64_t commands() const { return commands_; }

 private:
  redisContext* c_;
  size_t batch_commands_;
  std::function<void()> on_flush_;
  std::vector<std::string> pending_;  // what each pending command was, to name an error reply
  size_t pending_bytes_ = 0;
  uint64_t commands_ = 0;
  std::vector<const char*> ptrs_;
  std::vector<size_t> lens_;
  Status error_;
};

class Filler {
 public:
  Filler(redisContext* c, const DatasetOptions& options);
  Expected<DatasetStats> Run();

 private:
  using Kind = void (Filler::*)();
  std::vector<Kind> EveryEncodingKinds() const;
  std::vector<Kind> ApplicationKinds() const;
  // The kinds of options_.mix, whichever it is (dataset_shapes.cc).
  std::vector<Kind> ShapeKinds() const;

  bool Done() const;
  // A command that writes payload: its arguments after the command name count as bytes.
  void Write(const std::vector<std::string>& argv);
  // A command that only shapes the data (groups, reads, deletes): not counted as payload.
  void Send(const std::vector<std::string>& argv);
  // Names the next key of `kind` and counts it in the current database.
  std::string NewKey(const std::string& kind);
  // Counts `key`, a new key of `kind`, in the current database.
  void CountKey(const std::string& kind, const std::string& key);
  // Called after the key exists: EXPIREAT on a missing key would do nothing. MaybeExpire gives
  // an expiry to options_.expire_fraction of the keys, Expire to every one.
  void MaybeExpire(const std::string& key);
  void Expire(const std::string& key);
  // DEBUG QUICKLIST-PACKED-THRESHOLD; false when the server refuses DEBUG.
  bool SetPackedThreshold(uint64_t bytes);
  void LoadFunctions();
  // Explicit, increasing IDs keep the data set independent of the clock.
  std::vector<std::string> StreamIds(uint64_t count);
  void AddEntries(const std::string& key, const std::vector<std::string>& ids);

  // Mix::kEveryEncoding (dataset_kinds.cc).
  void StrInt();
  void StrShort();
  void StrLong();
  void StrBinary();
  void StrEmpty();
  void ListListpack();
  void ListQuicklist();
  void ListPlain();
  void SetIntset();
  void SetListpack();
  void SetHashtable();
  void ZsetListpack();
  void ZsetSkiplist();
  void HashListpack();
  void HashHashtable();
  void StreamGroups();
  void StreamPlain();
  void StreamEmpty();

  // Mix::kApplication (dataset_application.cc).
  void AppString();
  void AppCounter();
  void AppHash();
  void AppList();
  void AppIntegerSet();
  void AppSet();
  void AppSortedSet();
  void AppStreamEntry();
  // 4..40 elements, or one time in a thousand 600..1200 (hashtable, skiplist, quicklist nodes).
  uint64_t AppElements();

  // The benchmark shapes (dataset_shapes.cc).
  void SessionString();
  void JsonDocument();
  void SmallHash();
  void SmallSortedSet();
  void SmallList();
  // What goes before each element of a huge key (dataset_shapes.cc).
  enum class HugeElement { kPlain, kScored, kField };
  void HugeCollection(const std::string& kind, const char* command, uint64_t elements,
                      HugeElement before);
  void HugeHash();
  void HugeList();
  void HugeSortedSet();
  void HugeString();

  redisContext* c_;
  const DatasetOptions& options_;
  Rng rng_;
  Pipeline pipeline_;
  DatasetStats stats_;
  uint64_t db_ = 0;
  std::map<uint64_t, uint64_t> stream_entries_;  // kApplication: stream entries per database
};

}  // namespace finalsnap::localnode::detail

#endif  // FINALSNAP_LOCALNODE_FILLER_H_
