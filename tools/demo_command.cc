// `finalsnap demo`: the whole ElastiCache "delete with a final snapshot" story on this machine,
// with nothing to set up. It starts a throwaway redis-server in a temporary directory, fills it
// with mixed data, fingerprints the data (DEBUG DIGEST), writes a fleet file for it, runs
// DeleteCacheCluster with a final snapshot, restores the snapshot into a fresh redis-server and
// compares the fingerprints. It exits 0 only when the restored data is identical.
//
// The product is used only through the engine's public API, as any embedding program would use
// it. The servers, the temporary directory and the data set are localnode's, the local-server
// kit the tests use too; the fingerprints are demo_fingerprint.h's.
//
// Output: a narrative for people on stdout by default. With an explicit --output the narrative
// moves to stderr and stdout gets one document (JSON or aws-style text) for scripts.
#include "demo_command.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cli_common.h"
#include "demo_fingerprint.h"
#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "localnode/dataset.h"
#include "localnode/files.h"
#include "localnode/server.h"

namespace finalsnap::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kClusterId[] = "demo";
constexpr char kSnapshotName[] = "demo-final";

struct DemoOptions {
  int size_mb = 200;
  bool keep = false;
  std::string redis_server;  // empty: look it up in $PATH
};

// Every failure of the demo travels up as one of these and ends as the error line.
struct DemoError {
  std::string fault;
  std::string message;
};

// localnode's failures (a server that would not start, a lost connection) are the machine's,
// not the product's.
DemoError Internal(const Status& e) { return DemoError{"InternalFailure", e.message()}; }

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

// ---- The demo ----

class Demo {
 public:
  Demo(const DemoOptions& options, const GlobalOptions& globals)
      : options_(options),
        globals_(globals),
        human_(!globals.output_explicit),
        say_(human_ ? std::cout : std::cerr) {}

  CommandResult Run() {
    const auto start = Clock::now();
    std::optional<DemoError> error = Steps();
    if (options_.keep && !dir_.path().empty()) {
      dir_.Keep();
      say_ << "== kept " << dir_.path().string() << "\n";
    } else if (error && !dir_.path().empty()) {
      say_ << "   (run with --keep to keep " << dir_.path().string() << " for a look)\n";
    }
    say_.flush();
    total_seconds_ = SecondsSince(start);
    if (!error && !human_) PrintDocument(Document(), globals_.output, std::cout);
    if (error) return CommandResult::Fail(error->fault, error->message);
    return CommandResult::Ok();
  }

 private:
  std::optional<DemoError> Steps() {
    const std::optional<std::string> binary = localnode::FindProgram(
        options_.redis_server.empty() ? "redis-server" : options_.redis_server);
    if (!binary) {
      return DemoError{"InvalidParameterValue",
                       options_.redis_server.empty()
                           ? "redis-server not found in $PATH (apt-get install redis-server, or "
                             "give --redis-server PATH)"
                           : options_.redis_server + " is not an executable file"};
    }
    if (Status made = dir_.Create("finalsnap-demo"); !made.ok()) {
      return Internal(made);
    }
    const fs::path restore_dir = dir_.path() / "restore";

    // 1. A node with data.
    localnode::ServerOptions node_options;
    node_options.binary = *binary;
    node_options.dir = (dir_.path() / "node").string();
    server_.emplace(std::move(node_options));
    if (Status up = server_->Start(); !up.ok()) return Internal(up);
    endpoint_ = "127.0.0.1:" + std::to_string(server_->port());
    say_ << "== started " << *binary << " on " << endpoint_ << " (in " << dir_.path().string()
         << ")\n";
    say_ << "== loading " << options_.size_mb
         << " MiB of mixed data: strings, hashes, lists, sets, sorted sets, streams, TTLs, db0 "
            "and db1\n"
         << std::flush;
    if (auto e = Load(); e) return e;
    say_ << "   " << HumanBytes(loaded_bytes_) << " of data in " << Fixed(load_seconds_, 1)
         << " s; fingerprinting it with DEBUG DIGEST (every key, value and TTL: a while on a big "
            "data set)\n"
         << std::flush;
    Expected<Fingerprint> before = TakeFingerprint(server_->port(), sample_, SlowCommandTimeout());
    if (!before.ok()) return Internal(before.error());
    before_ = *before;
    say_ << "   " << before_.TotalKeys() << " keys (" << before_.KeysText() << "), used_memory "
         << HumanBytes(before_.used_memory) << "; " << before_.method << " " << before_.digest
         << " (" << Fixed(before_.seconds, 1) << " s)\n";

    // 2. A fleet file for it, with the snapshot storage beside it.
    const fs::path fleet_path = dir_.path() / "finalsnap.toml";
    {
      std::ofstream out(fleet_path);
      out << "# Written by `finalsnap demo`: one throwaway node, snapshots beside this file.\n"
             "[storage]\n"
             "path = \"snapshots\"\n"
             "compression = \"zstd\"\n"
             "level = 1\n\n"
             "[cache_clusters."
          << kClusterId << "]\nendpoint = \"" << endpoint_ << "\"\n";
      if (!out) return DemoError{"InternalFailure", "cannot write " + fleet_path.string()};
    }
    Expected<Fleet, FleetError> loaded = LoadFleet(fleet_path);
    if (!loaded.ok()) {
      return DemoError{"InternalFailure",
                       "the demo's own fleet file: " + loaded.error().ToString()};
    }
    const Fleet& fleet = *loaded;

    // 3. Delete with a final snapshot.
    say_ << "== finalsnap --fleet " << fleet_path.string() << " delete-cache-cluster "
         << "--cache-cluster-id " << kClusterId << " --final-snapshot-identifier " << kSnapshotName
         << "\n"
         << std::flush;
    {
      ProgressLine progress("   final snapshot", StderrIsTerminal());
      OperationOptions op;
      op.observer = progress.Observer();
      result_ = DeleteCacheCluster(fleet, kClusterId, std::string(kSnapshotName), op);
      progress.Finish();
    }
    PrintGates(result_.gates);
    for (const std::string& note : result_.notes) say_ << "   note: " << note << "\n";
    if (!result_.ok) {
      return DemoError{result_.fault.empty() ? "InvalidCacheClusterState" : result_.fault,
                       result_.message};
    }
    if (!server_->WaitForExit(milliseconds(10000))) {
      return DemoError{"InternalFailure",
                       "the engine reported the node shut down, but its process still runs"};
    }
    if (!result_.snapshot || result_.snapshot->node_snapshots.empty()) {
      return DemoError{"InternalFailure", "the engine reported success without a snapshot"};
    }
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    say_ << "   node gone; snapshot " << kSnapshotName << ": " << HumanBytes(node.rdb_bytes)
         << " RDB -> " << HumanBytes(node.stored_bytes) << " " << CompressionName(node.compression)
         << " in " << Fixed(result_.seconds, 2) << " s\n";

    // 4. Restore into a fresh server.
    say_ << "== restore --snapshot-name " << kSnapshotName << " --target-dir "
         << restore_dir.string() << "\n"
         << std::flush;
    Expected<SnapshotStore> opened =
        SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadOnly);
    if (!opened.ok()) return DemoError{"InternalFailure", opened.error().message()};
    const auto restore_start = Clock::now();
    const RestoreResult restored = RestoreSnapshot(*opened, kSnapshotName, restore_dir);
    restore_seconds_ = SecondsSince(restore_start);
    if (!restored.status.ok()) {
      return DemoError{"InvalidSnapshotState", "restore: " + restored.status.message()};
    }
    say_ << "   " << HumanBytes(restored.rdb_bytes) << " written to "
         << (restored.files.empty() ? restore_dir.string() : restored.files.front().string())
         << " in " << Fixed(restore_seconds_, 2) << " s\n";

    const auto load_start = Clock::now();
    // Loading is paced by the RDB's size; allow for a slow disk on a big data set.
    const milliseconds deadline(60000 + static_cast<int64_t>(options_.size_mb) * 500);
    localnode::ServerOptions restored_options;
    restored_options.config = {{"dbfilename", "dump.rdb"}};
    restored_options.binary = *binary;
    restored_options.start_timeout = deadline;
    restored_options.dir = restore_dir.string();
    restored_server_.emplace(std::move(restored_options));
    if (Status up = restored_server_->Start(); !up.ok()) {
      return Internal(up);
    }
    reload_seconds_ = SecondsSince(load_start);
    say_ << "== started a fresh redis-server on the restored dump.rdb (127.0.0.1:"
         << restored_server_->port() << "), loaded in " << Fixed(reload_seconds_, 2) << " s\n";
    say_ << "   fingerprinting the restored data\n" << std::flush;
    Expected<Fingerprint> after =
        TakeFingerprint(restored_server_->port(), sample_, SlowCommandTimeout());
    if (!after.ok()) return Internal(after.error());
    after_ = *after;
    restored_server_->Stop(milliseconds(5000));

    identical_ = before_.digest == after_.digest && before_.keys == after_.keys &&
                 before_.dbsize == after_.dbsize;
    PrintSummary();
    if (!identical_) {
      return DemoError{"InvalidSnapshotState",
                       "the restored data differs: " + before_.method + " " + before_.digest +
                           " before, " + after_.digest + " after; " +
                           std::to_string(before_.TotalKeys()) + " keys before, " +
                           std::to_string(after_.TotalKeys()) + " after"};
    }
    return std::nullopt;
  }

  // Fills the node with the application mix (localnode/dataset.h): strings, hashes, lists, sets,
  // sorted sets and streams of compressible text, some with TTLs, in db0 and db1.
  std::optional<DemoError> Load() {
    // Large batches can keep a busy server from replying for a while; a minute is generous.
    Expected<localnode::Context> c = server_->Connect(milliseconds(60000));
    if (!c.ok()) return Internal(c.error());
    ProgressLine progress("   loading", StderrIsTerminal());
    const auto start = Clock::now();
    localnode::DatasetOptions data;
    data.seed = 0x5eed;
    data.target_bytes = static_cast<uint64_t>(options_.size_mb) << 20;
    data.databases = {0, 1};
    data.with_functions = false;
    data.expire_fraction = 0.05;
    data.mix = localnode::DatasetOptions::Mix::kApplication;
    data.spot_checks = 400;  // for the fingerprint, should DEBUG DIGEST be unavailable
    data.progress = [&](uint64_t bytes) {
      progress.Update(bytes, data.target_bytes, SecondsSince(start));
    };
    Expected<localnode::DatasetStats> filled = localnode::FillDataset(c->get(), data);
    if (!filled.ok())
      return DemoError{"InternalFailure", "loading data: " + filled.error().message()};
    progress.Update(filled->bytes, data.target_bytes, SecondsSince(start), true);
    progress.Finish();
    load_seconds_ = SecondsSince(start);
    loaded_bytes_ = filled->bytes;
    sample_ = filled->spot_checks;
    return std::nullopt;
  }

  // DEBUG DIGEST hashes everything, at some 30 MB/s: allow well over that for a big data set.
  milliseconds SlowCommandTimeout() const {
    return milliseconds(60000 + static_cast<int64_t>(options_.size_mb) * 200);
  }

  void PrintGates(const std::vector<GateVerdict>& gates) {
    for (const GateVerdict& g : gates) {
      char head[64];
      std::snprintf(head, sizeof(head), "   [%s] %-9s %-20s", g.passed ? "pass" : "FAIL",
                    g.phase.c_str(), g.gate.c_str());
      say_ << head << " " << g.evidence << "\n";
    }
  }

  double Ratio() const {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    return node.stored_bytes == 0
               ? 0
               : static_cast<double>(node.rdb_bytes) / static_cast<double>(node.stored_bytes);
  }

  void PrintSummary() {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    const double rate =
        result_.seconds > 0 ? static_cast<double>(node.rdb_bytes) / 1e6 / result_.seconds : 0;
    say_ << "== summary\n"
         << "   server            redis " << before_.version << "\n"
         << "   data set          " << HumanBytes(loaded_bytes_) << " loaded in "
         << Fixed(load_seconds_, 1) << " s, " << before_.TotalKeys() << " keys, used_memory "
         << HumanBytes(before_.used_memory) << "\n"
         << "   final snapshot    " << HumanBytes(node.rdb_bytes) << " RDB (version "
         << node.rdb_version << ") -> " << HumanBytes(node.stored_bytes) << " "
         << CompressionName(node.compression) << " level " << node.compression_level
         << ", compression ratio " << Fixed(Ratio(), 2) << "\n"
         << "   delete-cache-cluster " << Fixed(result_.seconds, 2) << " s (" << Fixed(rate, 1)
         << " MB/s of RDB), " << result_.gates.size() << " gates passed\n"
         << "   restore           " << Fixed(restore_seconds_, 2)
         << " s; redis-server loaded it in " << Fixed(reload_seconds_, 2) << " s\n"
         << "   " << before_.method << "  before " << before_.digest << "\n"
         << "   " << std::string(before_.method.size(), ' ') << "  after  " << after_.digest << "\n"
         << "   keys              before " << before_.KeysText() << "; after " << after_.KeysText()
         << "\n"
         << "   data identical: " << (identical_ ? "yes" : "NO") << "\n"
         << std::flush;
  }

  Json Document() const {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    Json demo;
    demo["Endpoint"] = endpoint_;
    demo["EngineVersion"] = before_.version;
    demo["LoadedBytes"] = loaded_bytes_;
    demo["LoadSeconds"] = std::round(load_seconds_ * 1000) / 1000;
    demo["UsedMemoryBytes"] = before_.used_memory;
    demo["RdbBytes"] = node.rdb_bytes;
    demo["StoredBytes"] = node.stored_bytes;
    demo["Compression"] = std::string(CompressionName(node.compression));
    demo["CompressionRatio"] = std::round(Ratio() * 100) / 100;
    demo["DeleteSeconds"] = std::round(result_.seconds * 1000) / 1000;
    demo["RestoreSeconds"] = std::round(restore_seconds_ * 1000) / 1000;
    demo["ReloadSeconds"] = std::round(reload_seconds_ * 1000) / 1000;
    demo["FingerprintMethod"] = before_.method;
    demo["DigestBefore"] = before_.digest;
    demo["DigestAfter"] = after_.digest;
    demo["DigestSeconds"] = std::round(before_.seconds * 1000) / 1000;
    demo["KeysBefore"] = before_.TotalKeys();
    demo["KeysAfter"] = after_.TotalKeys();
    demo["DbSizeBefore"] = before_.dbsize;
    demo["DbSizeAfter"] = after_.dbsize;
    demo["DataIdentical"] = identical_;
    demo["Directory"] = options_.keep ? Json(dir_.path().string()) : Json();
    demo["TotalSeconds"] = std::round(total_seconds_ * 1000) / 1000;
    Json doc;
    doc["Demo"] = std::move(demo);
    doc["CacheCluster"] = CacheClusterJson(result_.cluster);
    doc["Snapshot"] = SnapshotJson(*result_.snapshot);
    doc["Gates"] = GatesJson(result_.gates);
    return doc;
  }

  const DemoOptions& options_;
  const GlobalOptions& globals_;
  const bool human_;  // narrative on stdout; otherwise on stderr, with a document on stdout
  std::ostream& say_;

  localnode::ScratchDir dir_;  // declared before the servers: they stop before their files go
  std::optional<localnode::LocalServer> server_;
  std::optional<localnode::LocalServer> restored_server_;
  std::string endpoint_;
  std::vector<localnode::SampleKey> sample_;
  uint64_t loaded_bytes_ = 0;
  double load_seconds_ = 0;
  double restore_seconds_ = 0;
  double reload_seconds_ = 0;
  double total_seconds_ = 0;
  Fingerprint before_;
  Fingerprint after_;
  OperationResult result_;
  bool identical_ = false;
};

}  // namespace

Command RegisterDemoCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "demo",
      "Start a throwaway local redis-server, fill it with mixed data, delete it with a final "
      "snapshot, restore the snapshot into a fresh server and check the data is identical. Needs "
      "no fleet file.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DemoOptions>();
  sub->add_option("--size-mb", options->size_mb, "MiB of data to load")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  sub->add_flag("--keep", options->keep, "Keep the temporary directory (fleet file, snapshot)");
  sub->add_option("--redis-server", options->redis_server,
                  "The redis-server binary (default: the one in $PATH)");
  return Command{sub, "Demo", [options, &globals] { return Demo(*options, globals).Run(); }};
}

}  // namespace finalsnap::cli
