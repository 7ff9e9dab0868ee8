// What the integration tests print and check around an engine operation (finalsnap/engine.h):
// the result as text for a failure message, and the state a refusal must leave every node in.
//
//   const NodeState before = NodeStateOf(node);
//   const OperationResult r = CreateSnapshot(fleet, "c1", "s");
//   ASSERT_FALSE(r.ok) << Describe(r);
//   ExpectRunning(node);
//   ExpectWritable(node);
//   EXPECT_EQ(NodeStateOf(node), before);
#ifndef FINALSNAP_TESTS_SUPPORT_OPERATION_CHECKS_H_
#define FINALSNAP_TESTS_SUPPORT_OPERATION_CHECKS_H_

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "finalsnap/engine.h"
#include "support/redis_server.h"

namespace finalsnap::testing {

// The result, its gates (with their evidence) and its notes, one per line.
inline std::string Describe(const OperationResult& r) {
  std::string s = "ok=" + std::to_string(r.ok) + " fault=" + r.fault + " gate=" + r.failed_gate +
                  "\nmessage: " + r.message + "\n";
  for (const GateVerdict& g : r.gates) {
    s += "  " + g.gate + " [" + g.phase + "] " + (g.passed ? "pass" : "FAIL") + " " + g.node +
         ": " + g.evidence + "\n";
  }
  for (const std::string& n : r.notes) s += "  note: " + n + "\n";
  return s;
}

// What a refused operation must leave as it was: the data and the settings a capture changes.
struct NodeState {
  std::string digest;
  std::map<std::string, std::string> config;
  bool operator==(const NodeState&) const = default;
};

inline NodeState NodeStateOf(RedisServer& s) {
  NodeState b;
  b.digest = s.Command("DEBUG", "DIGEST").str;
  for (const char* name : {"repl-diskless-sync-delay", "rdbcompression"}) {
    Reply r = s.Command("CONFIG", "GET", name);
    if (r.elements.size() == 2) b.config[name] = r.elements[1].str;
  }
  return b;
}

inline void PrintTo(const NodeState& s, std::ostream* os) {
  *os << "digest " << s.digest;
  for (const auto& [k, v] : s.config) *os << ", " << k << " " << v;
}

// A primary takes a write within a second: any pause was lifted. (A Cluster node that does not
// own the probe's slot answers MOVED, which it would not do while paused either.)
inline void ExpectWritable(RedisServer& s) {
  RedisContextPtr c = s.Connect(std::chrono::milliseconds(1000));
  const Reply r = Execute(c.get(), {"SET", "probe:{x}", "1"});
  EXPECT_TRUE(r.ok() || r.str.rfind("MOVED", 0) == 0)
      << "port " << s.port() << " does not take a write within 1 s: " << r.ToString();
  Execute(c.get(), {"DEL", "probe:{x}"});
}

inline void ExpectRunning(RedisServer& s) {
  ASSERT_TRUE(s.Running()) << "port " << s.port() << " was shut down\n" << s.LogTail();
  RedisContextPtr c = s.Connect(std::chrono::milliseconds(1000));
  EXPECT_EQ(Execute(c.get(), {"PING"}).str, "PONG");
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_OPERATION_CHECKS_H_
