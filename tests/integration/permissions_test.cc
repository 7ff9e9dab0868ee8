// Integration tests of the `permissions` and `target-claimed` preflight gates (engine/ops/
// permissions.cc, claim.cc) against real redis-server, redis-sentinel and Redis Cluster nodes.
//
// The ACL user is exactly the one README.md gives ("The ACL user"): its `redis-cli ACL SETUSER
// snapshotter ...` line is read from README.md and sent to every node, so that the recipe and
// what finalsnap needs cannot drift apart. With it every operation type succeeds: a standalone
// node's create-snapshot (sync and bgsave-file) and delete-cache-cluster, a primary+replica
// group's delete, a Redis Cluster's delete and a Sentinel-discovered group's delete.
//
// Refusals: the README user without +shutdown is refused at `permissions` (NOPERM, SHUTDOWN and
// the node named) before the node was ever paused or reconfigured (INFO commandstats shows no
// successful CLIENT PAUSE or CONFIG SET; CONFIG GET *, the data and a write are as before), with
// and without --dry-run, with ACL DRYRUN and through the probes. Without +role, +cluster|info or
// CLIENT SETNAME the refusal is a NOPERM naming that command, never a topology complaint.
//
// target-claimed: a second operation on a node whose first operation is held mid-stream (a TCP
// proxy holds the RDB) is refused with the first's claim id and address, from another storage,
// and the first completes; a foreign claim refuses even a dry run.
//
// A missing redis-server or redis-sentinel fails these tests; it never skips them.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"
#include "support/operation_checks.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/tcp_proxy.h"
#include "support/temp_dir.h"

namespace finalsnap::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr char kPasswordEnv[] = "FINALSNAP_PERMISSIONS_TEST_PW";
constexpr char kPassword[] = "perm-test-pw-0123456789";
constexpr char kUser[] = "snapshotter";

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const GateVerdict* Gate(const OperationResult& r, const std::string& name) {
  for (const GateVerdict& g : r.gates) {
    if (g.gate == name) return &g;
  }
  return nullptr;
}

void ExpectSucceeded(const OperationResult& r) {
  ASSERT_TRUE(r.ok) << Describe(r);
  for (const GateVerdict& g : r.gates) EXPECT_TRUE(g.passed) << g.gate << ": " << g.evidence;
  const GateVerdict* perms = Gate(r, "permissions");
  ASSERT_NE(perms, nullptr) << Describe(r);
  EXPECT_TRUE(Has(perms->evidence, "ACL DRYRUN as snapshotter")) << perms->evidence;
  EXPECT_FALSE(Has(perms->evidence, "unchecked")) << perms->evidence;
  const GateVerdict* claimed = Gate(r, "target-claimed");
  ASSERT_NE(claimed, nullptr) << Describe(r);
  EXPECT_TRUE(Has(claimed->evidence, "claimed as finalsnap:")) << claimed->evidence;
}

// The README's `redis-cli ACL SETUSER snapshotter ...` command (its continuation lines joined,
// the shell's quotes removed), as the argv to send, with the test's password; and the extra
// rules its next comment line names for bgsave-file.
struct ReadmeUser {
  std::vector<std::string> setuser;
  std::vector<std::string> bgsave_extra;
};

ReadmeUser ParseReadmeUser() {
  std::ifstream in(std::string(FINALSNAP_SOURCE_DIR) + "/README.md");
  if (!in) throw std::runtime_error("cannot read README.md");
  ReadmeUser user;
  std::string line, command;
  bool in_command = false;
  while (std::getline(in, line)) {
    if (!in_command && line.rfind("redis-cli ACL SETUSER snapshotter ", 0) == 0) in_command = true;
    if (in_command) {
      const bool more = !line.empty() && line.back() == '\\';
      command += " " + (more ? line.substr(0, line.size() - 1) : line);
      if (!more) {
        in_command = false;
        // The next line names what bgsave-file adds.
        if (std::getline(in, line)) {
          const size_t at = line.find("needs:");
          if (line.rfind("# capture = \"bgsave-file\"", 0) == 0 && at != std::string::npos) {
            std::istringstream words(line.substr(at + 6));
            for (std::string w; words >> w;) user.bgsave_extra.push_back(w);
          }
        }
        break;
      }
    }
  }
  std::istringstream words(command);
  for (std::string w; words >> w;) {
    w.erase(std::remove(w.begin(), w.end(), '\''), w.end());
    if (w == "redis-cli") continue;
    if (w == ">PASSWORD") w = std::string(">") + kPassword;
    user.setuser.push_back(w);
  }
  if (user.setuser.size() < 4 || user.setuser[0] != "ACL" || user.setuser[2] != kUser) {
    throw std::runtime_error("README.md has no `redis-cli ACL SETUSER snapshotter ...` line");
  }
  if (user.bgsave_extra.empty()) {
    throw std::runtime_error("README.md does not say what bgsave-file adds to the ACL user");
  }
  return user;
}

// The README user's rules, without `drop` and with `add`.
std::vector<std::string> UserArgv(const std::vector<std::string>& drop = {},
                                  const std::vector<std::string>& add = {}) {
  const ReadmeUser readme = ParseReadmeUser();
  std::vector<std::string> argv;
  for (const std::string& w : readme.setuser) {
    if (std::find(drop.begin(), drop.end(), w) == drop.end()) argv.push_back(w);
  }
  argv.insert(argv.end(), add.begin(), add.end());
  return argv;
}

// (Re)creates the user on `node` from scratch with these rules.
void SetUser(RedisServer& node, const std::vector<std::string>& argv) {
  node.Command("ACL", "DELUSER", kUser);
  const Reply r = node.CommandArgv(argv);
  ASSERT_TRUE(r.ok()) << "port " << node.port() << ": " << r.ToString();
}

void SetUserEverywhere(const std::vector<RedisServer*>& nodes,
                       const std::vector<std::string>& argv) {
  for (RedisServer* n : nodes) SetUser(*n, argv);
}

// Successful calls of `command` ("client|pause") since the last CONFIG RESETSTAT: calls that
// did not fail (a probe's bad argument fails; a refused call is not a call).
long SuccessfulCalls(RedisServer& node, const std::string& command) {
  const auto stats = node.Info("commandstats");
  auto it = stats.find("cmdstat_" + command);
  if (it == stats.end()) return 0;
  const auto fields = ParseInfoFields(it->second);
  auto number = [&fields](const char* k) {
    auto f = fields.find(k);
    return f == fields.end() ? 0L : std::stol(f->second);
  };
  return number("calls") - number("failed_calls");
}

// What must hold for a node that an operation refused at preflight: nothing was ever paused or
// set, the data and the config are as they were, and it takes writes.
struct Untouched {
  std::string digest;
  std::map<std::string, std::string> config;

  static Untouched Of(RedisServer& node) {
    Untouched u;
    u.digest = node.Command("DEBUG", "DIGEST").str;
    const Reply config = node.Command("CONFIG", "GET", "*");
    for (size_t i = 0; i + 1 < config.elements.size(); i += 2) {
      u.config[config.elements[i].str] = config.elements[i + 1].str;
    }
    node.Command("CONFIG", "RESETSTAT");
    return u;
  }

  void Expect(RedisServer& node) const {
    ASSERT_TRUE(node.Running()) << "port " << node.port() << " was shut down";
    for (const char* c : {"client|pause", "config|set", "shutdown", "psync", "bgsave"}) {
      EXPECT_EQ(SuccessfulCalls(node, c), 0) << c << " ran on port " << node.port();
    }
    EXPECT_EQ(node.Command("DEBUG", "DIGEST").str, digest);
    const Untouched now = Of(node);
    EXPECT_EQ(now.config, config) << "port " << node.port() << ": config changed";
    RedisContextPtr c = node.Connect(milliseconds(1000));
    const Reply w = Execute(c.get(), {"SET", "perm-probe", "1"});
    // A replica answers READONLY at once: it too is not held by a pause.
    EXPECT_TRUE(w.ok() || w.str.rfind("READONLY", 0) == 0)
        << "port " << node.port() << " takes no write: " << w.ToString();
    Execute(c.get(), {"DEL", "perm-probe"});
  }
};

class PermissionsTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv(kPasswordEnv, kPassword, 1); }

  static std::string Endpoints(const std::vector<RedisServer*>& nodes) {
    std::string list;
    for (RedisServer* s : nodes) {
      list += (list.empty() ? "\"" : ", \"") + std::string("127.0.0.1:") +
              std::to_string(s->port()) + "\"";
    }
    return list;
  }

  // A fleet whose [defaults] authenticate as the README user; `body` holds the targets.
  Fleet MakeFleet(const std::string& body, const std::string& storage = "snapshots") {
    const std::string text = "[storage]\npath = \"" + (dir_.path() / storage).string() +
                             "\"\n[defaults]\nusername = \"" + kUser + "\"\npassword_env = \"" +
                             kPasswordEnv + "\"\ntransfer_timeout_ms = 60000\n" + body;
    auto parsed = ParseFleet(text, dir_.path() / "finalsnap.toml");
    if (!parsed.ok()) throw std::runtime_error(parsed.error().ToString());
    return *parsed;
  }

  Fleet StandaloneFleet(int port, const std::string& extra = "",
                        const std::string& storage = "snapshots") {
    return MakeFleet(
        "[cache_clusters.c1]\nendpoint = \"127.0.0.1:" + std::to_string(port) + "\"\n" + extra,
        storage);
  }

  Fleet GroupFleet(const std::vector<RedisServer*>& endpoints, const std::string& extra = "") {
    return MakeFleet("[replication_groups.g1]\nendpoints = [" + Endpoints(endpoints) + "]\n" +
                     extra);
  }

  std::vector<std::string> StorageEntries(const std::string& storage = "snapshots") {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() / storage, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind('.', 0) != 0) names.push_back(n);
    }
    return names;
  }

  TempDir dir_{"finalsnap-permissions"};
};

void ExpectGone(RedisServer& s) {
  EXPECT_TRUE(s.WaitForExit(milliseconds(10'000)).has_value()) << "port " << s.port() << " runs";
}

// A refusal at `gate` whose message says NOPERM and names `command` and `node`.
void ExpectNoPerm(const OperationResult& r, const std::string& command, RedisServer& node,
                  const std::string& fault) {
  EXPECT_FALSE(r.ok) << Describe(r);
  EXPECT_EQ(r.failed_gate, "permissions") << Describe(r);
  EXPECT_EQ(r.fault, fault) << Describe(r);
  EXPECT_TRUE(Has(r.message, "NOPERM")) << r.message;
  EXPECT_TRUE(Has(r.message, command))
      << "the message does not name " << command << ": " << r.message;
  EXPECT_TRUE(Has(r.message, "127.0.0.1:" + std::to_string(node.port()))) << r.message;
  EXPECT_FALSE(r.snapshot.has_value()) << Describe(r);
  ASSERT_FALSE(r.gates.empty());
  EXPECT_EQ(r.gates.back().gate, "permissions");
  EXPECT_FALSE(r.gates.back().passed);
}

// --- Standalone ---------------------------------------------------------------------------------

TEST_F(PermissionsTest, ReadmeUserRunsCreateSnapshotAndDeleteOnAStandaloneNode) {
  const ReadmeUser readme = ParseReadmeUser();
  RedisServer server;
  server.Start();
  ASSERT_TRUE(server.Command("DEBUG", "POPULATE", 2000, "key", 32).ok());
  SetUser(server, UserArgv({}, readme.bgsave_extra));
  const std::string digest = server.Command("DEBUG", "DIGEST").str;

  const Fleet fleet = StandaloneFleet(server.port());
  ExpectSucceeded(CreateSnapshot(fleet, "c1", "nightly"));
  const Fleet bgsave = StandaloneFleet(server.port(), "capture = \"bgsave-file\"\n");
  ExpectSucceeded(CreateSnapshot(bgsave, "c1", "nightly-bgsave"));
  EXPECT_EQ(server.Command("DEBUG", "DIGEST").str, digest);

  const OperationResult del = DeleteCacheCluster(fleet, "c1", std::string("c1-final"));
  ExpectSucceeded(del);
  ExpectGone(server);
  std::vector<std::string> stored = StorageEntries();
  std::sort(stored.begin(), stored.end());
  EXPECT_EQ(stored, (std::vector<std::string>{"c1-final", "nightly", "nightly-bgsave"}));
}

TEST_F(PermissionsTest, WithoutShutdownTheDeleteIsRefusedBeforeAnyPause) {
  RedisServer server;
  server.Start();
  ASSERT_TRUE(server.Command("DEBUG", "POPULATE", 2000, "key", 32).ok());
  // Values a capture would change, so that a change would show.
  ASSERT_TRUE(server.Command("CONFIG", "SET", "rdbcompression", "yes").ok());
  ASSERT_TRUE(server.Command("CONFIG", "SET", "repl-diskless-sync-delay", "3").ok());
  const Fleet fleet = StandaloneFleet(server.port());
  // With ACL DRYRUN, then without it (the probes), each as a real run and as a dry run.
  for (const bool dryrun_allowed : {true, false}) {
    std::vector<std::string> drop = {"+shutdown"};
    if (!dryrun_allowed) drop.push_back("+acl|dryrun");
    SetUser(server, UserArgv(drop));
    for (const bool dry_run : {false, true}) {
      SCOPED_TRACE(std::string(dryrun_allowed ? "ACL DRYRUN" : "probes") +
                   (dry_run ? ", --dry-run" : ""));
      const Untouched before = Untouched::Of(server);
      OperationOptions options;
      options.dry_run = dry_run;
      const OperationResult r = DeleteCacheCluster(fleet, "c1", std::string("fin"), options);
      ExpectNoPerm(r, "SHUTDOWN", server, "InvalidCacheClusterState");
      EXPECT_TRUE(Has(Lower(r.message), "'shutdown'")) << r.message;
      before.Expect(server);
      EXPECT_TRUE(StorageEntries().empty());
    }
  }
  // create-snapshot sends no SHUTDOWN: the same user may take snapshots.
  SetUser(server, UserArgv({"+shutdown"}));
  const OperationResult snap = CreateSnapshot(fleet, "c1", "s1");
  ExpectSucceeded(snap);
}

TEST_F(PermissionsTest, WithoutAclDryrunProbesCheckAndUncheckedIsNeverPassed) {
  RedisServer server;
  server.Start();
  ASSERT_TRUE(server.Command("DEBUG", "POPULATE", 500, "key", 32).ok());
  SetUser(server, UserArgv({"+acl|dryrun"}));
  const OperationResult r = CreateSnapshot(StandaloneFleet(server.port()), "c1", "s1");
  ASSERT_TRUE(r.ok) << Describe(r);
  const GateVerdict* perms = Gate(r, "permissions");
  ASSERT_NE(perms, nullptr);
  EXPECT_TRUE(Has(perms->evidence, "probes (ACL DRYRUN: NOPERM")) << perms->evidence;
  // CLIENT UNPAUSE has no harmless probe: it is listed as unchecked, not as allowed.
  EXPECT_TRUE(Has(perms->evidence, "unchecked: CLIENT UNPAUSE")) << perms->evidence;
  const std::string allowed = perms->evidence.substr(0, perms->evidence.find("unchecked"));
  EXPECT_FALSE(Has(allowed, "CLIENT UNPAUSE")) << perms->evidence;
  EXPECT_TRUE(Has(allowed, "PSYNC")) << perms->evidence;
  EXPECT_TRUE(Has(allowed, "CLIENT PAUSE")) << perms->evidence;
  EXPECT_TRUE(server.Running());
}

TEST_F(PermissionsTest, WithoutRoleTheRefusalIsANoPermNamingRole) {
  RedisServer server;
  server.Start();
  SetUser(server, UserArgv({"+role"}));
  const Untouched before = Untouched::Of(server);
  const OperationResult r = CreateSnapshot(StandaloneFleet(server.port()), "c1", "s1");
  ExpectNoPerm(r, "ROLE", server, "InvalidCacheClusterState");
  before.Expect(server);
}

TEST_F(PermissionsTest, WithoutClientSetnameTheClaimIsRefusedAsNoPerm) {
  RedisServer server;
  server.Start();
  SetUser(server, UserArgv({"+client|setname"}));
  const OperationResult r = DeleteCacheCluster(StandaloneFleet(server.port()), "c1", std::nullopt);
  ExpectNoPerm(r, "CLIENT SETNAME", server, "InvalidCacheClusterState");
  EXPECT_TRUE(server.Running());
}

// --- Replication group, Sentinel ---------------------------------------------------------------

TEST_F(PermissionsTest, GroupRefusesNoPermsAndTheReadmeUserDeletesIt) {
  ReplicationGroupFixture group(ReplicationGroupOptions{.replicas = 1});
  group.Start();
  ASSERT_TRUE(group.primary().Command("DEBUG", "POPULATE", 2000, "key", 32).ok());
  group.WaitForReplicasCaughtUp();
  const Fleet fleet = GroupFleet({&group.primary()});

  // Without +role: the primary's ROLE is refused, and said so (not "lists no replicas").
  SetUserEverywhere(group.nodes(), UserArgv({"+role"}));
  {
    const OperationResult r = DeleteReplicationGroup(fleet, "g1", std::string("g-final"), false);
    ExpectNoPerm(r, "ROLE", group.primary(), "InvalidReplicationGroupStateFault");
    EXPECT_FALSE(Has(r.message, "lists")) << r.message;
  }
  // Without +shutdown: refused before any pause, on both nodes, also as a dry run.
  SetUserEverywhere(group.nodes(), UserArgv({"+shutdown"}));
  for (const bool dry_run : {false, true}) {
    SCOPED_TRACE(dry_run ? "--dry-run" : "real run");
    std::vector<Untouched> before;
    for (RedisServer* n : group.nodes()) before.push_back(Untouched::Of(*n));
    OperationOptions options;
    options.dry_run = dry_run;
    const OperationResult r =
        DeleteReplicationGroup(fleet, "g1", std::string("g-final"), false, options);
    ExpectNoPerm(r, "SHUTDOWN", group.primary(), "InvalidReplicationGroupStateFault");
    EXPECT_TRUE(Has(r.message, "127.0.0.1:" + std::to_string(group.replica(0).port())))
        << "the replica is not named: " << r.message;
    for (size_t i = 0; i < before.size(); ++i) before[i].Expect(*group.nodes()[i]);
    EXPECT_TRUE(StorageEntries().empty());
  }
  // The README user: the whole group goes, replicas first.
  SetUserEverywhere(group.nodes(), UserArgv());
  const OperationResult r = DeleteReplicationGroup(fleet, "g1", std::string("g-final"), false);
  ExpectSucceeded(r);
  for (RedisServer* n : group.nodes()) ExpectGone(*n);
  EXPECT_EQ(StorageEntries(), std::vector<std::string>{"g-final"});
}

TEST_F(PermissionsTest, ReadmeUserDeletesASentinelDiscoveredGroup) {
  ReplicationGroupFixture group(ReplicationGroupOptions{.replicas = 1});
  group.Start();
  SentinelFixture sentinels(group, SentinelOptions{.sentinels = 1});
  sentinels.Start();
  ASSERT_TRUE(group.primary().Command("DEBUG", "POPULATE", 1000, "key", 32).ok());
  group.WaitForReplicasCaughtUp();
  SetUserEverywhere(group.nodes(), UserArgv());
  const Fleet fleet = GroupFleet({&group.replica(0)},
                                 "sentinels = [\"127.0.0.1:" + std::to_string(sentinels.port(0)) +
                                     "\"]\nmaster_name = \"" + sentinels.master_name() + "\"\n");
  const OperationResult r = DeleteReplicationGroup(fleet, "g1", std::string("s-final"), false);
  ExpectSucceeded(r);
  // The sentinel's SENTINEL REMOVE was checked too (as its default user).
  EXPECT_TRUE(Has(Gate(r, "permissions")->evidence, "sentinel 127.0.0.1:"))
      << Gate(r, "permissions")->evidence;
  for (RedisServer* n : group.nodes()) ExpectGone(*n);
  EXPECT_TRUE(sentinels.Command(0, "SENTINEL", "MASTERS").elements.empty());
}

// --- Redis Cluster
// --------------------------------------------------------------------------------

TEST_F(PermissionsTest, ClusterRefusesANoPermOnClusterInfoAndTheReadmeUserDeletesIt) {
  ClusterFixture cluster(ClusterOptions{.shards = 2, .replicas_per_shard = 1});
  cluster.Start();
  for (size_t s = 0; s < cluster.shard_count(); ++s) {
    for (int i = 0; i < 200; ++i) {
      cluster.primary(s).Command("SET", cluster.hash_tag(s) + "k" + std::to_string(i), "v");
    }
  }
  cluster.WaitForReplicasCaughtUp();
  const Fleet fleet = GroupFleet({cluster.replicas(1).at(0)});
  SetUserEverywhere(cluster.nodes(), UserArgv({"+cluster|info"}));
  {
    const OperationResult r = DeleteReplicationGroup(fleet, "g1", std::string("cl-final"), false);
    EXPECT_EQ(r.failed_gate, "permissions") << Describe(r);
    EXPECT_TRUE(Has(r.message, "NOPERM") && Has(r.message, "CLUSTER INFO")) << r.message;
    EXPECT_FALSE(Has(r.message, "cluster_state")) << r.message;
    for (RedisServer* n : cluster.nodes()) EXPECT_TRUE(n->Running());
  }
  SetUserEverywhere(cluster.nodes(), UserArgv());
  const OperationResult r = DeleteReplicationGroup(fleet, "g1", std::string("cl-final"), false);
  ExpectSucceeded(r);
  for (RedisServer* n : cluster.nodes()) ExpectGone(*n);
}

// --- One operation per target -------------------------------------------------------------------

TEST_F(PermissionsTest, ASecondOperationOnATargetInFlightIsRefusedAndTheFirstCompletes) {
  RedisServer server;
  server.Start();
  ASSERT_TRUE(server.Command("DEBUG", "POPULATE", 30000, "key", 64).ok());
  SetUser(server, UserArgv());
  const std::string digest = server.Command("DEBUG", "DIGEST").str;
  // The first operation goes through a proxy that holds its RDB stream (connection 1, after
  // the command connection) 200 KB in; the second reaches the node directly, with its own
  // storage, as another host would.
  TcpProxy proxy(server.host(), server.port());
  proxy.HoldAt(200'000, /*connection=*/1);
  const Fleet first_fleet = StandaloneFleet(proxy.port(), "", "storage-a");
  const Fleet second_fleet = StandaloneFleet(server.port(), "", "storage-b");
  OperationResult first;
  std::thread op([&] { first = CreateSnapshot(first_fleet, "c1", "first"); });
  const bool held = proxy.WaitFor([&] { return proxy.holds() > 0; }, milliseconds(60'000));
  if (!held) {
    proxy.Resume();
    op.join();
    FAIL() << "the first operation's stream was never held\n" << Describe(first);
  }
  const OperationResult second = CreateSnapshot(second_fleet, "c1", "second");
  OperationOptions dry;
  dry.dry_run = true;
  const OperationResult second_dry = DeleteCacheCluster(second_fleet, "c1", std::nullopt, dry);
  proxy.Resume();
  op.join();

  for (const OperationResult* r : {&second, &second_dry}) {
    EXPECT_FALSE(r->ok) << Describe(*r);
    EXPECT_EQ(r->failed_gate, "target-claimed") << Describe(*r);
    EXPECT_EQ(r->fault, "InvalidCacheClusterState") << Describe(*r);
    EXPECT_TRUE(Has(r->message, "finalsnap:")) << r->message;
    EXPECT_TRUE(Has(r->message, "(client 127.0.0.1:")) << r->message;
  }
  // It names the first operation's own claim.
  const GateVerdict* claimed = Gate(first, "target-claimed");
  ASSERT_NE(claimed, nullptr) << Describe(first);
  const size_t at = claimed->evidence.find("finalsnap:");
  ASSERT_NE(at, std::string::npos) << claimed->evidence;
  const std::string first_claim =
      claimed->evidence.substr(at, std::string("finalsnap:").size() + 16);
  EXPECT_TRUE(Has(second.message, first_claim)) << first_claim << " vs " << second.message;
  ExpectSucceeded(first);
  EXPECT_TRUE(StorageEntries("storage-b").empty());
  EXPECT_EQ(server.Command("DEBUG", "DIGEST").str, digest);
  // With the first gone, its claim is gone too.
  ExpectSucceeded(CreateSnapshot(second_fleet, "c1", "second"));
}

TEST_F(PermissionsTest, AForeignClaimIsNamedWithItsAddressAndLapsesWithItsConnection) {
  RedisServer server;
  server.Start();
  SetUser(server, UserArgv());
  const Fleet fleet = StandaloneFleet(server.port());
  std::string address;
  {
    // Another finalsnap, as a node sees it: a client named finalsnap:<id>.
    RedisContextPtr other = server.Connect();
    ASSERT_TRUE(Execute(other.get(), {"CLIENT", "SETNAME", "finalsnap:00000000deadbeef"}).ok());
    const Reply info = Execute(other.get(), {"CLIENT", "INFO"});
    // "id=7 addr=127.0.0.1:41234 laddr=... name=finalsnap:... ...": fields split by spaces.
    const size_t at = info.str.find(" addr=");
    ASSERT_NE(at, std::string::npos) << info.ToString();
    address = info.str.substr(at + 6, info.str.find(' ', at + 6) - (at + 6));
    ASSERT_FALSE(address.empty()) << info.ToString();
    for (const bool dry_run : {true, false}) {
      OperationOptions options;
      options.dry_run = dry_run;
      const OperationResult r = DeleteCacheCluster(fleet, "c1", std::string("fin"), options);
      EXPECT_EQ(r.failed_gate, "target-claimed") << Describe(r);
      EXPECT_EQ(r.fault, "InvalidCacheClusterState");
      EXPECT_TRUE(Has(r.message, "finalsnap:00000000deadbeef (client " + address + ")"))
          << r.message;
      EXPECT_TRUE(server.Running());
    }
  }
  // The other client went away: its claim with it.
  ExpectSucceeded(CreateSnapshot(fleet, "c1", "after"));
}

}  // namespace
}  // namespace finalsnap::testing
