// FillMixed for tests and benchmarks: localnode's data-set filler (localnode/dataset.h says what
// it writes), throwing on failure.
//
//   RedisContextPtr c = server.Connect();
//   DatasetOptions options;
//   options.key_count = 3000;
//   DatasetStats stats = FillMixed(c.get(), options);
//   EXPECT_EQ(server.Keyspace(), stats.databases);
#ifndef FINALSNAP_TESTS_SUPPORT_DATASET_H_
#define FINALSNAP_TESTS_SUPPORT_DATASET_H_

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "localnode/dataset.h"
#include "support/or_throw.h"
#include "support/redis_server.h"

namespace finalsnap::testing {

using DatasetOptions = localnode::DatasetOptions;
using DatasetStats = localnode::DatasetStats;
using SampleKey = localnode::SampleKey;

// Fills the server behind `c` (a blocking hiredis context). Throws std::runtime_error, naming
// the command and key, for bad options, an error reply or a connection failure.
inline DatasetStats FillMixed(redisContext* c, const DatasetOptions& options) {
  return OrThrow(localnode::FillDataset(c, options));
}

// Sets `key` to `size` random bytes (seeded by the size): a value no compressor shrinks, so the
// stored snapshot is about as large as the RDB.
inline void SetRandomValue(RedisServer& server, const std::string& key, size_t size) {
  std::mt19937_64 rng(size);
  std::string value(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = rng();
    std::memcpy(value.data() + i, &word, std::min<size_t>(8, size - i));
  }
  Reply r = server.Command("SET", key, value);
  if (!r.ok()) throw std::runtime_error("SET " + key + ": " + r.ToString());
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_DATASET_H_
