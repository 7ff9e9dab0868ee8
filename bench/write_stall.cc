// write_stall: measures how long writes stall while something else happens to a node.
//
//   write_stall --port P [--host 127.0.0.1] --stop-file PATH [--max-seconds 600]
//
// Writes SET write_stall:<n> <n> in a loop on one connection (each SET waits for its reply) until
// PATH exists, then prints one JSON line: the number of acknowledged writes, the longest gap
// between two consecutive acknowledgements (the longest stall a client saw), and the gaps over
// 10 ms. Used by bench/snapshot_vs_redis_cli.sh to measure create-snapshot's pause.
#include <hiredis/hiredis.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string stop_file;
  double max_seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--host") host = argv[i + 1];
    if (flag == "--stop-file") stop_file = argv[i + 1];
    if (flag == "--max-seconds") max_seconds = std::atof(argv[i + 1]);
  }
  if (port <= 0 || stop_file.empty()) {
    std::fprintf(stderr, "usage: write_stall --port P [--host H] --stop-file PATH\n");
    return 2;
  }
  redisContext* c = redisConnect(host.c_str(), port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "write_stall: cannot connect to %s:%d\n", host.c_str(), port);
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last = start;
  double longest_ms = 0;
  std::vector<double> long_gaps;
  uint64_t acked = 0;
  struct stat st;
  while (stat(stop_file.c_str(), &st) != 0) {
    const std::string n = std::to_string(acked);
    auto* r = static_cast<redisReply*>(
        redisCommand(c, "SET write_stall:%s %s", n.c_str(), n.c_str()));
    if (r == nullptr) break;  // the node went away: stop measuring
    const bool ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok) break;
    const auto now = Clock::now();
    const double gap = std::chrono::duration<double, std::milli>(now - last).count();
    longest_ms = std::max(longest_ms, gap);
    if (gap > 10) long_gaps.push_back(gap);
    last = now;
    ++acked;
    if (std::chrono::duration<double>(now - start).count() > max_seconds) break;
  }
  redisFree(c);
  std::printf("{\"acked_writes\": %llu, \"longest_stall_ms\": %.1f, \"stalls_over_10ms\": [",
              static_cast<unsigned long long>(acked), longest_ms);
  for (size_t i = 0; i < long_gaps.size(); ++i) {
    std::printf("%s%.1f", i ? ", " : "", long_gaps[i]);
  }
  std::printf("]}\n");
  return 0;
}
