// fill_dataset: fills a running Redis server with one of localnode's data sets (a shape: every
// type in every encoding by default, or sessions, small JSON documents, small hashes, ... as
// localnode/dataset.h lists them) of a given size, for benchmarks that need a large real RDB.
//
//   fill_dataset --port 6379 [--host 127.0.0.1] --bytes 300000000 [--seed 1] [--shape smallkeys]
//                [--databases 0,3,15] [--expire-fraction 0.1] [--prefix p:] [--no-functions]
//
// Progress goes to stderr; the summary (keys per database, bytes, time) to stdout. Exit status 0
// on success, 1 on a failure, 2 on a bad command line.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "localnode/client.h"
#include "localnode/dataset.h"

namespace {

using finalsnap::localnode::DatasetOptions;
using finalsnap::localnode::DatasetStats;

constexpr std::string_view kUsage =
    "usage: fill_dataset --port P [--host 127.0.0.1] (--bytes N | --keys N) [--seed S]\n"
    "                    [--shape encodings|application|sessions|json|hashes|collections|\n"
    "                             smallkeys|huge|streams]\n"
    "                    [--databases 0,3,15] [--expire-fraction F] [--prefix P]\n"
    "                    [--no-functions] [--no-plain-nodes]\n"
    "N accepts a K, M or G suffix (powers of 1000).\n";

struct Args {
  std::string host = "127.0.0.1";
  int port = 0;
  DatasetOptions dataset;
};

// A bad command line: reported with the usage text and exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

uint64_t ParseCount(std::string_view flag, const std::string& text) {
  size_t used = 0;
  uint64_t value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    throw UsageError(std::string(flag) + ": not a number: '" + text + "'");
  }
  std::string_view suffix = std::string_view(text).substr(used);
  uint64_t scale = suffix.empty()                   ? 1
                   : suffix == "K" || suffix == "k" ? 1'000
                   : suffix == "M" || suffix == "m" ? 1'000'000
                   : suffix == "G" || suffix == "g" ? 1'000'000'000
                                                    : 0;
  if (scale == 0) throw UsageError(std::string(flag) + ": bad suffix in '" + text + "'");
  return value * scale;
}

std::vector<uint64_t> ParseDatabases(const std::string& text) {
  std::vector<uint64_t> dbs;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    dbs.push_back(ParseCount("--databases", item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return dbs;
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--host") {
      args.host = value();
    } else if (flag == "--port") {
      uint64_t port = ParseCount(flag, value());
      if (port == 0 || port > 65535) throw UsageError("--port must be in 1..65535");
      args.port = static_cast<int>(port);
    } else if (flag == "--bytes") {
      args.dataset.target_bytes = ParseCount(flag, value());
    } else if (flag == "--keys") {
      args.dataset.key_count = ParseCount(flag, value());
    } else if (flag == "--seed") {
      args.dataset.seed = ParseCount(flag, value());
    } else if (flag == "--databases") {
      args.dataset.databases = ParseDatabases(value());
    } else if (flag == "--expire-fraction") {
      std::string text = value();
      try {
        args.dataset.expire_fraction = std::stod(text);
      } catch (const std::exception&) {
        throw UsageError("--expire-fraction: not a number: '" + text + "'");
      }
    } else if (flag == "--shape") {
      finalsnap::Expected<DatasetOptions::Mix> mix = finalsnap::localnode::MixByName(value());
      if (!mix.ok()) throw UsageError("--shape: " + mix.error().message());
      args.dataset.mix = *mix;
    } else if (flag == "--prefix") {
      args.dataset.key_prefix = value();
    } else if (flag == "--no-functions") {
      args.dataset.with_functions = false;
    } else if (flag == "--no-plain-nodes") {
      args.dataset.plain_list_nodes = false;
    } else if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage.data(), stdout);
      std::exit(0);
    } else {
      throw UsageError("unknown argument '" + std::string(flag) + "'");
    }
  }
  if (args.port == 0) throw UsageError("--port is required");
  if (args.dataset.target_bytes == 0 && args.dataset.key_count == 0) {
    throw UsageError("--bytes or --keys is required");
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = ParseArgs(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "fill_dataset: %s\n%s", e.what(), kUsage.data());
    return 2;
  }
  // Large batches can keep a busy server from replying for a while; a minute is generous.
  finalsnap::Expected<finalsnap::localnode::Context> c =
      finalsnap::localnode::Connect(args.host, args.port, std::chrono::seconds(60));
  if (!c.ok()) {
    std::fprintf(stderr, "fill_dataset: %s\n", c.error().message().c_str());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const uint64_t target = args.dataset.target_bytes;
  uint64_t last_reported = 0;
  args.dataset.progress = [&](uint64_t bytes) {
    // One line per ~1% (or 10 MB without a byte target), so a log file stays readable.
    uint64_t step = target > 0 ? std::max<uint64_t>(target / 100, 1) : 10'000'000;
    if (bytes < last_reported + step) return;
    last_reported = bytes;
    double secs = elapsed();
    std::fprintf(stderr, "\rfill_dataset: %.1f MB", static_cast<double>(bytes) / 1e6);
    if (target > 0) {
      std::fprintf(stderr, " / %.1f MB (%.0f%%)", static_cast<double>(target) / 1e6,
                   100.0 * static_cast<double>(bytes) / static_cast<double>(target));
    }
    std::fprintf(stderr, ", %.1f MB/s   ", secs > 0 ? static_cast<double>(bytes) / 1e6 / secs : 0);
    std::fflush(stderr);
  };
  finalsnap::Expected<DatasetStats> filled =
      finalsnap::localnode::FillDataset(c->get(), args.dataset);
  if (!filled.ok()) {
    std::fprintf(stderr, "\nfill_dataset: %s\n", filled.error().message().c_str());
    return 1;
  }
  const DatasetStats& stats = *filled;
  std::fprintf(stderr, "\n");
  std::printf(
      "filled %s:%d in %.1f s: %llu keys (%llu with expiry), %.1f MB payload, %llu "
      "commands, %llu function libraries\n",
      args.host.c_str(), args.port, elapsed(), static_cast<unsigned long long>(stats.keys),
      static_cast<unsigned long long>(stats.expires), static_cast<double>(stats.bytes) / 1e6,
      static_cast<unsigned long long>(stats.commands),
      static_cast<unsigned long long>(stats.functions));
  for (const auto& [db, counts] : stats.databases) {
    std::printf("db%llu:keys=%llu,expires=%llu\n", static_cast<unsigned long long>(db),
                static_cast<unsigned long long>(counts.keys),
                static_cast<unsigned long long>(counts.expires));
  }
  if (!stats.plain_list_nodes && args.dataset.plain_list_nodes) {
    std::fprintf(stderr,
                 "fill_dataset: note: the server refused DEBUG, so no PLAIN list nodes were "
                 "made (start it with --enable-debug-command local)\n");
  }
  return 0;
}
