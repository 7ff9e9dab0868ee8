// NodeClient: the command connection to one Redis/Valkey node, on hiredis's async API and its
// libuv adapter, with connect and per-command timeouts of its own (hiredis 0.14 has none).
//
//   NodeClient node(loop, endpoint, auth, timeouts);
//   Status s = co_await node.Connect();                 // TCP connect + AUTH
//   CommandOutcome r = co_await node.Command({"INFO", "keyspace"});
//
// A transport failure (refused, reset, timed out) is a failed Status in the outcome; a Redis error
// reply (-ERR ...) is a successful transport with reply.type == kError. A command that times out
// closes the connection: hiredis cannot cancel one command, and replies would no longer line up.
//
// Also here: the parsers for INFO and ROLE, and the server facts the engine decides on.
#ifndef FINALSNAP_ENGINE_NODE_CLIENT_H_
#define FINALSNAP_ENGINE_NODE_CLIENT_H_

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "async.h"
#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"
#include "loop.h"
#include "reply.h"
#include "resolve.h"

struct redisAsyncContext;

namespace finalsnap::detail {

struct NodeAddress {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

struct NodeAuth {
  std::string username;                // empty: the default user
  std::optional<std::string> password;  // none: no AUTH
};

struct NodeTimeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds command{10000};
};

// Builds a command's argv. Coroutine bodies use this rather than braced lists: GCC 12 cannot
// keep an initializer_list's backing array in a coroutine frame ("array used as initializer").
template <typename... Args>
std::vector<std::string> Argv(Args&&... args) {
  std::vector<std::string> v;
  v.reserve(sizeof...(args));
  (v.emplace_back(std::forward<Args>(args)), ...);
  return v;
}

struct CommandOutcome {
  Status status;  // transport: connected, sent, answered in time
  Reply reply;
  // The connection ended with the command in flight and no reply: for SHUTDOWN, success.
  bool disconnected = false;
  bool ok() const { return status.ok() && !reply.is_error(); }
  // The server answered -NOPERM: the ACL user may not run this command.
  bool denied() const { return status.ok() && reply.is_noperm(); }
  // The transport error or the error reply, for messages.
  std::string Error() const { return status.ok() ? reply.str : status.message(); }
};

// A command as messages name it: "ROLE", "CLUSTER NODES", "CONFIG SET", "INFO replication"
// (the subcommand of a container command, INFO's section; AUTH's arguments never).
std::string CommandName(const std::vector<std::string>& argv);

// What every NOPERM says, wherever it is met: the user, the command, the node and the server's
// own words. "NOPERM: user 'snap' may not run ROLE on 127.0.0.1:7000 (NOPERM this user has no
// permissions to run the 'role' command)". An empty user is Redis's "default".
std::string NoPermText(std::string_view user, const std::vector<std::string>& argv,
                       const std::string& node, std::string_view server_says);

// True when a Connect() failed because nothing listens at the address: the server is not
// running, and the runtime settings it had died with it (a restarted server reads its
// configuration file), so there is nothing left to put back there.
bool NothingListening(const Status& connect_failure);

class NodeClient {
 public:
  NodeClient(Loop& loop, NodeAddress address, NodeAuth auth, NodeTimeouts timeouts);
  ~NodeClient();
  NodeClient(const NodeClient&) = delete;
  NodeClient& operator=(const NodeClient&) = delete;

  Task<Status> Connect();
  // The same, waiting up to `command_timeout` for AUTH and CLIENT SETNAME (a busy node).
  Task<Status> Connect(std::chrono::milliseconds command_timeout);
  Task<CommandOutcome> Command(std::vector<std::string> argv);
  Task<CommandOutcome> Command(std::vector<std::string> argv, std::chrono::milliseconds timeout);
  // Sends a command without suspending: `done` runs with the outcome (for a timer's renewals).
  void Send(std::vector<std::string> argv, std::chrono::milliseconds timeout,
            std::function<void(CommandOutcome)> done);
  // Drops the connection now; commands in flight complete with a transport error.
  void Close();
  // The client name (CLIENT SETNAME) this connection carries: set on the server by the caller,
  // and sent again after AUTH whenever the connection is re-opened, so that a claim made with
  // it (ops/claim.cc) survives a reconnect. Best effort on reconnect: a refusal is ignored.
  void set_name(std::string name) { name_ = std::move(name); }
  const std::string& name() const { return name_; }

  bool connected() const { return context_ != nullptr && connected_; }
  const NodeAddress& address() const { return address_; }
  const NodeAuth& auth() const { return auth_; }
  const NodeTimeouts& timeouts() const { return timeouts_; }

 private:
  struct Pending;
  struct ConnectAwaiter;
  struct CommandAwaiter;
  void StartConnect(std::function<void(Status)> done);
  void ConnectTo(Resolved resolved);
  void FailConnect(const std::string& why);  // ends a connect under way with this error
  void OnConnected(int status);
  void OnDisconnected(int status);
  void FailAllPending(const std::string& why);

  Loop& loop_;
  NodeAddress address_;
  NodeAuth auth_;
  NodeTimeouts timeouts_;
  std::string name_;
  redisAsyncContext* context_ = nullptr;
  bool connected_ = false;
  std::string last_error_;
  std::function<void(Status)> connect_done_;
  std::unique_ptr<Timer> connect_timer_;
  std::unique_ptr<PendingLookup> lookup_;  // the name lookup of a connect under way
  std::vector<Pending*> pending_;
};

// What the engine needs to know about a server, from INFO.
struct ServerFacts {
  std::string engine = "redis";  // "redis" or "valkey"
  std::string version;           // "7.0.15"
  int major = 0, minor = 0, patch = 0;
  std::string role;              // "master" or "slave"
  int connected_replicas = 0;
  bool cluster_enabled = false;
  uint64_t used_memory = 0;
  uint64_t master_repl_offset = 0;
  bool rdb_bgsave_in_progress = false;
  bool loading = false;
  bool AtLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
};
ServerFacts ParseServerFacts(const std::map<std::string, std::string>& info);

// The ROLE reply (REDIS-FACTS §2): a primary lists its online replicas with their acked offsets;
// a replica names its primary, its link state and its applied offset (-1 with no link).
struct RoleInfo {
  struct Replica {
    std::string host;
    uint16_t port = 0;
    uint64_t offset = 0;
  };
  std::string role;  // "master", "slave" (or "sentinel")
  int64_t offset = 0;
  std::vector<Replica> replicas;  // primary only
  std::string master_host;        // replica only
  uint16_t master_port = 0;
  std::string link_state;         // replica only: "connected", "connect", "sync", ...
};
// Parses a ROLE reply; nullopt when it has neither shape.
std::optional<RoleInfo> ParseRole(const Reply& reply);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_NODE_CLIENT_H_
