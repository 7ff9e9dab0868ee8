// pause_breakdown: what create-snapshot's write stall is made of, step by step, on a live node.
//
//   pause_breakdown --port P [--host 127.0.0.1] [--rounds 3] [--variants today,prepared,pipelined]
//
// A writer thread does SET in a loop on its own connection (each SET waits for its reply) and
// records every gap between two acknowledgements. Meanwhile the engine's own parts (NodeClient,
// ReplicationCapture) run the quiesce-and-fork sequence of create-snapshot, timestamping each step
// on the same clock:
//
//   today      CLIENT PAUSE WRITE -> INFO keyspace -> connect, AUTH, REPLCONF capa eof,
//              REPLCONF rdb-only 1 -> PSYNC ? -1 -> +FULLRESYNC -> CLIENT UNPAUSE
//   prepared   connect, AUTH, REPLCONF before the pause (ReplicationCapture::Prepare), then
//              CLIENT PAUSE WRITE -> INFO keyspace -> PSYNC -> +FULLRESYNC -> CLIENT UNPAUSE
//   pipelined  as prepared, but INFO keyspace is sent right behind CLIENT PAUSE without waiting
//              for its reply, and PSYNC goes out as soon as the pause's +OK is in
//
// The capture is cancelled once UNPAUSE is acknowledged (the transfer is not what is measured),
// and the next round waits until the server's child has exited. Per round it prints the stall
// the writer saw across the pause (its longest gap overlapping the pause window), the server's
// latest_fork_usec, and the time of each step after CLIENT PAUSE was sent; then one JSON line
// per variant with the medians.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "async.h"
#include "loop.h"
#include "node_client.h"
#include "pipeline.h"
#include "repl_stream.h"

namespace {

using namespace finalsnap::detail;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point t, Clock::time_point base) {
  return std::chrono::duration<double, std::milli>(t - base).count();
}

struct Gap {
  Clock::time_point from, to;
};

// SET in a loop; records gaps over 1 ms.
class Writer {
 public:
  Writer(const std::string& host, int port) {
    thread_ = std::thread([this, host, port] { Main(host, port); });
  }
  ~Writer() {
    stop_ = true;
    thread_.join();
  }
  // The longest gap that overlaps [from, to].
  double LongestOverlapping(Clock::time_point from, Clock::time_point to) {
    std::lock_guard lock(mutex_);
    double longest = 0;
    for (const Gap& g : gaps_) {
      if (g.to < from || g.from > to) continue;
      longest = std::max(longest, std::chrono::duration<double, std::milli>(g.to - g.from).count());
    }
    return longest;
  }

 private:
  void Main(const std::string& host, int port) {
    redisContext* c = redisConnect(host.c_str(), port);
    if (c == nullptr || c->err) {
      std::fprintf(stderr, "writer: cannot connect\n");
      std::exit(1);
    }
    auto last = Clock::now();
    for (uint64_t n = 0; !stop_; ++n) {
      auto* r = static_cast<redisReply*>(
          redisCommand(c, "SET pause_breakdown:%llu x", static_cast<unsigned long long>(n % 1000)));
      if (r == nullptr) break;
      freeReplyObject(r);
      const auto now = Clock::now();
      if (now - last > std::chrono::milliseconds(1)) {
        std::lock_guard lock(mutex_);
        gaps_.push_back({last, now});
      }
      last = now;
    }
    redisFree(c);
  }

  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Gap> gaps_;
  std::thread thread_;
};

// A one-shot event a coroutine can wait for.
struct Event {
  bool set = false;
  std::coroutine_handle<> waiter;
  void Set() {
    set = true;
    if (waiter) std::exchange(waiter, nullptr).resume();
  }
  bool await_ready() const noexcept { return set; }
  void await_suspend(std::coroutine_handle<> h) { waiter = h; }
  void await_resume() const noexcept {}
};

struct Trial {
  std::string variant;
  double stall_ms = 0;
  double fork_ms = 0;
  // After CLIENT PAUSE was sent:
  double pause_ok = 0, info_ok = 0, psync_sent = 0, fullresync = 0, unpause_ok = 0;
  double handshake_ms = 0;  // connect + AUTH + REPLCONF (inside the pause for "today")
  std::string error;
};

// GCC 12 cannot take a braced list of string literals inside a coroutine: build argv here.
template <typename... Args>
std::vector<std::string> Argv(Args&&... args) {
  return {std::string(std::forward<Args>(args))...};
}

std::string Field(const std::string& info, const std::string& key) {
  const auto p = info.find(key + ":");
  if (p == std::string::npos) return "";
  const auto e = info.find("\r\n", p);
  return info.substr(p + key.size() + 1, e - p - key.size() - 1);
}

Task<Trial> RunTrial(Loop& loop, NodeClient& node, const CaptureOptions& copts,
                     const std::string& variant, Writer& writer, int devnull) {
  Trial t;
  t.variant = variant;
  BufferPool pool(16, 256 * 1024);
  Pipeline pipeline(loop, pool, {finalsnap::Compression::kNone, 0}, devnull);
  ReplicationCapture capture(loop, pool, pipeline, copts);
  const bool prepare = variant != "today";
  const bool pipelined = variant == "pipelined";
  if (prepare) {
    CaptureResult p = co_await capture.Prepare();
    if (!p.status.ok()) {
      t.error = "prepare: " + p.status.message();
      co_return t;
    }
    t.handshake_ms = p.seconds_handshake * 1000;
  }

  Clock::time_point base = Clock::now();
  Clock::time_point unpaused;
  Event unpause_done;
  capture.OnForked([&] {
    t.fullresync = Ms(Clock::now(), base);
    node.Send(Argv("CLIENT", "UNPAUSE"), std::chrono::milliseconds(5000), [&](CommandOutcome o) {
      unpaused = Clock::now();
      t.unpause_ok = Ms(unpaused, base);
      if (!o.ok()) t.error = "UNPAUSE: " + o.Error();
      capture.Cancel("measured");
      unpause_done.Set();
    });
  });

  const std::vector<std::string> pause = Argv("CLIENT", "PAUSE", "10000", "WRITE");
  if (pipelined) {
    Event pause_ok, info_ok;
    node.Send(pause, std::chrono::milliseconds(5000), [&](CommandOutcome o) {
      t.pause_ok = Ms(Clock::now(), base);
      if (!o.ok()) t.error = "PAUSE: " + o.Error();
      pause_ok.Set();
    });
    node.Send(Argv("INFO", "keyspace"), std::chrono::milliseconds(5000), [&](CommandOutcome) {
      t.info_ok = Ms(Clock::now(), base);
      info_ok.Set();
    });
    co_await pause_ok;
    t.psync_sent = Ms(Clock::now(), base);
    CaptureResult r = co_await capture.Run();
    (void)r;
    co_await info_ok;
  } else {
    CommandOutcome p = co_await node.Command(pause);
    t.pause_ok = Ms(Clock::now(), base);
    if (!p.ok()) t.error = "PAUSE: " + p.Error();
    (void)co_await node.Command(Argv("INFO", "keyspace"));
    t.info_ok = Ms(Clock::now(), base);
    t.psync_sent = t.info_ok;  // Run() sends PSYNC at once when prepared, else after the handshake
    CaptureResult r = co_await capture.Run();
    if (!prepare) {
      t.handshake_ms = r.seconds_handshake * 1000;
      t.psync_sent += t.handshake_ms;
    }
  }
  co_await unpause_done;
  pipeline.Abort();
  // Let the writer's next acknowledgement land before looking at its gaps.
  co_await Sleep(loop, std::chrono::milliseconds(50));
  t.stall_ms = writer.LongestOverlapping(base, unpaused);
  for (;;) {
    CommandOutcome persistence = co_await node.Command(Argv("INFO", "persistence"));
    if (Field(persistence.reply.str, "rdb_bgsave_in_progress") == "0") break;
    co_await Sleep(loop, std::chrono::milliseconds(20));
  }
  CommandOutcome stats = co_await node.Command(Argv("INFO", "stats"));
  t.fork_ms = std::stod(Field(stats.reply.str, "latest_fork_usec")) / 1000.0;
  co_return t;
}

void PrintTrial(const Trial& t) {
  std::printf(
      "%-10s stall %6.1f ms  fork %6.1f ms  | after PAUSE sent: +OK %5.2f  INFO %5.2f  "
      "PSYNC %5.2f  +FULLRESYNC %5.2f  UNPAUSE ok %6.2f ms  (handshake %.2f ms)%s%s\n",
      t.variant.c_str(), t.stall_ms, t.fork_ms, t.pause_ok, t.info_ok, t.psync_sent, t.fullresync,
      t.unpause_ok, t.handshake_ms, t.error.empty() ? "" : "  ERROR ", t.error.c_str());
}

double Median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x.empty() ? 0.0 : x[x.size() / 2];
}

void PrintSummary(const std::string& variant, const std::vector<Trial>& trials) {
  std::vector<double> stall, fork, rest, unpause, fullresync;
  for (const Trial& t : trials) {
    stall.push_back(t.stall_ms);
    fork.push_back(t.fork_ms);
    rest.push_back(t.stall_ms - t.fork_ms);
    unpause.push_back(t.unpause_ok);
    fullresync.push_back(t.fullresync);
  }
  std::printf(
      "{\"variant\": \"%s\", \"rounds\": %zu, \"median_stall_ms\": %.1f, \"median_fork_ms\": "
      "%.1f, \"median_stall_minus_fork_ms\": %.1f, \"median_fullresync_ms\": %.2f, "
      "\"median_unpause_ok_ms\": %.2f, \"max_stall_ms\": %.1f}\n",
      variant.c_str(), trials.size(), Median(stall), Median(fork), Median(rest),
      Median(fullresync), Median(unpause), *std::max_element(stall.begin(), stall.end()));
}

Task<int> Main(Loop& loop, const std::string& host, int port, int rounds,
               const std::vector<std::string>& variants) {
  NodeClient node(loop, {host, static_cast<uint16_t>(port)}, {}, {});
  if (finalsnap::Status s = co_await node.Connect(); !s.ok()) {
    std::fprintf(stderr, "connect: %s\n", s.message().c_str());
    co_return 1;
  }
  CaptureOptions copts;
  copts.address = {host, static_cast<uint16_t>(port)};
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  Writer writer(host, port);
  co_await Sleep(loop, std::chrono::milliseconds(200));
  std::vector<std::vector<Trial>> all(variants.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t v = 0; v < variants.size(); ++v) {
      Trial t = co_await RunTrial(loop, node, copts, variants[v], writer, devnull);
      PrintTrial(t);
      std::fflush(stdout);
      all[v].push_back(t);
      co_await Sleep(loop, std::chrono::milliseconds(300));
    }
  }
  ::close(devnull);
  for (size_t v = 0; v < variants.size(); ++v) PrintSummary(variants[v], all[v]);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  int rounds = 3;
  std::vector<std::string> variants = {"today", "prepared", "pipelined"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--host") host = argv[i + 1];
    if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
    if (flag == "--variants") {
      variants.clear();
      std::string list = argv[i + 1];
      for (size_t p = 0; p <= list.size();) {
        const size_t c = std::min(list.find(',', p), list.size());
        variants.push_back(list.substr(p, c - p));
        p = c + 1;
      }
    }
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: pause_breakdown --port P [--rounds N] [--variants a,b]\n");
    return 2;
  }
  Loop loop;
  return RunToCompletion(loop, Main(loop, host, port, rounds, variants));
}
