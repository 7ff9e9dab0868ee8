#include "node_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "hiredis_uv.h"

namespace finalsnap::detail {
namespace {

uint64_t ToU64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

// One command in flight. hiredis always calls back exactly once per command (with a reply, or
// with nullptr when the context goes away), so this object is freed there. `done` is cleared once
// the outcome was delivered (reply, timeout or abandonment), so late callbacks do nothing.
struct NodeClient::Pending {
  NodeClient* owner;
  std::function<void(CommandOutcome)> done;
  std::unique_ptr<Timer> timer;

  void Deliver(CommandOutcome outcome) {
    if (!done) return;
    auto fn = std::move(done);
    done = nullptr;
    if (timer) timer->Stop();
    fn(std::move(outcome));
  }
};

NodeClient::NodeClient(Loop& loop, NodeAddress address, NodeAuth auth, NodeTimeouts timeouts)
    : loop_(loop), address_(std::move(address)), auth_(std::move(auth)), timeouts_(timeouts) {}

NodeClient::~NodeClient() {
  // Nobody may be resumed from here on: the coroutines awaiting are being torn down too.
  for (Pending* p : pending_) {
    p->done = nullptr;
    p->owner = nullptr;
  }
  pending_.clear();
  connect_done_ = nullptr;
  lookup_.reset();
  Close();
}

void NodeClient::Close() {
  if (context_ == nullptr) return;
  redisAsyncContext* ac = context_;
  context_ = nullptr;
  connected_ = false;
  ac->data = nullptr;
  // Frees now, or right after the hiredis callback we may be inside of; pending commands get a
  // nullptr reply either way.
  redisAsyncFree(ac);
  FailAllPending("connection to " + address_.ToString() + " closed");
}

void NodeClient::FailAllPending(const std::string& why) {
  std::vector<Pending*> pending;
  pending.swap(pending_);
  for (Pending* p : pending) {
    p->owner = nullptr;
    CommandOutcome o;
    o.status = Status::Error(why);
    o.disconnected = true;
    p->Deliver(std::move(o));
  }
}

void NodeClient::StartConnect(std::function<void(Status)> done) {
  Close();
  connect_done_ = std::move(done);
  // One deadline for the name lookup and the connect together.
  connect_timer_ = std::make_unique<Timer>(loop_);
  connect_timer_->Start(timeouts_.connect, [this] {
    lookup_.reset();
    FailConnect("connect to " + address_.ToString() + " timed out after " +
                std::to_string(timeouts_.connect.count()) + " ms");
  });
  // hiredis resolves names with a blocking getaddrinfo: it is given the numeric address.
  lookup_ = ResolveAddress(loop_, address_.host, address_.port,
                           [this](Resolved r) { ConnectTo(std::move(r)); });
}

void NodeClient::FailConnect(const std::string& why) {
  if (!connect_done_) return;
  auto fn = std::move(connect_done_);
  connect_done_ = nullptr;
  if (connect_timer_) connect_timer_->Stop();
  Close();
  fn(Status::Error(why));
}

void NodeClient::ConnectTo(Resolved resolved) {
  if (!connect_done_) return;
  if (!resolved.error.empty()) {
    FailConnect("cannot connect to " + address_.ToString() + ": " + resolved.error);
    return;
  }
  redisAsyncContext* ac = redisAsyncConnect(resolved.Numeric().c_str(), address_.port);
  if (ac == nullptr) {
    FailConnect("cannot allocate a connection to " + address_.ToString());
    return;
  }
  if (ac->err) {
    const std::string why = ac->errstr;
    redisAsyncFree(ac);
    FailConnect("cannot connect to " + address_.ToString() + ": " + why);
    return;
  }
  ac->data = this;
  if (AttachToLoop(ac, loop_.get()) != REDIS_OK) {
    redisAsyncFree(ac);
    FailConnect("cannot attach the connection to the event loop");
    return;
  }
  context_ = ac;
  redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
    if (auto* self = static_cast<NodeClient*>(c->data)) self->OnConnected(status);
  });
  redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext* c, int status) {
    if (auto* self = static_cast<NodeClient*>(c->data)) self->OnDisconnected(status);
  });
}

void NodeClient::OnConnected(int status) {
  connect_timer_->Stop();
  if (!connect_done_) return;
  auto fn = std::move(connect_done_);
  connect_done_ = nullptr;
  if (status != REDIS_OK) {
    const std::string why = context_ ? context_->errstr : "connection failed";
    // hiredis frees a context whose connect failed once this callback returns.
    context_->data = nullptr;
    context_ = nullptr;
    fn(Status::Error("cannot connect to " + address_.ToString() + ": " + why));
    return;
  }
  connected_ = true;
  fn(Status::Ok());
}

void NodeClient::OnDisconnected(int status) {
  // hiredis frees the context after this callback.
  std::string why = "connection to " + address_.ToString() + " closed by the server";
  if (status != REDIS_OK && context_ != nullptr && context_->errstr[0] != '\0') {
    why = "connection to " + address_.ToString() + " lost: " + context_->errstr;
  }
  if (context_ != nullptr) context_->data = nullptr;
  context_ = nullptr;
  connected_ = false;
  FailAllPending(why);
}

void NodeClient::Send(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                      std::function<void(CommandOutcome)> done) {
  if (context_ == nullptr || !connected_) {
    CommandOutcome o;
    o.status = Status::Error("not connected to " + address_.ToString());
    done(std::move(o));
    return;
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* p = new Pending{this, std::move(done), nullptr};
  const int rc = redisAsyncCommandArgv(
      context_,
      [](redisAsyncContext*, void* r, void* privdata) {
        auto* pending = static_cast<Pending*>(privdata);
        if (pending->owner != nullptr) {
          auto& list = pending->owner->pending_;
          list.erase(std::remove(list.begin(), list.end(), pending), list.end());
          // hiredis answers pending commands with nullptr while it tears the connection down,
          // before its disconnect callback: a caller resumed from here must see it closed, or
          // its retry is spent on a connection that takes no more commands.
          if (r == nullptr) pending->owner->connected_ = false;
        }
        CommandOutcome o;
        if (r == nullptr) {
          o.status = Status::Error("connection closed before the reply");
          o.disconnected = true;
        } else {
          o.reply = ReplyFrom(static_cast<redisReply*>(r));
        }
        pending->Deliver(std::move(o));
        delete pending;
      },
      p, static_cast<int>(args.size()), args.data(), lens.data());
  if (rc != REDIS_OK) {
    // hiredis is tearing the connection down (we may be inside its disconnect callbacks): it
    // takes no more commands, so the next Connect() opens a new one.
    connected_ = false;
    CommandOutcome o;
    o.status = Status::Error("cannot send " + argv[0] + " to " + address_.ToString());
    auto fn = std::move(p->done);
    delete p;
    fn(std::move(o));
    return;
  }
  pending_.push_back(p);
  p->timer = std::make_unique<Timer>(loop_);
  const std::string name = argv[0];
  p->timer->Start(timeout, [this, p, name, timeout] {
    // Take the delivery out of `p` first: closing frees it (hiredis answers it with nullptr).
    auto fn = std::move(p->done);
    p->done = nullptr;
    pending_.erase(std::remove(pending_.begin(), pending_.end(), p), pending_.end());
    p->owner = nullptr;
    // The reply may still come, so the connection can no longer be used for anything else.
    Close();
    CommandOutcome o;
    o.status = Status::Error(name + " on " + address_.ToString() + " timed out after " +
                             std::to_string(timeout.count()) + " ms");
    fn(std::move(o));  // may destroy this client: nothing after it
  });
}

struct NodeClient::ConnectAwaiter {
  NodeClient& client;
  Status result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    client.StartConnect([this, h](Status s) {
      result = std::move(s);
      h.resume();
    });
  }
  Status await_resume() { return std::move(result); }
};

struct NodeClient::CommandAwaiter {
  NodeClient& client;
  std::vector<std::string> argv;
  std::chrono::milliseconds timeout;
  CommandOutcome result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    client.Send(std::move(argv), timeout, [this, h](CommandOutcome o) {
      result = std::move(o);
      h.resume();
    });
  }
  CommandOutcome await_resume() { return std::move(result); }
};

Task<Status> NodeClient::Connect() { co_return co_await Connect(timeouts_.command); }

Task<Status> NodeClient::Connect(std::chrono::milliseconds command_timeout) {
  // Named awaiters throughout: GCC 12 mishandles temporaries with non-trivial members inside a
  // co_await expression (it frees them twice).
  ConnectAwaiter connect{*this, {}};
  Status s = co_await connect;
  if (!s.ok()) co_return s;
  if (auth_.password) {
    std::vector<std::string> argv;
    argv.emplace_back("AUTH");
    if (!auth_.username.empty()) argv.push_back(auth_.username);
    argv.push_back(*auth_.password);
    CommandOutcome r = co_await Command(std::move(argv), command_timeout);
    if (!r.ok()) {
      Close();
      // The reply names the fault (WRONGPASS ...); the password itself never appears.
      co_return Status::Error("AUTH on " + address_.ToString() + " failed: " + r.Error());
    }
  }
  if (!name_.empty()) {
    // A re-opened connection carries the name the first one was given (see set_name).
    CommandOutcome named = co_await Command(Argv("CLIENT", "SETNAME", name_), command_timeout);
    // A server that refuses the name still serves the connection; one that timed out closed it.
    if (!connected()) {
      co_return Status::Error("CLIENT SETNAME on " + address_.ToString() +
                              " failed: " + named.Error());
    }
  }
  co_return Status::Ok();
}

Task<CommandOutcome> NodeClient::Command(std::vector<std::string> argv) {
  CommandAwaiter awaiter{*this, std::move(argv), timeouts_.command, {}};
  CommandOutcome outcome = co_await awaiter;
  co_return outcome;
}

Task<CommandOutcome> NodeClient::Command(std::vector<std::string> argv,
                                         std::chrono::milliseconds timeout) {
  CommandAwaiter awaiter{*this, std::move(argv), timeout, {}};
  CommandOutcome outcome = co_await awaiter;
  co_return outcome;
}

std::string CommandName(const std::vector<std::string>& argv) {
  if (argv.empty()) return std::string();
  std::string name = argv[0];
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (argv.size() < 2 || name == "AUTH") return name;
  if (name == "INFO") return name + " " + argv[1];
  if (name == "CLIENT" || name == "CONFIG" || name == "CLUSTER" || name == "SENTINEL" ||
      name == "ACL") {
    std::string sub = argv[1];
    for (char& c : sub) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name + " " + sub;
  }
  return name;
}

std::string NoPermText(std::string_view user, const std::vector<std::string>& argv,
                       const std::string& node, std::string_view server_says) {
  return "NOPERM: user '" + std::string(user.empty() ? "default" : user) + "' may not run " +
         CommandName(argv) + " on " + node + " (" + std::string(server_says) + ")";
}

ServerFacts ParseServerFacts(const std::map<std::string, std::string>& info) {
  ServerFacts f;
  auto get = [&](const char* k) -> std::string {
    auto it = info.find(k);
    return it == info.end() ? std::string() : it->second;
  };
  if (!get("valkey_version").empty()) {
    f.engine = "valkey";
    f.version = get("valkey_version");
  } else {
    f.version = get("redis_version");
  }
  std::sscanf(f.version.c_str(), "%d.%d.%d", &f.major, &f.minor, &f.patch);
  f.role = get("role");
  f.connected_replicas = static_cast<int>(ToU64(get("connected_slaves")));
  f.cluster_enabled = get("cluster_enabled") == "1";
  f.used_memory = ToU64(get("used_memory"));
  f.master_repl_offset = ToU64(get("master_repl_offset"));
  f.rdb_bgsave_in_progress = get("rdb_bgsave_in_progress") == "1";
  f.loading = get("loading") == "1";
  return f;
}

std::optional<RoleInfo> ParseRole(const Reply& r) {
  if (r.type != Reply::Type::kArray || r.elements.empty()) return std::nullopt;
  const auto& e = r.elements;
  auto integer = [](const Reply& x) -> std::optional<int64_t> {
    if (x.type == Reply::Type::kInteger) return x.integer;
    if (x.type == Reply::Type::kString) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(x.str.data(), x.str.data() + x.str.size(), v);
      if (ec == std::errc() && p == x.str.data() + x.str.size()) return v;
    }
    return std::nullopt;
  };
  RoleInfo info;
  info.role = e[0].str;
  if (info.role == "master") {
    // ["master", offset, [[ip, "port", "offset"], ...]]
    if (e.size() != 3 || !integer(e[1]) || e[2].type != Reply::Type::kArray) return std::nullopt;
    info.offset = *integer(e[1]);
    for (const Reply& rep : e[2].elements) {
      if (rep.type != Reply::Type::kArray || rep.elements.size() < 3) return std::nullopt;
      const auto port = integer(rep.elements[1]);
      const auto off = integer(rep.elements[2]);
      if (!port || !off) return std::nullopt;
      info.replicas.push_back({rep.elements[0].str, static_cast<uint16_t>(*port),
                               static_cast<uint64_t>(*off)});
    }
    return info;
  }
  if (info.role == "slave") {
    // ["slave", host, port, state, offset]
    if (e.size() != 5 || !integer(e[2]) || !integer(e[4])) return std::nullopt;
    info.master_host = e[1].str;
    info.master_port = static_cast<uint16_t>(*integer(e[2]));
    info.link_state = e[3].str;
    info.offset = *integer(e[4]);
    return info;
  }
  if (info.role == "sentinel") return info;
  return std::nullopt;
}

bool NothingListening(const Status& connect_failure) {
  return !connect_failure.ok() && connect_failure.message().find("refused") != std::string::npos;
}

}  // namespace finalsnap::detail
