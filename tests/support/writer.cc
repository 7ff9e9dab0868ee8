// Writer: one thread, one connection, one write in flight at a time, so that "acknowledged" is a
// prefix of the sequence and can be checked exactly afterwards.
#include "support/writer.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <utility>

namespace finalsnap::testing {
namespace {

using Clock = std::chrono::steady_clock;

// How many of the missing or wrong keys a WriteCheck names.
constexpr size_t kKeysNamed = 10;
// GETs per pipelined batch in CheckWrites.
constexpr uint64_t kCheckBatch = 1000;

RedisContextPtr ConnectWithAuth(const std::string& host, int port, const std::string& password,
                                std::chrono::milliseconds timeout) {
  RedisContextPtr c = ConnectTo(host, port, timeout);
  if (!password.empty()) {
    Reply r = Execute(c.get(), {"AUTH", password});
    if (!r.ok()) throw std::runtime_error("Writer: AUTH failed: " + r.ToString());
  }
  return c;
}

// `text` as a KEYS pattern that matches only itself (a hash tag's braces are not special, but a
// prefix may hold glob characters).
std::string GlobEscape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

}  // namespace

Writer::Writer(RedisServer& server, std::string prefix, std::chrono::milliseconds timeout)
    : prefix_(std::move(prefix)), context_(server.Connect(timeout)) {
  thread_ = std::thread([this] { Run(); });
}

Writer::Writer(const std::string& host, int port, std::string prefix, const std::string& password,
               std::chrono::milliseconds timeout)
    : prefix_(std::move(prefix)), context_(ConnectWithAuth(host, port, password, timeout)) {
  thread_ = std::thread([this] { Run(); });
}

bool Writer::WaitForAcks(uint64_t n, std::chrono::milliseconds deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, deadline, [&] { return acked_ >= n || finished_; }) && acked_ >= n;
}

void Writer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool Writer::WaitFinished(std::chrono::milliseconds deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, deadline, [&] { return finished_; });
}

uint64_t Writer::acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

double Writer::max_gap_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_gap_ms_;
}

std::string Writer::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

std::vector<std::string> Writer::AckedKeys() const {
  const uint64_t n = acked();
  std::vector<std::string> out;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) out.push_back(Key(i));
  return out;
}

void Writer::Run() {
  auto last = Clock::now();
  for (uint64_t i = 0; !stop_; ++i) {
    try {
      Reply r = Execute(context_.get(), {"SET", Key(i), Value(i)});
      if (!r.ok()) throw std::runtime_error("SET replied " + r.ToString());
    } catch (const std::runtime_error& e) {
      // No reply, or not +OK: write i is not acknowledged, and the connection (or the node's
      // role) is no longer one to write on.
      std::lock_guard<std::mutex> lock(mu_);
      error_ = e.what();
      break;
    }
    const auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    acked_ = i + 1;
    max_gap_ms_ =
        std::max(max_gap_ms_, std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  cv_.notify_all();
}

std::set<uint64_t> WriterKeys(RedisServer& server, const std::string& prefix) {
  Reply keys = server.Command("KEYS", GlobEscape(prefix) + "*");
  if (keys.type != Reply::Type::kArray) {
    throw std::runtime_error("KEYS " + prefix + "* replied " + keys.ToString());
  }
  std::set<uint64_t> out;
  for (const Reply& k : keys.elements) {
    const std::string_view suffix = std::string_view(k.str).substr(prefix.size());
    uint64_t i = 0;
    auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), i);
    if (ec == std::errc() && end == suffix.data() + suffix.size() && !suffix.empty()) out.insert(i);
  }
  return out;
}

std::string WriteCheck::Describe() const {
  auto list = [](const std::vector<std::string>& keys) {
    std::string out;
    for (const std::string& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
  };
  std::string out = "writes " + prefix + "*: " + std::to_string(acked) + " acknowledged, " +
                    std::to_string(present) + " present (" + std::to_string(unacknowledged) +
                    " never acknowledged), " + std::to_string(missing) + " missing";
  if (missing > 0)
    out += " (" + list(missing_keys) + (missing > missing_keys.size() ? ", ..." : "") + ")";
  out += ", " + std::to_string(wrong_value) + " with a wrong value";
  if (wrong_value > 0) {
    out += " (" + list(wrong_keys) + (wrong_value > wrong_keys.size() ? ", ..." : "") + ")";
  }
  out += prefix_closed ? ", prefix-closed" : ", not prefix-closed";
  return out;
}

WriteCheck CheckWrites(RedisServer& server, const std::string& prefix, uint64_t acked) {
  WriteCheck check;
  check.prefix = prefix;
  check.acked = acked;
  const std::set<uint64_t> present = WriterKeys(server, prefix);
  check.present = present.size();
  check.unacknowledged = static_cast<uint64_t>(
      std::count_if(present.begin(), present.end(), [&](uint64_t i) { return i >= acked; }));
  check.prefix_closed = present.empty() || *present.rbegin() == present.size() - 1;

  RedisContextPtr c = server.Connect();
  // A cluster replica redirects reads to its primary unless the connection is READONLY; on a
  // server without cluster mode READONLY is an error, which changes nothing.
  Execute(c.get(), {"READONLY"});
  for (uint64_t first = 0; first < acked; first += kCheckBatch) {
    const uint64_t end = std::min(acked, first + kCheckBatch);
    for (uint64_t i = first; i < end; ++i) {
      const std::string key = prefix + std::to_string(i);
      const char* argv[] = {"GET", key.data()};
      const size_t lens[] = {3, key.size()};
      if (redisAppendCommandArgv(c.get(), 2, argv, lens) != REDIS_OK) {
        throw std::runtime_error("CheckWrites: cannot queue GET: " + std::string(c->errstr));
      }
    }
    for (uint64_t i = first; i < end; ++i) {
      void* raw = nullptr;
      if (redisGetReply(c.get(), &raw) != REDIS_OK || raw == nullptr) {
        throw std::runtime_error("CheckWrites: GET failed: " + std::string(c->errstr));
      }
      auto* r = static_cast<redisReply*>(raw);
      const std::string key = prefix + std::to_string(i);
      if (r->type == REDIS_REPLY_ERROR) {
        // Not a lost write but a wrong server (e.g. -MOVED: another shard's keys).
        const std::string error(r->str, r->len);
        freeReplyObject(r);
        throw std::runtime_error("CheckWrites: GET " + key + " replied (error) " + error);
      }
      if (r->type == REDIS_REPLY_NIL) {
        if (++check.missing <= kKeysNamed) check.missing_keys.push_back(key);
      } else if (r->type != REDIS_REPLY_STRING ||
                 std::string_view(r->str, r->len) != Writer::Value(i)) {
        if (++check.wrong_value <= kKeysNamed) check.wrong_keys.push_back(key);
      }
      freeReplyObject(r);
    }
  }
  return check;
}

WriteCheck CheckWrites(RedisServer& server, const Writer& writer) {
  return CheckWrites(server, writer.prefix(), writer.acked());
}

}  // namespace finalsnap::testing
