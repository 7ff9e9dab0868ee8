// A server's reply, copied out of hiredis, and the parsers of what servers say (INFO, CLUSTER
// NODES): the one copy the engine's node client and localnode's synchronous client (the demo's
// and the tests' servers) share. Pure code, no I/O.
#ifndef FINALSNAP_ENGINE_REPLY_H_
#define FINALSNAP_ENGINE_REPLY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"

struct redisReply;

namespace finalsnap::detail {

// An owned copy of a redisReply, so that it outlives it.
struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus and kError
  long long integer = 0;
  std::vector<Reply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  bool ok() const { return type == Type::kStatus && str == "OK"; }  // +OK
  // -NOPERM ...: the ACL user may not run the command (or touch its keys or channels).
  bool is_noperm() const { return type == Type::kError && str.rfind("NOPERM", 0) == 0; }
  // A readable form for messages: the string, the number, "[a, b]" or "(nil)".
  std::string ToString() const;
};

// Copies hiredis' reply (nullptr: a nil Reply). RESP2 only, as hiredis 0.14 speaks.
Reply ReplyFrom(const redisReply* r);

// INFO text -> field map ("redis_version" -> "7.0.15"); section headers and blank lines skipped.
std::map<std::string, std::string> ParseInfo(std::string_view text);
// The value of an INFO field made of fields, "keys=3,expires=1,avg_ttl=0" or
// "ip=127.0.0.1,port=6380,state=online,offset=42,lag=0", as name -> value.
std::map<std::string, std::string> ParseInfoFields(std::string_view text);
// "db0:keys=1,expires=0,avg_ttl=0" lines of an INFO map -> per-database counts.
std::map<uint64_t, rdb::DbCounts> ParseKeyspace(const std::map<std::string, std::string>& info);

// CLIENT LIST text -> one field map per client ("id", "addr", "name", "flags", ...).
std::vector<std::map<std::string, std::string>> ParseClientList(std::string_view text);

// One line of CLUSTER NODES (REDIS-FACTS §4).
struct ClusterNodeLine {
  std::string id;
  std::string host;
  uint16_t port = 0;
  std::set<std::string> flags;  // "myself", "master", "slave", "fail?", "fail", "handshake", ...
  std::string master_id;        // a replica's primary; empty for a primary
  bool link_connected = false;
  std::vector<std::pair<int, int>> slots;  // inclusive ranges, primaries only
  bool migrating = false;                  // a [slot->-id] or [slot-<-id] entry
};
// Parses the CLUSTER NODES text; an error names the first line it cannot read.
Expected<std::vector<ClusterNodeLine>> ParseClusterNodes(std::string_view text);

// One `slaveN:ip=…,port=…,state=…,offset=…,lag=…` line of a primary's INFO replication.
struct ReplicaLine {
  std::string ip;
  uint16_t port = 0;
  std::string state;  // "online", "wait_bgsave", "send_bulk"
  uint64_t offset = 0;
};
// Every slaveN line of an INFO map, in N order. Snapshot connections (port 0) are left out.
std::vector<ReplicaLine> ParseReplicaLines(const std::map<std::string, std::string>& info);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_REPLY_H_
