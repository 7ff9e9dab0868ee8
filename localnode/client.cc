// The synchronous client: hiredis' blocking API with a timeout on connect and on every reply.
#include "localnode/client.h"

#include <sys/time.h>

#include <charconv>

namespace finalsnap::localnode {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

Expected<Context> Connect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  const timeval tv = ToTimeval(timeout);
  Context c(!host.empty() && host[0] == '/' ? redisConnectUnixWithTimeout(host.c_str(), tv)
                                            : redisConnectWithTimeout(host.c_str(), port, tv));
  if (c == nullptr) return Status::Error("cannot allocate a hiredis context");
  if (c->err != 0) {
    return Status::Error("cannot connect to redis at " + host + ":" + std::to_string(port) + ": " +
                         c->errstr);
  }
  // Without a socket timeout a hung server would hang the caller instead of failing the call.
  if (redisSetTimeout(c.get(), tv) != REDIS_OK) {
    return Status::Error("cannot set the hiredis timeout: " + std::string(c->errstr));
  }
  return c;
}

Expected<Reply> Command(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (r == nullptr) {
    return Status::Error("redis command '" + (argv.empty() ? std::string() : argv[0]) +
                         "' failed: " + c->errstr);
  }
  Reply out = detail::ReplyFrom(r);
  freeReplyObject(r);
  return out;
}

}  // namespace finalsnap::localnode
