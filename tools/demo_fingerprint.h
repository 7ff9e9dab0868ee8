// The demo's notion of "the same data": a Fingerprint of a server taken before the final
// snapshot and again on the server restored from it. DEBUG DIGEST (every key, value and TTL of
// every database) when the server has DEBUG; otherwise a hash of the values of some keys read
// back, beside the key counts either way.
#ifndef FINALSNAP_TOOLS_DEMO_FINGERPRINT_H_
#define FINALSNAP_TOOLS_DEMO_FINGERPRINT_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "finalsnap/status.h"
#include "localnode/dataset.h"

namespace finalsnap::cli {

struct Fingerprint {
  std::string digest;                 // 40 hex digits (DEBUG DIGEST) or 16 (the sample hash)
  std::string method;                 // "DEBUG DIGEST" or "sample of N keys"
  std::map<uint64_t, uint64_t> keys;  // per database, from INFO keyspace
  uint64_t dbsize = 0;                // DBSIZE of db0
  uint64_t used_memory = 0;
  std::string version;  // redis_version
  double seconds = 0;   // taking the digest (or the sample)

  uint64_t TotalKeys() const;
  // "db0 1200, db1 1188", or "none".
  std::string KeysText() const;
};

// Fingerprints the server at 127.0.0.1:`port`; `sample` is what the fallback reads back.
// `timeout` bounds each command, DEBUG DIGEST included, which reads the whole data set.
Expected<Fingerprint> TakeFingerprint(int port, const std::vector<localnode::SampleKey>& sample,
                                      std::chrono::milliseconds timeout);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DEMO_FINGERPRINT_H_
