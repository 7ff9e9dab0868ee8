// `finalsnap serve` driven by the real aws CLI (`aws elasticache ... --endpoint-url`), against
// real redis-server processes: the documentation's commands for a final snapshot, the
// asynchronous states (deleting, creating, available, gone), every fault the aws CLI can show,
// the refusal of unsigned and wrongly signed requests, the documentation's raw GET, and state
// that survives a restart of the server.
//
// Raw requests (a GET in the page's form, a request changed after it was signed, one signed
// outside the clock window) come from tests/integration/api_client.py, which signs with
// botocore's own signer; the same script checks every JSON document the aws CLI printed, and
// every raw XML answer, against botocore's ElastiCache model. A missing aws CLI, python3 or
// botocore fails the test; nothing is skipped.
//
// Operations are held in flight deterministically by a TcpProxy in front of the node that stalls
// every new connection after 64 KiB from the server: command replies are far smaller, the RDB
// stream far larger, so a capture stops part way until the test calls Resume().
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/process.h"
#include "support/redis_server.h"
#include "support/tcp_proxy.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using testing::ProcessResult;
using testing::RedisServer;
using testing::RunCommand;
using testing::RunOptions;
using testing::TcpProxy;
using testing::TempDir;

constexpr char kCluster[] = "myRedisCluster";
constexpr char kGroup[] = "myReplGroup";
constexpr char kFinal[] = "bkup-20150515-final";
constexpr char kAccessKey[] = "AKIDFINALSNAPTEST";
constexpr char kSecret[] = "finalsnap-api-test-secret/+=";
constexpr char kFileAccessKey[] = "AKIDFROMFILE";
constexpr char kFileSecret[] = "secret-read-from-a-file";
constexpr char kSecretEnv[] = "FINALSNAP_API_TEST_SECRET";
constexpr uint64_t kStallOffset = 64 * 1024;
constexpr milliseconds kDeadline{30'000};

const std::string kClient = FINALSNAP_SOURCE_DIR "/tests/integration/api_client.py";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `finalsnap serve` as a child process: started on a free port (read from its first stdout
// line), its stderr in a log file, stopped by a signal.
class ServeProcess {
 public:
  ServeProcess(std::string fleet, std::string log)
      : fleet_(std::move(fleet)), log_(std::move(log)) {}
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  void Start() {
    // Everything the child needs is built before fork: only exec follows it.
    std::vector<std::string> args = {FINALSNAP_CLI, "--fleet",  fleet_,
                                     "serve",       "--listen", "127.0.0.1:0"};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("FINALSNAP_FLEET=", 0) != 0) env.emplace_back(*e);
    }
    env.push_back(std::string(kSecretEnv) + "=" + kSecret);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(log_fd, 0);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(pipe_fds[1], STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    ::close(log_fd);
    out_fd_ = pipe_fds[0];
    // The first line: {"Listening": {"Address": ..., "Port": ...}, "Url": ...}.
    std::string line;
    const auto until = std::chrono::steady_clock::now() + milliseconds(15'000);
    while (line.find('\n') == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now());
      ASSERT_GT(left.count(), 0) << "serve did not report its port in 15 s\n" << Log();
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
      ASSERT_GT(n, 0) << "serve exited before listening\n" << Log();
      line.append(buf, static_cast<size_t>(n));
    }
    const json doc = json::parse(line.substr(0, line.find('\n')));
    port_ = doc["Listening"]["Port"].get<int>();
    ASSERT_GT(port_, 0) << line;
  }

  // Sends `signal` and waits for the exit; the exit code (128 + signal when killed), or nullopt
  // if it is still running at the deadline.
  std::optional<int> Stop(int signal, milliseconds deadline = kDeadline) {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, signal);
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > until) return std::nullopt;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }

  bool Running() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string Log() const { return ReadFile(log_); }

 private:
  std::string fleet_;
  std::string log_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
};

// The fixture: a temporary directory with the fleet file, the server, and helpers to run the
// aws CLI and the botocore helper against it. Each test adds its own nodes.
class ApiTestBase : public ::testing::Test {
 protected:
  void TearDown() override {
    if (serve_ && serve_->Running()) {
      // A clean stop at the end is part of every test: SIGTERM, exit 0, nothing left running.
      const std::optional<int> code = serve_->Stop(SIGTERM);
      EXPECT_EQ(code, 0) << serve_->Log();
    }
    ValidateOutputs();
    if (HasFailure() && serve_) std::cerr << "--- serve log ---\n" << serve_->Log();
  }

  void WriteFleet(const std::string& nodes) {
    std::ofstream(dir_ / "api-secret") << kFileSecret << "\n";
    ::chmod((dir_ / "api-secret").c_str(), 0600);
    std::ofstream out(fleet_path());
    out << "[storage]\npath = \"snapshots\"\n\n"
           "[defaults]\npause_timeout_ms = 3000\n\n"
        << nodes
        << "\n[api]\nstate = \"state\"\n\n"
           "[[api.credentials]]\naccess_key_id = \""
        << kAccessKey << "\"\nsecret_access_key_env = \"" << kSecretEnv
        << "\"\n\n[[api.credentials]]\naccess_key_id = \"" << kFileAccessKey
        << "\"\nsecret_access_key_file = \"api-secret\"\n";
  }

  std::string fleet_path() const { return (dir_ / "finalsnap.toml").string(); }

  void StartServe() {
    serve_ = std::make_unique<ServeProcess>(fleet_path(), (dir_ / "serve.log").string());
    serve_->Start();
  }

  // The aws CLI, with credentials and region from the environment and nothing from the
  // machine's own configuration.
  ProcessResult Aws(std::vector<std::string> args, const std::string& access_key = kAccessKey,
                    const std::string& secret = kSecret) {
    args.insert(args.begin(), {"aws", "elasticache"});
    args.insert(args.end(), {"--endpoint-url", serve_->url(), "--output", "json"});
    RunOptions options;
    options.timeout = milliseconds(60'000);
    options.env = {{"AWS_ACCESS_KEY_ID", access_key},
                   {"AWS_SECRET_ACCESS_KEY", secret},
                   {"AWS_DEFAULT_REGION", "us-west-2"},
                   {"AWS_SESSION_TOKEN", std::nullopt},
                   {"AWS_PROFILE", std::nullopt},
                   {"AWS_CONFIG_FILE", (dir_ / "no-aws-config").string()},
                   {"AWS_SHARED_CREDENTIALS_FILE", (dir_ / "no-aws-credentials").string()},
                   {"AWS_EC2_METADATA_DISABLED", "true"},
                   // One attempt: a refused request must show its own error, not a retry's.
                   {"AWS_MAX_ATTEMPTS", "1"},
                   {"AWS_RETRY_MODE", "standard"}};
    return RunCommand(args, options);
  }

  // Runs an aws CLI command that must succeed; returns its JSON and keeps it for the model check.
  json AwsOk(const std::vector<std::string>& args, const std::string& operation) {
    const ProcessResult r = Aws(args);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    if (r.exit_code != 0) return json();
    const fs::path file = dir_ / ("out-" + std::to_string(outputs_.size()) + ".json");
    std::ofstream(file) << r.stdout_text;
    outputs_.push_back({operation, file.string()});
    try {
      return json::parse(r.stdout_text);
    } catch (const json::parse_error& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.Describe();
    }
    return json();
  }

  // The aws CLI's own error line for a refused call.
  void ExpectAwsError(const ProcessResult& r, const std::string& code,
                      const std::string& operation) {
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.stderr_text.find("An error occurred (" + code + ") when calling the " + operation +
                                 " operation"),
              std::string::npos)
        << r.Describe();
    EXPECT_EQ(r.stdout_text, "") << r.Describe();
  }

  // Raw requests through api_client.py (botocore's signer); one result per request.
  json Raw(json requests) {
    json spec;
    spec["endpoint"] = serve_->url();
    spec["region"] = "us-west-2";
    spec["access_key"] = kAccessKey;
    spec["secret"] = kSecret;
    spec["requests"] = std::move(requests);
    RunOptions options;
    options.stdin_data = spec.dump();
    options.timeout = milliseconds(60'000);
    const ProcessResult r = RunCommand({"python3", kClient, "requests"}, options);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json results = json::parse(r.stdout_text, nullptr, false);
    EXPECT_TRUE(results.is_array()) << r.Describe();
    for (const json& result : results) {
      EXPECT_EQ(result["model_errors"], json::array()) << result.dump(1);
    }
    return results;
  }

  // Every JSON document the aws CLI printed, against botocore's model of its operation.
  void ValidateOutputs() {
    if (outputs_.empty()) return;
    json spec;
    spec["json"] = json::array();
    for (const auto& [operation, file] : outputs_) {
      spec["json"].push_back({{"operation", operation}, {"file", file}});
    }
    RunOptions options;
    options.stdin_data = spec.dump();
    const ProcessResult r = RunCommand({"python3", kClient, "validate"}, options);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    const json result = json::parse(r.stdout_text);
    EXPECT_EQ(result["checked"], outputs_.size());
    EXPECT_EQ(result["errors"], json::array()) << result.dump(1);
    outputs_.clear();
  }

  // Polls `check` (each call is one aws CLI run, about a second) until it holds.
  void WaitUntil(const std::function<bool()>& check, const std::string& what) {
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!check()) {
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "timed out waiting for " << what;
    }
  }

  std::string SnapshotStatus(const std::string& name) {
    const json doc = AwsOk({"describe-snapshots", "--snapshot-name", name}, "DescribeSnapshots");
    if (!doc.contains("Snapshots") || doc["Snapshots"].size() != 1) return "";
    return doc["Snapshots"][0].value("SnapshotStatus", "");
  }

  // All events of one source, as DescribeEvents lists them (the CLI follows the markers).
  std::vector<std::string> EventMessages(const std::string& type, const std::string& id) {
    const json doc = AwsOk(
        {"describe-events", "--source-type", type, "--source-identifier", id, "--duration", "60"},
        "DescribeEvents");
    std::vector<std::string> messages;
    for (const json& e : doc["Events"]) messages.push_back(e["Message"]);
    return messages;
  }

  static bool AnyContains(const std::vector<std::string>& lines, const std::string& text) {
    for (const std::string& l : lines) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

  // True when the server answers PING and takes a write (no pause left behind).
  static bool AnswersAndWritable(RedisServer& server) {
    try {
      auto c = testing::ConnectTo(server.host(), server.port(), milliseconds(5000));
      return testing::Execute(c.get(), {"PING"}).str == "PONG" &&
             testing::Execute(c.get(), {"SET", "probe", "1"}).ok() &&
             testing::Execute(c.get(), {"DEL", "probe"}).integer == 1;
    } catch (const std::exception&) {
      return false;
    }
  }

  bool StorageHas(const std::string& name) {
    std::error_code ec;
    return fs::exists(dir_ / "snapshots" / name, ec);
  }

  TempDir tmp_{"finalsnap-api"};
  fs::path dir_ = tmp_.path();
  std::unique_ptr<ServeProcess> serve_;
  std::vector<std::pair<std::string, std::string>> outputs_;
};

// A standalone node behind a stalling proxy.
class ApiCacheClusterTest : public ApiTestBase {
 protected:
  void SetUp() override {
    server_.Start();
    ASSERT_TRUE(server_.Command("DEBUG", "POPULATE", 20000, "key", 64).ok());
    ASSERT_FALSE(server_.Command("HSET", "h", "f", "v").is_error());
    dbsize_ = server_.Command("DBSIZE").integer;
    proxy_ = std::make_unique<TcpProxy>(server_.host(), server_.port());
    // A node that has shut down refuses connections through the proxy too, so the engine's
    // nodes-shutdown gate sees what it would see without it.
    proxy_->set_mirror_refusal(true);
    WriteFleet(std::string("[cache_clusters.") + kCluster +
               "]\nendpoint = \"127.0.0.1:" + std::to_string(proxy_->port()) + "\"\n");
    StartServe();
  }

  void TearDown() override {
    if (proxy_) proxy_->Resume();
    ApiTestBase::TearDown();
  }

  RedisServer server_;
  long long dbsize_ = 0;
  std::unique_ptr<TcpProxy> proxy_;
};

// The documentation's command, unchanged but for --endpoint-url: the answer comes at once with
// the cluster "deleting"; the final snapshot is "creating" while the capture runs, then
// "available"; the cluster is shown "deleting" until it is gone, then CacheClusterNotFound. The
// snapshot verifies and the node no longer runs.
TEST_F(ApiCacheClusterTest, PageCommandLeavesAVerifiedSnapshotAndNoNode) {
  proxy_->StallAt(kStallOffset, TcpProxy::kEveryConnection);
  json doc = AwsOk({"delete-cache-cluster", "--cache-cluster-id", kCluster,
                    "--final-snapshot-identifier", kFinal},
                   "DeleteCacheCluster");
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterId"], kCluster);
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterStatus"], "deleting");
  EXPECT_EQ(doc["CacheCluster"]["Engine"], "redis");
  ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, kDeadline))
      << "the capture never reached the proxy's stall point\n"
      << serve_->Log();

  // In flight: the states ElastiCache shows, and the refusals it gives.
  EXPECT_EQ(SnapshotStatus(kFinal), "creating");
  doc = AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster, "--show-cache-node-info"},
              "DescribeCacheClusters");
  ASSERT_EQ(doc["CacheClusters"].size(), 1u) << doc.dump(1);
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "deleting");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Port"], proxy_->port());
  ExpectAwsError(Aws({"delete-cache-cluster", "--cache-cluster-id", kCluster}),
                 "InvalidCacheClusterState", "DeleteCacheCluster");
  ExpectAwsError(Aws({"delete-snapshot", "--snapshot-name", kFinal}), "InvalidSnapshotState",
                 "DeleteSnapshot");

  proxy_->Resume();
  WaitUntil([&] { return SnapshotStatus(kFinal) == "available"; }, "the snapshot to be available");
  WaitUntil(
      [&] {
        const ProcessResult r = Aws({"describe-cache-clusters", "--cache-cluster-id", kCluster});
        if (r.exit_code == 0) return false;
        ExpectAwsError(r, "CacheClusterNotFound", "DescribeCacheClusters");
        return true;
      },
      "the cluster to be gone");

  // No running node, a snapshot that verifies, with the node's keys.
  EXPECT_TRUE(server_.WaitForExit(kDeadline).has_value()) << "the node still runs";
  const ProcessResult verify =
      RunCommand({FINALSNAP_CLI, "--fleet", fleet_path(), "verify", kFinal});
  EXPECT_EQ(verify.exit_code, 0) << verify.Describe();
  const json manifest = json::parse(ReadFile(dir_ / "snapshots" / kFinal / "manifest.json"));
  long long keys = 0;
  for (const json& db : manifest["NodeSnapshots"][0]["Keyspace"])
    keys += db["Keys"].get<long long>();
  EXPECT_EQ(keys, dbsize_);
  for (const json& gate : manifest["Gates"]) EXPECT_TRUE(gate["Passed"].get<bool>()) << gate;

  // The gate verdicts and the outcome are events.
  const std::vector<std::string> events = EventMessages("cache-cluster", kCluster);
  EXPECT_TRUE(AnyContains(events, "DeleteCacheCluster accepted")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Gate rdb-checksum (capture) passed")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Gate readback (store) passed")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Gate nodes-shutdown (destroy) passed")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "deleted after its final snapshot " + std::string(kFinal)))
      << json(events).dump(1);
  // A deleted cluster stays deleted.
  ExpectAwsError(Aws({"delete-cache-cluster", "--cache-cluster-id", kCluster}),
                 "CacheClusterNotFound", "DeleteCacheCluster");
}

// A gate that refuses: one byte of the RDB stream is flipped on its way (far past every command
// reply), the capture gates catch it, nothing is shut down, no snapshot is left, and the event
// names the gate; the cluster is available again.
TEST_F(ApiCacheClusterTest, RefusedGateIsAnEventAndTheClusterIsAvailableAgain) {
  proxy_->FlipByteAt(200'000, TcpProxy::kEveryConnection);
  json doc = AwsOk({"delete-cache-cluster", "--cache-cluster-id", kCluster,
                    "--final-snapshot-identifier", kFinal},
                   "DeleteCacheCluster");
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterStatus"], "deleting");
  std::vector<std::string> events;
  WaitUntil(
      [&] {
        events = EventMessages("cache-cluster", kCluster);
        return AnyContains(events, "refused at gate");
      },
      "the refusal event");
  EXPECT_EQ(proxy_->flips(), 1);
  EXPECT_TRUE(AnyContains(events, "refused at gate rdb-")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "REFUSED")) << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Nothing was shut down")) << json(events).dump(1);
  EXPECT_FALSE(AnyContains(events, "Gate nodes-shutdown")) << json(events).dump(1);
  doc = AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster}, "DescribeCacheClusters");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available") << doc.dump(1);
  ExpectAwsError(Aws({"describe-snapshots", "--snapshot-name", kFinal}), "SnapshotNotFoundFault",
                 "DescribeSnapshots");
  EXPECT_TRUE(AnswersAndWritable(server_));
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);
}

// create-snapshot, describe-snapshots until available, delete-snapshot, describe-cache-clusters,
// and the documented faults as the aws CLI prints them.
TEST_F(ApiCacheClusterTest, SnapshotLifecycleAndFaults) {
  json doc =
      AwsOk({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "nightly"},
            "CreateSnapshot");
  EXPECT_EQ(doc["Snapshot"]["SnapshotName"], "nightly");
  EXPECT_EQ(doc["Snapshot"]["SnapshotStatus"], "creating");
  EXPECT_EQ(doc["Snapshot"]["CacheClusterId"], kCluster);
  WaitUntil([&] { return SnapshotStatus("nightly") == "available"; }, "nightly to be available");
  EXPECT_TRUE(AnswersAndWritable(server_)) << "create-snapshot must leave the node running";

  doc = AwsOk({"describe-cache-clusters", "--show-cache-node-info"}, "DescribeCacheClusters");
  ASSERT_EQ(doc["CacheClusters"].size(), 1u) << doc.dump(1);
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available");
  EXPECT_EQ(doc["CacheClusters"][0]["EngineVersion"], server_.Version());

  doc = AwsOk({"describe-snapshots", "--cache-cluster-id", kCluster, "--show-node-group-config"},
              "DescribeSnapshots");
  ASSERT_EQ(doc["Snapshots"].size(), 1u) << doc.dump(1);
  EXPECT_EQ(doc["Snapshots"][0]["NodeSnapshots"][0]["NodeGroupId"], "0001");

  // The raw XML of every kind of answer, element by element against the model (the aws CLI
  // would silently drop an element the model does not have), errors with the model's statuses.
  auto request = [](const std::string& name, const std::string& action,
                    std::vector<std::pair<std::string, std::string>> params) {
    json p = json::array({json::array({"Action", action}), json::array({"Version", "2015-02-02"})});
    for (auto& [k, v] : params) p.push_back(json::array({k, v}));
    return json{{"name", name}, {"params", p}, {"validate", action}};
  };
  const json xml = Raw(json::array({
      request("clusters", "DescribeCacheClusters", {{"ShowCacheNodeInfo", "true"}}),
      request("snapshots", "DescribeSnapshots", {{"ShowNodeGroupConfig", "true"}}),
      request("events", "DescribeEvents", {{"SourceType", "cache-cluster"}}),
      request("groups-404", "DescribeReplicationGroups", {{"ReplicationGroupId", "nope"}}),
      request("delete-group-404", "DeleteReplicationGroup", {{"ReplicationGroupId", "nope"}}),
      request("delete-snapshot-404", "DeleteSnapshot", {{"SnapshotName", "nope"}}),
      request("create-snapshot-400", "CreateSnapshot",
              {{"SnapshotName", "nightly"}, {"CacheClusterId", kCluster}}),
      request("delete-cluster-404", "DeleteCacheCluster", {{"CacheClusterId", "nope"}}),
  }));
  ASSERT_EQ(xml.size(), 8u);
  const std::vector<int> statuses = {200, 200, 200, 404, 404, 404, 400, 404};
  for (size_t i = 0; i < statuses.size(); ++i) EXPECT_EQ(xml[i]["status"], statuses[i]) << xml[i];

  ExpectAwsError(
      Aws({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "NIGHTLY"}),
      "SnapshotAlreadyExistsFault", "CreateSnapshot");
  ExpectAwsError(
      Aws({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", "not_valid"}),
      "InvalidParameterValue", "CreateSnapshot");
  ExpectAwsError(Aws({"create-snapshot", "--cache-cluster-id", kCluster, "--replication-group-id",
                      kGroup, "--snapshot-name", "x"}),
                 "InvalidParameterCombination", "CreateSnapshot");
  ExpectAwsError(Aws({"delete-cache-cluster", "--cache-cluster-id", "noSuchCluster",
                      "--final-snapshot-identifier", kFinal}),
                 "CacheClusterNotFound", "DeleteCacheCluster");
  ExpectAwsError(Aws({"describe-replication-groups", "--replication-group-id", "noSuchGroup"}),
                 "ReplicationGroupNotFoundFault", "DescribeReplicationGroups");
  ExpectAwsError(Aws({"delete-replication-group", "--replication-group-id", "noSuchGroup"}),
                 "ReplicationGroupNotFoundFault", "DeleteReplicationGroup");

  doc = AwsOk({"delete-snapshot", "--snapshot-name", "nightly"}, "DeleteSnapshot");
  EXPECT_EQ(doc["Snapshot"]["SnapshotStatus"], "deleting");
  EXPECT_FALSE(StorageHas("nightly"));
  ExpectAwsError(Aws({"describe-snapshots", "--snapshot-name", "nightly"}), "SnapshotNotFoundFault",
                 "DescribeSnapshots");
  ExpectAwsError(Aws({"delete-snapshot", "--snapshot-name", "nightly"}), "SnapshotNotFoundFault",
                 "DeleteSnapshot");

  const std::vector<std::string> events = EventMessages("cache-cluster", kCluster);
  EXPECT_TRUE(AnyContains(
      events, "Snapshot nightly of cache cluster " + std::string(kCluster) + " is available"))
      << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Snapshot nightly deleted")) << json(events).dump(1);
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);
}

// Gate verdicts reach DescribeEvents as they happen: with the RDB stream held part way by the
// proxy, the events already list the preflight and quiesce gates, and nothing of the destroy;
// once the stream is let go the delete finishes and its remaining gates follow.
TEST_F(ApiCacheClusterTest, EventsShowGatesWhileTheOperationRuns) {
  proxy_->StallAt(kStallOffset, TcpProxy::kEveryConnection);
  AwsOk({"delete-cache-cluster", "--cache-cluster-id", kCluster, "--final-snapshot-identifier",
         kFinal},
        "DeleteCacheCluster");
  ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, kDeadline)) << serve_->Log();
  std::vector<std::string> events = EventMessages("cache-cluster", kCluster);
  EXPECT_TRUE(AnyContains(events, "Gate target-resolved (preflight) passed"))
      << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Gate snapshot-name-free (preflight) passed"))
      << json(events).dump(1);
  EXPECT_TRUE(AnyContains(events, "Gate writes-paused (quiesce) passed")) << json(events).dump(1);
  EXPECT_FALSE(AnyContains(events, "Gate rdb-complete")) << json(events).dump(1);
  EXPECT_FALSE(AnyContains(events, "Gate nodes-shutdown")) << json(events).dump(1);
  proxy_->Resume();
  WaitUntil([&] { return SnapshotStatus(kFinal) == "available"; }, "the snapshot to be available");
  EXPECT_TRUE(server_.WaitForExit(kDeadline).has_value()) << "the node still runs";
  WaitUntil(
      [&] { return AnyContains(EventMessages("cache-cluster", kCluster), "Gate nodes-shutdown"); },
      "the destroy's gate to be listed");
  // Each verdict is listed once: the live ones are not repeated when the operation ends.
  events = EventMessages("cache-cluster", kCluster);
  size_t paused = 0;
  for (const std::string& e : events) paused += e.find("Gate writes-paused") != std::string::npos;
  EXPECT_EQ(paused, 1u) << json(events).dump(1);
}

// A node that accepts connections but never answers delays only the requests about it: while
// four DescribeCacheClusters of it (as many as the server's node threads) wait on its command
// timeout, DescribeSnapshots and DescribeEvents are answered, and so is a describe of the other
// cluster once one of those threads is free again.
TEST_F(ApiCacheClusterTest, ANodeThatNeverAnswersDelaysOnlyItsOwnAnswers) {
  TcpProxy silent(server_.host(), server_.port());
  silent.StallAt(0, TcpProxy::kEveryConnection);  // accepts, forwards nothing back
  ASSERT_EQ(serve_->Stop(SIGTERM), 0) << serve_->Log();
  WriteFleet(std::string("[cache_clusters.") + kCluster + "]\nendpoint = \"127.0.0.1:" +
             std::to_string(proxy_->port()) + "\"\n\n[cache_clusters.silent]\n" +
             "endpoint = \"127.0.0.1:" + std::to_string(silent.port()) +
             "\"\ncommand_timeout_ms = 15000\n");
  StartServe();

  std::atomic<int> silent_answers{0};
  std::vector<std::thread> stuck;
  for (int i = 0; i < 4; ++i) {
    stuck.emplace_back([&] {
      Aws({"describe-cache-clusters", "--cache-cluster-id", "silent"});
      ++silent_answers;
    });
  }
  ASSERT_TRUE(silent.WaitFor([&] { return silent.stalled() >= 4; }, kDeadline))
      << "the four describes did not reach the silent node\n"
      << serve_->Log();
  const json snapshots = AwsOk({"describe-snapshots"}, "DescribeSnapshots");
  EXPECT_TRUE(snapshots.contains("Snapshots")) << snapshots.dump();
  EventMessages("cache-cluster", kCluster);
  EXPECT_EQ(silent_answers.load(), 0)
      << "storage and events waited behind the describes of a node that never answers";
  for (std::thread& t : stuck) t.join();
  EXPECT_EQ(silent_answers.load(), 4);
  const json doc =
      AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster}, "DescribeCacheClusters");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available") << doc.dump(1);
  silent.Resume();
}

// The CLI's reproduction, through the real aws CLI: a name parameter sent empty or blank (an
// unset variable in a script) is refused with InvalidParameterValue, and the node keeps running
// with its data; nothing is stored and no operation starts.
TEST_F(ApiCacheClusterTest, EmptyOrBlankNamesAreRefusedAndTheNodeKeepsItsData) {
  for (const std::string blank : {"", " ", "\t"}) {
    SCOPED_TRACE("value '" + blank + "'");
    ExpectAwsError(Aws({"delete-cache-cluster", "--cache-cluster-id", kCluster,
                        "--final-snapshot-identifier", blank}),
                   "InvalidParameterValue", "DeleteCacheCluster");
    ExpectAwsError(Aws({"delete-cache-cluster", "--cache-cluster-id", blank}),
                   "InvalidParameterValue", "DeleteCacheCluster");
    ExpectAwsError(Aws({"delete-replication-group", "--replication-group-id", blank,
                        "--final-snapshot-identifier", kFinal}),
                   "InvalidParameterValue", "DeleteReplicationGroup");
    ExpectAwsError(
        Aws({"create-snapshot", "--cache-cluster-id", kCluster, "--snapshot-name", blank}),
        "InvalidParameterValue", "CreateSnapshot");
    ExpectAwsError(Aws({"delete-snapshot", "--snapshot-name", blank}), "InvalidParameterValue",
                   "DeleteSnapshot");
    ExpectAwsError(Aws({"describe-cache-clusters", "--cache-cluster-id", blank}),
                   "InvalidParameterValue", "DescribeCacheClusters");
    ExpectAwsError(Aws({"describe-snapshots", "--snapshot-name", blank}), "InvalidParameterValue",
                   "DescribeSnapshots");
  }
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);
  EXPECT_TRUE(server_.Command("SET", "probe", "1").ok());
  EXPECT_FALSE(StorageHas(kFinal));
  const json doc = AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster},
                         "DescribeCacheClusters");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available");
}

// Unsigned, wrongly signed, unknown-key, tampered and stale requests are refused with AWS's
// codes and never reach an operation; then the documentation's GET, signed, does the delete.
TEST_F(ApiCacheClusterTest, OnlyValidSignaturesReachAnOperation) {
  const std::vector<std::string> del = {"delete-cache-cluster", "--cache-cluster-id", kCluster,
                                        "--final-snapshot-identifier", kFinal};
  std::vector<std::string> unsigned_del = del;
  unsigned_del.push_back("--no-sign-request");
  ExpectAwsError(Aws(unsigned_del), "MissingAuthenticationToken", "DeleteCacheCluster");
  ExpectAwsError(Aws(del, kAccessKey, "not-the-secret"), "SignatureDoesNotMatch",
                 "DeleteCacheCluster");
  ExpectAwsError(Aws(del, "AKIDUNKNOWN", kSecret), "InvalidClientTokenId", "DeleteCacheCluster");

  const json page_params = json::array(
      {json::array({"Action", "DeleteCacheCluster"}), json::array({"CacheClusterId", kCluster}),
       json::array({"FinalSnapshotIdentifier", kFinal}), json::array({"Version", "2015-02-02"}),
       json::array({"SignatureVersion", "4"}), json::array({"SignatureMethod", "HmacSHA256"}),
       json::array({"Timestamp", "20150202T192317Z"})});
  json raw = Raw(json::array({
      // Signed, then the final snapshot dropped: it would delete without a backup.
      {{"name", "tampered-post"},
       {"params", page_params},
       {"tamper", json::array({json::array({"FinalSnapshotIdentifier", nullptr})})},
       {"validate", "DeleteCacheCluster"}},
      {{"name", "tampered-get"},
       {"method", "GET"},
       {"auth", "query"},
       {"params", page_params},
       {"tamper", json::array({json::array({"CacheClusterId", "otherCluster"})})},
       {"validate", "DeleteCacheCluster"}},
      {{"name", "stale"},
       {"params", page_params},
       {"skew_seconds", -20 * 60},
       {"validate", "DeleteCacheCluster"}},
      {{"name", "future"},
       {"params", page_params},
       {"skew_seconds", 20 * 60},
       {"validate", "DeleteCacheCluster"}},
      {{"name", "expired-presigned"},
       {"method", "GET"},
       {"auth", "query"},
       {"expires", 60},
       {"skew_seconds", -120},
       {"params", page_params},
       {"validate", "DeleteCacheCluster"}},
      // The page's URL as printed, with X-Amz-Credential=<credential> and no signature.
      {{"name", "page-url-unsigned"},
       {"method", "GET"},
       {"auth", "none"},
       {"params", [&] {
          json p = page_params;
          p.push_back(json::array({"X-Amz-Credential", "<credential>"}));
          return p;
        }()},
       {"validate", "DeleteCacheCluster"}},
      {{"name", "wrong-secret-file-key"},
       {"access_key", kFileAccessKey},
       {"secret", kSecret},
       {"params", page_params},
       {"validate", "DeleteCacheCluster"}},
  }));
  ASSERT_EQ(raw.size(), 7u);
  const std::vector<std::pair<int, std::string>> expected = {
      {403, "SignatureDoesNotMatch"}, {403, "SignatureDoesNotMatch"},
      {400, "RequestExpired"},        {400, "RequestExpired"},
      {400, "RequestExpired"},        {403, "MissingAuthenticationToken"},
      {403, "SignatureDoesNotMatch"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(raw[i]["status"], expected[i].first) << raw[i].dump(1);
    EXPECT_NE(raw[i]["body"].get<std::string>().find("<Code>" + expected[i].second + "</Code>"),
              std::string::npos)
        << raw[i].dump(1);
  }

  // Nothing reached an operation: no event, no snapshot, the node untouched and writable.
  const json events = AwsOk({"describe-events"}, "DescribeEvents");
  EXPECT_EQ(events["Events"], json::array()) << events.dump(1);
  EXPECT_FALSE(StorageHas(kFinal));
  EXPECT_TRUE(AnswersAndWritable(server_));
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);

  // The second key (its secret from a file) works, through the aws CLI.
  const ProcessResult with_file_key =
      Aws({"describe-cache-clusters", "--cache-cluster-id", kCluster}, kFileAccessKey, kFileSecret);
  EXPECT_EQ(with_file_key.exit_code, 0) << with_file_key.Describe();

  // The documentation's GET, presigned: answered at once, then the delete completes.
  raw = Raw(json::array({{{"name", "page-get"},
                          {"method", "GET"},
                          {"auth", "query"},
                          {"params", page_params},
                          {"validate", "DeleteCacheCluster"}},
                         {{"name", "page-get-describe"},
                          {"method", "GET"},
                          {"auth", "query"},
                          {"params", json::array({json::array({"Action", "DescribeSnapshots"}),
                                                  json::array({"Version", "2015-02-02"})})},
                          {"validate", "DescribeSnapshots"}}}));
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_EQ(raw[0]["status"], 200) << raw[0].dump(1);
  EXPECT_NE(
      raw[0]["body"].get<std::string>().find("<CacheClusterStatus>deleting</CacheClusterStatus>"),
      std::string::npos)
      << raw[0].dump(1);
  EXPECT_EQ(raw[1]["status"], 200) << raw[1].dump(1);
  WaitUntil([&] { return SnapshotStatus(kFinal) == "available"; }, "the snapshot to be available");
  EXPECT_TRUE(server_.WaitForExit(kDeadline).has_value()) << "the node still runs";
}

// A SIGTERM while an operation runs: the server stops taking requests, the operation stops at a
// safe point (the node unpaused and put back, nothing shut down, no snapshot), the server exits
// 0. After a restart the events say so. After a SIGKILL (a crash) the operation is reported as
// interrupted with an unknown outcome, never as done, and the node is writable again once its
// pause lapses.
TEST_F(ApiCacheClusterTest, StateSurvivesARestartAndInterruptedIsNeverDone) {
  proxy_->StallAt(kStallOffset, TcpProxy::kEveryConnection);
  json doc = AwsOk({"delete-cache-cluster", "--cache-cluster-id", kCluster,
                    "--final-snapshot-identifier", kFinal},
                   "DeleteCacheCluster");
  EXPECT_EQ(doc["CacheCluster"]["CacheClusterStatus"], "deleting");
  ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, kDeadline)) << serve_->Log();

  EXPECT_EQ(serve_->Stop(SIGTERM), 0) << serve_->Log();
  const std::string log = serve_->Log();
  EXPECT_NE(log.find("SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("ended: Interrupted"), std::string::npos) << log;
  EXPECT_TRUE(AnswersAndWritable(server_)) << "the node must be running and unpaused";
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);
  EXPECT_FALSE(StorageHas(kFinal));

  StartServe();
  std::vector<std::string> events = EventMessages("cache-cluster", kCluster);
  EXPECT_TRUE(AnyContains(
      events, "DeleteCacheCluster of cache cluster " + std::string(kCluster) + " was interrupted"))
      << json(events).dump(1);
  EXPECT_FALSE(AnyContains(events, "deleted after")) << json(events).dump(1);
  doc = AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster}, "DescribeCacheClusters");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available") << doc.dump(1);
  ExpectAwsError(Aws({"describe-snapshots", "--snapshot-name", kFinal}), "SnapshotNotFoundFault",
                 "DescribeSnapshots");

  // Again, and this time the server is killed outright.
  doc = AwsOk({"delete-cache-cluster", "--cache-cluster-id", kCluster,
               "--final-snapshot-identifier", kFinal},
              "DeleteCacheCluster");
  ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalls() >= 2; }, kDeadline)) << serve_->Log();
  EXPECT_EQ(serve_->Stop(SIGKILL), 128 + SIGKILL);
  StartServe();
  EXPECT_NE(serve_->Log().find("recovered:"), std::string::npos) << serve_->Log();
  events = EventMessages("cache-cluster", kCluster);
  EXPECT_TRUE(AnyContains(events, "its outcome is unknown")) << json(events).dump(1);
  EXPECT_FALSE(AnyContains(events, "deleted after")) << json(events).dump(1);
  doc = AwsOk({"describe-cache-clusters", "--cache-cluster-id", kCluster}, "DescribeCacheClusters");
  EXPECT_EQ(doc["CacheClusters"][0]["CacheClusterStatus"], "available") << doc.dump(1);
  // The abandoned partial snapshot is gone, and the name is free again.
  ExpectAwsError(Aws({"describe-snapshots", "--snapshot-name", kFinal}), "SnapshotNotFoundFault",
                 "DescribeSnapshots");
  // The pause the dead server held lapses by itself (pause_timeout_ms = 3000).
  proxy_->Resume();
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!AnswersAndWritable(server_) && std::chrono::steady_clock::now() < until) {
  }
  EXPECT_TRUE(AnswersAndWritable(server_));
  EXPECT_EQ(server_.Command("DBSIZE").integer, dbsize_);
}

// A primary and a replica, the replica replicating through the proxy so that the fleet's
// endpoint (the proxy) is the address the replica names as its primary.
class ApiReplicationGroupTest : public ApiTestBase {
 protected:
  void SetUp() override {
    primary_.Start();
    ASSERT_TRUE(primary_.Command("DEBUG", "POPULATE", 20000, "key", 64).ok());
    dbsize_ = primary_.Command("DBSIZE").integer;
    proxy_ = std::make_unique<TcpProxy>(primary_.host(), primary_.port());
    proxy_->set_mirror_refusal(true);
    replica_.Start();
    ASSERT_TRUE(replica_.Command("REPLICAOF", "127.0.0.1", proxy_->port()).ok());
    // (WaitForReplicasLinked expects the replica to name the primary's own port, not the proxy.)
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    for (;;) {
      const bool linked = replica_.Info("replication")["master_link_status"] == "up";
      const std::string line = primary_.Info("replication")["slave0"];
      if (linked && line.find("state=online") != std::string::npos) break;
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "the replica did not link: " << line;
      std::this_thread::sleep_for(milliseconds(20));
    }
    WriteFleet(std::string("[replication_groups.") + kGroup +
               "]\nendpoints = [\"127.0.0.1:" + std::to_string(proxy_->port()) + "\"]\n");
    StartServe();
  }

  void TearDown() override {
    if (proxy_) proxy_->Resume();
    ApiTestBase::TearDown();
  }

  RedisServer primary_{{{"repl-diskless-sync-delay", "0"}}};
  RedisServer replica_{{{"repl-diskless-sync-delay", "0"}}};
  long long dbsize_ = 0;
  std::unique_ptr<TcpProxy> proxy_;
};

// The documentation's delete-replication-group command: "deleting" at once and while the
// capture runs (a second delete is InvalidReplicationGroupState), the final snapshot "creating"
// then "available", the group listed until it is gone (then ReplicationGroupNotFoundFault), and
// both nodes shut down.
TEST_F(ApiReplicationGroupTest, PageCommandDeletesTheGroupWithAFinalSnapshot) {
  json doc = AwsOk({"describe-replication-groups", "--replication-group-id", kGroup},
                   "DescribeReplicationGroups");
  ASSERT_EQ(doc["ReplicationGroups"].size(), 1u) << doc.dump(1);
  EXPECT_EQ(doc["ReplicationGroups"][0]["Status"], "available") << doc.dump(1);
  EXPECT_EQ(doc["ReplicationGroups"][0]["MemberClusters"].size(), 2u) << doc.dump(1);
  const json xml = Raw(
      json::array({{{"name", "groups"},
                    {"params", json::array({json::array({"Action", "DescribeReplicationGroups"}),
                                            json::array({"Version", "2015-02-02"})})},
                    {"validate", "DescribeReplicationGroups"}}}));
  ASSERT_EQ(xml.size(), 1u);
  EXPECT_EQ(xml[0]["status"], 200) << xml[0];
  EXPECT_NE(xml[0]["body"].get<std::string>().find("<NodeGroupMember>"), std::string::npos)
      << xml[0];

  // The replica's own connection through the proxy is older than the stall: it keeps flowing.
  proxy_->StallAt(kStallOffset, TcpProxy::kEveryConnection);
  doc = AwsOk({"delete-replication-group", "--replication-group-id", kGroup,
               "--final-snapshot-identifier", kFinal},
              "DeleteReplicationGroup");
  EXPECT_EQ(doc["ReplicationGroup"]["ReplicationGroupId"], kGroup);
  EXPECT_EQ(doc["ReplicationGroup"]["Status"], "deleting");
  ASSERT_TRUE(proxy_->WaitFor([&] { return proxy_->stalled() > 0; }, kDeadline)) << serve_->Log();

  ExpectAwsError(Aws({"delete-replication-group", "--replication-group-id", kGroup}),
                 "InvalidReplicationGroupState", "DeleteReplicationGroup");
  doc = AwsOk({"describe-replication-groups", "--replication-group-id", kGroup},
              "DescribeReplicationGroups");
  EXPECT_EQ(doc["ReplicationGroups"][0]["Status"], "deleting") << doc.dump(1);
  EXPECT_EQ(SnapshotStatus(kFinal), "creating");

  proxy_->Resume();
  WaitUntil([&] { return SnapshotStatus(kFinal) == "available"; }, "the snapshot to be available");
  WaitUntil(
      [&] {
        const ProcessResult r =
            Aws({"describe-replication-groups", "--replication-group-id", kGroup});
        if (r.exit_code == 0) return false;
        ExpectAwsError(r, "ReplicationGroupNotFoundFault", "DescribeReplicationGroups");
        return true;
      },
      "the group to be gone");
  EXPECT_TRUE(primary_.WaitForExit(kDeadline).has_value()) << "the primary still runs";
  EXPECT_TRUE(replica_.WaitForExit(kDeadline).has_value()) << "the replica still runs";
  const ProcessResult verify =
      RunCommand({FINALSNAP_CLI, "--fleet", fleet_path(), "verify", kFinal});
  EXPECT_EQ(verify.exit_code, 0) << verify.Describe();
  doc = AwsOk({"describe-snapshots", "--replication-group-id", kGroup}, "DescribeSnapshots");
  ASSERT_EQ(doc["Snapshots"].size(), 1u) << doc.dump(1);
  EXPECT_EQ(doc["Snapshots"][0]["ReplicationGroupId"], kGroup);
  const std::vector<std::string> events = EventMessages("replication-group", kGroup);
  EXPECT_TRUE(AnyContains(events, "Replication group " + std::string(kGroup) + " deleted"))
      << json(events).dump(1);
}

// RetainPrimaryCluster: only the replica goes; the primary keeps running, writable.
TEST_F(ApiReplicationGroupTest, RetainPrimaryClusterKeepsThePrimary) {
  json doc = AwsOk(
      {"delete-replication-group", "--replication-group-id", kGroup, "--retain-primary-cluster"},
      "DeleteReplicationGroup");
  EXPECT_EQ(doc["ReplicationGroup"]["Status"], "deleting");
  WaitUntil(
      [&] {
        const ProcessResult r =
            Aws({"describe-replication-groups", "--replication-group-id", kGroup});
        return r.exit_code != 0 &&
               r.stderr_text.find("ReplicationGroupNotFoundFault") != std::string::npos;
      },
      "the group to be gone");
  EXPECT_TRUE(replica_.WaitForExit(kDeadline).has_value()) << "the replica still runs";
  EXPECT_TRUE(AnswersAndWritable(primary_));
  EXPECT_EQ(primary_.Command("DBSIZE").integer, dbsize_);
}

}  // namespace
}  // namespace finalsnap
