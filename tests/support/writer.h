// Writer: a client thread that keeps writing to a Redis node and records exactly which writes the
// node acknowledged, for tests that take a snapshot (or shut a node down) under load and then
// check that no acknowledged write was lost.
//
//   Writer writer(server, "w:");                       // SET w:0 0, SET w:1 1, ... until Stop()
//   ASSERT_TRUE(writer.WaitForAcks(200, milliseconds(10'000))) << writer.error();
//   ... the operation under test ...
//   writer.Stop();
//   RedisServer restored(...);                         // e.g. loads the snapshot's dump.rdb
//   restored.Start();
//   WriteCheck check = CheckWrites(restored, writer);
//   EXPECT_TRUE(check.all_acked_present()) << check.Describe();
//
// One writer per shard of a Redis Cluster: give each the shard's primary and a prefix that starts
// with a hash tag of that shard (ClusterFixture::hash_tag), so every key it writes belongs there
// and no MOVED has to be followed:
//
//   std::vector<std::unique_ptr<Writer>> writers;
//   for (size_t s = 0; s < cluster.shard_count(); ++s)
//     writers.push_back(std::make_unique<Writer>(cluster.primary(s), cluster.hash_tag(s) + "w:"));
//
// Writes are SET <prefix><i> <i>, i = 0, 1, 2, ..., one at a time on the writer's own connection,
// each sent only after the previous one was acknowledged. So the acknowledged writes are exactly
// <prefix>0 .. <prefix>(acked()-1), and at most one more (the write in flight when the writer
// stopped) may have reached the node without an acknowledgement. The writer ends by itself on the
// first failure: an error reply (e.g. -MOVED, -READONLY), a timeout, or the node going away; a
// write without a reply is not acknowledged.
#ifndef FINALSNAP_TESTS_SUPPORT_WRITER_H_
#define FINALSNAP_TESTS_SUPPORT_WRITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/redis_server.h"

namespace finalsnap::testing {

// A writer's connect and command timeout: longer than any CLIENT PAUSE a test holds, so a write
// held by a pause waits for it instead of failing.
inline constexpr std::chrono::milliseconds kWriterTimeout{15'000};

class Writer {
 public:
  // Writes to `server` on a new connection (authenticated like RedisServer::Connect).
  Writer(RedisServer& server, std::string prefix,
         std::chrono::milliseconds timeout = kWriterTimeout);
  // Writes to host:port on a new connection, sending AUTH `password` first when it is not empty
  // (for a proxy, or a node the test did not start).
  Writer(const std::string& host, int port, std::string prefix, const std::string& password = "",
         std::chrono::milliseconds timeout = kWriterTimeout);
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { Stop(); }

  // Waits until at least `n` writes are acknowledged; false if the writer ended first or the
  // deadline passed.
  bool WaitForAcks(uint64_t n, std::chrono::milliseconds deadline);
  // Stops after the write in flight; joins.
  void Stop();
  // Waits until the writer ended by itself (a write failed); false at the deadline.
  bool WaitFinished(std::chrono::milliseconds deadline);

  // Acknowledged writes so far: <prefix>0 .. <prefix>(acked()-1).
  uint64_t acked() const;
  // The longest time between two acknowledgements (or from the start to the first one).
  double max_gap_ms() const;
  // Why the writer ended by itself, or empty.
  std::string error() const;
  const std::string& prefix() const { return prefix_; }
  // The key and value of write i.
  std::string Key(uint64_t i) const { return prefix_ + std::to_string(i); }
  static std::string Value(uint64_t i) { return std::to_string(i); }
  // The keys of the acknowledged writes, in order.
  std::vector<std::string> AckedKeys() const;

 private:
  void Run();

  const std::string prefix_;
  RedisContextPtr context_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t acked_ = 0;
  double max_gap_ms_ = 0;
  bool finished_ = false;
  std::string error_;
  std::thread thread_;
};

// The indexes i of the keys <prefix>i in database 0 of `server` (other keys that start with the
// prefix are ignored).
std::set<uint64_t> WriterKeys(RedisServer& server, const std::string& prefix);

// A writer's writes, checked key by key against a server (typically one restored from a
// snapshot taken while the writer ran).
struct WriteCheck {
  std::string prefix;
  uint64_t acked = 0;
  // Writer keys on the server (WriterKeys).
  uint64_t present = 0;
  // Acknowledged writes absent from the server, and the first few of their keys.
  uint64_t missing = 0;
  std::vector<std::string> missing_keys;
  // Acknowledged writes present with another value than the writer's.
  uint64_t wrong_value = 0;
  std::vector<std::string> wrong_keys;
  // Present writes the writer never had acknowledged (the one in flight, at most, for a node
  // that stopped mid-write).
  uint64_t unacknowledged = 0;
  // The present writes are <prefix>0 .. <prefix>(present-1): a point-in-time image of the writer.
  bool prefix_closed = true;

  // Every acknowledged write is there with its value.
  bool all_acked_present() const { return missing == 0 && wrong_value == 0; }
  // One line for assertion messages.
  std::string Describe() const;
};

// Checks writes <prefix>0 .. <prefix>(acked-1) on `server` with pipelined GETs (one key per GET,
// so it works on a cluster node too), and counts the writer keys present beyond them.
WriteCheck CheckWrites(RedisServer& server, const std::string& prefix, uint64_t acked);
// The same for a writer's acknowledged writes; stop the writer first.
WriteCheck CheckWrites(RedisServer& server, const Writer& writer);

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_WRITER_H_
