// RedisServer: localnode's LocalServer with the tests' binary defaults and install hints, a
// connection of its own for Command(), and exceptions instead of error values.
#include "support/redis_server.h"

#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "localnode/files.h"
#include "support/or_throw.h"

namespace finalsnap::testing {
namespace {

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

// The tests' defaults: Debian's binaries unless the environment names others, and
// FINALSNAP_KEEP_TMP to keep every server's directory.
RedisServerOptions WithTestDefaults(RedisServerOptions options) {
  const bool sentinel = options.mode == RedisServerOptions::Mode::kSentinel;
  if (options.binary.empty()) {
    const char* env = std::getenv(sentinel ? "FINALSNAP_REDIS_SENTINEL" : "FINALSNAP_REDIS_SERVER");
    options.binary = env != nullptr && *env != '\0'
                         ? env
                         : (sentinel ? "/usr/bin/redis-sentinel" : "/usr/bin/redis-server");
  }
  options.keep_dir = options.keep_dir || EnvFlag("FINALSNAP_KEEP_TMP");
  return options;
}

}  // namespace

RedisContextPtr ConnectTo(const std::string& host, int port, std::chrono::milliseconds timeout) {
  return OrThrow(localnode::Connect(host, port, timeout));
}

Reply Execute(redisContext* c, const std::vector<std::string>& argv) {
  return OrThrow(localnode::Command(c, argv));
}

RedisServer::RedisServer(RedisServerOptions options)
    : server_(WithTestDefaults(std::move(options))) {}

RedisServer::RedisServer(std::vector<std::pair<std::string, std::string>> config)
    : RedisServer([&config] {
        RedisServerOptions options;
        options.config = std::move(config);
        return options;
      }()) {}

RedisServer::RedisServer(std::initializer_list<std::pair<std::string, std::string>> config)
    : RedisServer(std::vector<std::pair<std::string, std::string>>(config)) {}

void RedisServer::Start() {
  if (server_.Running()) throw std::logic_error("RedisServer::Start: already running");
  const std::string& binary = server_.options().binary;
  if (!localnode::FindProgram(binary)) {
    if (is_sentinel()) {
      throw std::runtime_error(
          "redis-sentinel binary '" + binary +
          "' is missing or not executable. These tests need a real Redis Sentinel: install it "
          "with `apt-get install redis-sentinel`, or point FINALSNAP_REDIS_SENTINEL at one.");
    }
    throw std::runtime_error(
        "redis-server binary '" + binary +
        "' is missing or not executable. These tests need a real Redis server: install it with "
        "`apt-get install redis-server redis-tools`, or point FINALSNAP_REDIS_SERVER at one.");
  }
  connection_.reset();
  OrThrow(server_.Start());
}

void RedisServer::Stop(std::chrono::milliseconds deadline) {
  connection_.reset();
  server_.Stop(deadline);
}

RedisContextPtr RedisServer::Connect(std::chrono::milliseconds timeout) const {
  return OrThrow(server_.Connect(timeout));
}

Reply RedisServer::CommandArgv(const std::vector<std::string>& argv) {
  if (!connection_) connection_ = Connect();
  Expected<Reply> reply = localnode::Command(connection_.get(), argv);
  // A hiredis context is unusable after an I/O error; the next command reconnects.
  if (!reply.ok()) connection_.reset();
  return OrThrow(std::move(reply));
}

std::map<std::string, std::string> RedisServer::Info(const std::string& section) {
  Reply r = section.empty() ? Command("INFO") : Command("INFO", section);
  if (r.type != Reply::Type::kString) {
    throw std::runtime_error("INFO " + section + " failed: " + r.ToString());
  }
  return ParseInfo(r.str);
}

std::map<uint64_t, rdb::DbCounts> RedisServer::Keyspace() {
  return ParseKeyspace(Info("keyspace"));
}

std::string RedisServer::Version() {
  auto info = Info("server");
  auto it = info.find("redis_version");
  if (it == info.end()) throw std::runtime_error("INFO server has no redis_version");
  return it->second;
}

std::string RedisServer::Save() {
  Reply r = Command("SAVE");
  if (!r.ok()) throw std::runtime_error("SAVE failed: " + r.ToString() + "\n" + LogTail());
  Reply name = Command("CONFIG", "GET", "dbfilename");
  if (name.type != Reply::Type::kArray || name.elements.size() != 2) {
    throw std::runtime_error("CONFIG GET dbfilename failed: " + name.ToString());
  }
  return dir() + "/" + name.elements[1].str;
}

}  // namespace finalsnap::testing
