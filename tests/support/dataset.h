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

#include "localnode/dataset.h"
#include "support/or_throw.h"

namespace finalsnap::testing {

using DatasetOptions = localnode::DatasetOptions;
using DatasetStats = localnode::DatasetStats;
using SampleKey = localnode::SampleKey;

// Fills the server behind `c` (a blocking hiredis context). Throws std::runtime_error, naming
// the command and key, for bad options, an error reply or a connection failure.
inline DatasetStats FillMixed(redisContext* c, const DatasetOptions& options) {
  return OrThrow(localnode::FillDataset(c, options));
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_DATASET_H_
