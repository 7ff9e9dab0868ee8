// A small synchronous hiredis client for the servers localnode starts: connect under a deadline,
// send one binary-safe command and get its reply copied out of hiredis, and read INFO.
//
//   Expected<Context> c = Connect("127.0.0.1", port, std::chrono::seconds(1));
//   Expected<Reply> r = Command(c->get(), {"SET", "k", "v"});   // r->ok() for +OK
//   std::map<uint64_t, rdb::DbCounts> keys = ParseKeyspace(ParseInfo(info_text));
//
// A server's error reply is a Reply (Type::kError), not an error Status: an error means the
// connection failed or timed out, after which hiredis' context is unusable.
#ifndef FINALSNAP_LOCALNODE_CLIENT_H_
#define FINALSNAP_LOCALNODE_CLIENT_H_

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"
#include "reply.h"

namespace finalsnap::localnode {

// The default deadline for waits on a server: start-up, shutdown, a command's reply.
inline constexpr std::chrono::milliseconds kDefaultDeadline{10'000};

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

// A reply, copied out of hiredis' redisReply so it outlives it, and the INFO parsers: the
// engine's (engine/node/reply.h), one copy for both clients.
using detail::ParseInfo;
using detail::ParseInfoFields;
using detail::ParseKeyspace;
using detail::Reply;

// Connects to host:port (TCP) or, if `host` starts with '/', to that unix socket. Commands on
// the context time out after `timeout` too, so a hung server fails a call instead of hanging it.
Expected<Context> Connect(const std::string& host, int port,
                          std::chrono::milliseconds timeout = kDefaultDeadline);

// Sends one command (binary-safe) and returns its reply; an error Status when the connection
// failed.
Expected<Reply> Command(redisContext* c, const std::vector<std::string>& argv);

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_CLIENT_H_
