// Tests for the fleet-file loader (fleet.h): endpoints, a complete file read into the structs,
// the defaults overlay, case-insensitive lookup, and every refusal with its line and key
// (fleet_files_test.cc: files on disk, secrets and hostile files).
#include <gtest/gtest.h>

#include "fleet_helpers.h"

namespace finalsnap {
namespace {

using namespace fleet_helpers;  // NOLINT: the shared helpers, as if defined here

// --- Endpoints.

TEST(FleetEndpointTest, ParsesHostPortAndBracketedIpv6) {
  struct Case {
    std::string_view text;
    std::string host;
    uint16_t port;
    std::string round_trip;
  };
  const Case cases[] = {
      {"127.0.0.1:6379", "127.0.0.1", 6379, "127.0.0.1:6379"},
      {"redis-a.internal:7000", "redis-a.internal", 7000, "redis-a.internal:7000"},
      {"[::1]:6379", "::1", 6379, "[::1]:6379"},
      {"[fe80::1%eth0]:1", "fe80::1%eth0", 1, "[fe80::1%eth0]:1"},
      {"h:65535", "h", 65535, "h:65535"},
      {"h:06379", "h", 6379, "h:6379"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto parsed = ParseEndpoint(c.text);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    const Endpoint& endpoint = *parsed;
    EXPECT_EQ(endpoint.host, c.host);
    EXPECT_EQ(endpoint.port, c.port);
    EXPECT_EQ(endpoint.ToString(), c.round_trip);
  }
}

TEST(FleetEndpointTest, RefusesMalformedEndpoints) {
  struct Case {
    std::string_view text;
    std::string_view message;
  };
  const Case cases[] = {
      {"", "missing port"},
      {"localhost", "missing port"},
      {"localhost:", "missing port"},
      {":6379", "missing host"},
      {"h:0", "between 1 and 65535"},
      {"h:65536", "between 1 and 65535"},
      {"h:999999", "between 1 and 65535"},
      {"h:-1", "not a number"},
      {"h:63 79", "not a number"},
      {"::1:6379", "needs brackets"},
      {"[::1]", "missing ':port'"},
      {"[::1:6379", "missing ']'"},
      {"[]:6379", "missing host"},
      {"bad host:6379", "not allowed"},
      {"redis://h:6379", "not a URL"},
      {"user:pw@h:6379", "user name or password"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto parsed = ParseEndpoint(c.text);
    ASSERT_TRUE(!parsed.ok());
    EXPECT_NE(parsed.error().message().find(c.message), std::string::npos)
        << parsed.error().message();
  }
}

// --- Valid files.

constexpr std::string_view kFullFleet = R"([storage]
path = "snaps"
compression = "lz4"
level = 9

[defaults]
username = "ops"
password_env = "REDIS_PASSWORD"
capture = "bgsave-file"
connect_timeout_ms = 1500
command_timeout_ms = 2500
pause_timeout_ms = 3500
transfer_timeout_ms = 600000
engine = "valkey"

[cache_clusters.myRedisCluster]
endpoint = "127.0.0.1:6379"
username = "admin"
password_file = "secrets/redis.pass"
capture = "sync"
connect_timeout_ms = 100
command_timeout_ms = 200
pause_timeout_ms = 300
transfer_timeout_ms = 400
engine = "redis"

[replication_groups.myReplGroup]
endpoints = ["127.0.0.1:7000", "[::1]:7001", "redis-a.internal:7002"]
sentinels = ["127.0.0.1:26379", "127.0.0.1:26380"]
master_name = "mymaster"

[api]
listen = "0.0.0.0:9090"
state = "/var/lib/finalsnap/state"

[[api.credentials]]
access_key_id = "AKIAEXAMPLE"
secret_access_key_env = "FINALSNAP_API_SECRET"

[[api.credentials]]
access_key_id = "AKIASECOND"
secret_access_key_file = "api.secret"
)";

TEST(FleetParseTest, FullFileFillsEveryField) {
  const Fleet fleet = MustParse(kFullFleet);
  EXPECT_EQ(fleet.file, kFleetFile);

  EXPECT_EQ(fleet.storage.path, fs::path("/etc/finalsnap/snaps"));
  EXPECT_EQ(fleet.storage.compression, Compression::kLz4);
  EXPECT_EQ(fleet.storage.level, 9);

  ASSERT_EQ(fleet.cache_clusters.size(), 1u);
  const CacheClusterEntry& cluster = fleet.cache_clusters[0];
  EXPECT_EQ(cluster.id, "myRedisCluster");
  EXPECT_EQ(cluster.endpoint, (Endpoint{"127.0.0.1", 6379}));
  EXPECT_EQ(cluster.settings.username, "admin");
  EXPECT_EQ(cluster.settings.password_env, "");
  EXPECT_EQ(cluster.settings.password_file, fs::path("/etc/finalsnap/secrets/redis.pass"));
  EXPECT_EQ(cluster.settings.capture, CaptureMode::kSync);
  EXPECT_EQ(cluster.settings.engine, "redis");
  EXPECT_EQ(cluster.settings.connect_timeout_ms, 100);
  EXPECT_EQ(cluster.settings.command_timeout_ms, 200);
  EXPECT_EQ(cluster.settings.pause_timeout_ms, 300);
  EXPECT_EQ(cluster.settings.transfer_timeout_ms, 400);

  ASSERT_EQ(fleet.replication_groups.size(), 1u);
  const ReplicationGroupEntry& group = fleet.replication_groups[0];
  EXPECT_EQ(group.id, "myReplGroup");
  EXPECT_EQ(group.endpoints, (std::vector<Endpoint>{
                                 {"127.0.0.1", 7000}, {"::1", 7001}, {"redis-a.internal", 7002}}));
  EXPECT_EQ(group.sentinels, (std::vector<Endpoint>{{"127.0.0.1", 26379}, {"127.0.0.1", 26380}}));
  EXPECT_EQ(group.master_name, "mymaster");
  // The group sets nothing of its own, so it has exactly the [defaults].
  EXPECT_EQ(group.settings.username, "ops");
  EXPECT_EQ(group.settings.password_env, "REDIS_PASSWORD");
  EXPECT_EQ(group.settings.password_file, fs::path());
  EXPECT_EQ(group.settings.capture, CaptureMode::kBgsaveFile);
  EXPECT_EQ(group.settings.engine, "valkey");
  EXPECT_EQ(group.settings.connect_timeout_ms, 1500);
  EXPECT_EQ(group.settings.command_timeout_ms, 2500);
  EXPECT_EQ(group.settings.pause_timeout_ms, 3500);
  EXPECT_EQ(group.settings.transfer_timeout_ms, 600000);

  EXPECT_EQ(fleet.api.listen, (Endpoint{"0.0.0.0", 9090}));
  EXPECT_EQ(fleet.api.state, fs::path("/var/lib/finalsnap/state"));
  ASSERT_EQ(fleet.api.credentials.size(), 2u);
  EXPECT_EQ(fleet.api.credentials[0].access_key_id, "AKIAEXAMPLE");
  EXPECT_EQ(fleet.api.credentials[0].secret_env, "FINALSNAP_API_SECRET");
  EXPECT_EQ(fleet.api.credentials[0].secret_file, fs::path());
  EXPECT_EQ(fleet.api.credentials[1].access_key_id, "AKIASECOND");
  EXPECT_EQ(fleet.api.credentials[1].secret_env, "");
  EXPECT_EQ(fleet.api.credentials[1].secret_file, fs::path("/etc/finalsnap/api.secret"));
}

TEST(FleetParseTest, BuiltInDefaultsWhenSectionsAreAbsent) {
  const Fleet fleet = MustParse("[cache_clusters.a]\nendpoint = \"h:1\"\n", "/srv/fleet/f.toml");
  EXPECT_EQ(fleet.storage.path, fs::path("/srv/fleet/snapshots"));
  EXPECT_EQ(fleet.storage.compression, Compression::kZstd);
  EXPECT_EQ(fleet.storage.level, 1);
  EXPECT_EQ(fleet.api.listen, (Endpoint{"127.0.0.1", 8080}));
  EXPECT_EQ(fleet.api.state, fs::path("/srv/fleet/state"));
  EXPECT_TRUE(fleet.api.credentials.empty());

  ASSERT_EQ(fleet.cache_clusters.size(), 1u);
  const NodeSettings& settings = fleet.cache_clusters[0].settings;
  EXPECT_EQ(settings.username, "");
  EXPECT_EQ(settings.password_env, "");
  EXPECT_EQ(settings.password_file, fs::path());
  EXPECT_EQ(settings.capture, CaptureMode::kSync);
  EXPECT_EQ(settings.engine, "");
  EXPECT_EQ(settings.connect_timeout_ms, 5000);
  EXPECT_EQ(settings.command_timeout_ms, 10000);
  EXPECT_EQ(settings.pause_timeout_ms, 10000);
  EXPECT_EQ(settings.transfer_timeout_ms, 0);
}

TEST(FleetParseTest, EmptyFileIsAnEmptyFleet) {
  const Fleet fleet = MustParse("");
  EXPECT_TRUE(fleet.cache_clusters.empty());
  EXPECT_TRUE(fleet.replication_groups.empty());
}

TEST(FleetParseTest, DefaultLevelFollowsTheCodec) {
  EXPECT_EQ(MustParse("[storage]\ncompression = \"lz4\"\n").storage.level, 0);
  EXPECT_EQ(MustParse("[storage]\ncompression = \"zstd\"\n").storage.level, 1);
  EXPECT_EQ(MustParse("[storage]\ncompression = \"none\"\n").storage.level, 0);
  EXPECT_EQ(MustParse("[storage]\ncompression = \"lz4\"\nlevel = 0\n").storage.level, 0);
  EXPECT_EQ(MustParse("[storage]\nlevel = 19\n").storage.level, 19);
}

TEST(FleetParseTest, DefaultsOverlayPerEntry) {
  const Fleet fleet = MustParse(R"([defaults]
username = "ops"
password_env = "REDIS_PASSWORD"
connect_timeout_ms = 1000

[cache_clusters.inherits]
endpoint = "h:1"

[cache_clusters.overrides]
endpoint = "h:2"
password_file = "pw"
connect_timeout_ms = 2000

[replication_groups.nopass]
endpoints = ["h:3"]
username = ""
password_env = ""
)");
  const CacheClusterEntry* inherits = fleet.FindCacheCluster("inherits");
  ASSERT_NE(inherits, nullptr);
  EXPECT_EQ(inherits->settings.username, "ops");
  EXPECT_EQ(inherits->settings.password_env, "REDIS_PASSWORD");
  EXPECT_EQ(inherits->settings.password_file, fs::path());
  EXPECT_EQ(inherits->settings.connect_timeout_ms, 1000);
  EXPECT_EQ(inherits->settings.command_timeout_ms, 10000);

  // password_file in the entry replaces the default password_env rather than conflicting.
  const CacheClusterEntry* overrides = fleet.FindCacheCluster("overrides");
  ASSERT_NE(overrides, nullptr);
  EXPECT_EQ(overrides->settings.username, "ops");
  EXPECT_EQ(overrides->settings.password_env, "");
  EXPECT_EQ(overrides->settings.password_file, fs::path("/etc/finalsnap/pw"));
  EXPECT_EQ(overrides->settings.connect_timeout_ms, 2000);

  // Empty strings turn the defaults off for one entry: a node without AUTH.
  const ReplicationGroupEntry* nopass = fleet.FindReplicationGroup("nopass");
  ASSERT_NE(nopass, nullptr);
  EXPECT_EQ(nopass->settings.username, "");
  EXPECT_EQ(nopass->settings.password_env, "");
  EXPECT_EQ(nopass->settings.password_file, fs::path());
  EXPECT_EQ(nopass->settings.connect_timeout_ms, 1000);
}

TEST(FleetParseTest, EntriesKeepFileOrder) {
  const Fleet fleet = MustParse(R"([cache_clusters.zulu]
endpoint = "h:1"
[cache_clusters.alpha]
endpoint = "h:2"
[cache_clusters.mike]
endpoint = "h:3"
)");
  ASSERT_EQ(fleet.cache_clusters.size(), 3u);
  EXPECT_EQ(fleet.cache_clusters[0].id, "zulu");
  EXPECT_EQ(fleet.cache_clusters[1].id, "alpha");
  EXPECT_EQ(fleet.cache_clusters[2].id, "mike");
}

TEST(FleetParseTest, LookupIsCaseInsensitive) {
  const Fleet fleet = MustParse(kFullFleet);
  const CacheClusterEntry* cluster = fleet.FindCacheCluster("MYREDISCLUSTER");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->id, "myRedisCluster");
  EXPECT_EQ(fleet.FindCacheCluster("myrediscluster"), cluster);
  const ReplicationGroupEntry* group = fleet.FindReplicationGroup("myreplgroup");
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->id, "myReplGroup");

  // Each lookup searches only its own kind.
  EXPECT_EQ(fleet.FindCacheCluster("myReplGroup"), nullptr);
  EXPECT_EQ(fleet.FindReplicationGroup("myRedisCluster"), nullptr);
  EXPECT_EQ(fleet.FindCacheCluster("myRedisCluste"), nullptr);
}

// --- Refusals.

struct Refusal {
  std::string_view name;
  std::string_view text;
  int line;
  std::string_view key;
  std::string_view message;  // a part of the message
};

const Refusal kRefusals[] = {
    {"unknown key with hint", "[cache_clusters.a]\nendpoint = \"h:1\"\nendpont = \"h:2\"\n", 3,
     "cache_clusters.a.endpont", "unknown key (did you mean 'endpoint'?)"},
    {"unknown key, transposed letters", "[storage]\npaht = \"x\"\n", 2, "storage.paht",
     "did you mean 'path'?"},
    {"unknown key, wrong case", "[storage]\nLevel = 3\n", 2, "storage.Level",
     "did you mean 'level'?"},
    {"unknown key without hint", "[storage]\nfrobnicate = 1\n", 2, "storage.frobnicate",
     "unknown key"},
    {"unknown top-level table", "[cache_cluster.a]\nendpoint = \"h:1\"\n", 1, "cache_cluster",
     "did you mean 'cache_clusters'?"},
    {"unknown key in defaults", "[defaults]\npasword_env = \"X\"\n", 2, "defaults.pasword_env",
     "did you mean 'password_env'?"},
    {"first unknown key in file order", "[api]\nzzz = 1\naaa = 2\n", 2, "api.zzz", "unknown key"},
    {"group key on a cache cluster",
     "[cache_clusters.a]\nendpoint = \"h:1\"\nmaster_name = \"m\"\n", 3,
     "cache_clusters.a.master_name", "unknown key"},
    {"singular endpoint on a group", "[replication_groups.g]\nendpoint = \"h:1\"\n", 2,
     "replication_groups.g.endpoint", "did you mean 'endpoints'?"},
    {"unknown credential key",
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"S\"\nregion = \"x\"\n",
     4, "api.credentials[0].region", "unknown key"},

    {"level as a string", "[storage]\nlevel = \"1\"\n", 2, "storage.level",
     "expected an integer, got a string"},
    {"level as a float", "[storage]\nlevel = 1.0\n", 2, "storage.level",
     "expected an integer, got a float"},
    {"path as an integer", "[storage]\npath = 7\n", 2, "storage.path",
     "expected a string, got an integer"},
    {"storage not a table", "storage = \"x\"\n", 1, "storage", "expected a table, got a string"},
    {"cluster not a table", "[cache_clusters]\na = \"h:1\"\n", 2, "cache_clusters.a",
     "expected a table"},
    {"endpoints as a string", "[replication_groups.g]\nendpoints = \"h:1\"\n", 2,
     "replication_groups.g.endpoints", "expected an array of \"host:port\" strings, got a string"},
    {"endpoints holding a number", "[replication_groups.g]\nendpoints = [\"h:1\", 7000]\n", 2,
     "replication_groups.g.endpoints[1]", "expected a \"host:port\" string, got an integer"},
    {"timeout as a string", "[defaults]\nconnect_timeout_ms = \"5s\"\n", 2,
     "defaults.connect_timeout_ms", "expected an integer"},
    {"credentials not tables", "[api]\ncredentials = [\"x\"]\n", 2, "api.credentials[0]",
     "expected a table"},

    {"inline password in a cluster",
     "[cache_clusters.a]\nendpoint = \"h:1\"\npassword = \"hunter2\"\n", 3,
     "cache_clusters.a.password", "use password_env or password_file"},
    {"inline password in defaults", "[defaults]\npassword = \"hunter2\"\n", 2, "defaults.password",
     "use password_env or password_file"},
    {"inline password in a group",
     "[replication_groups.g]\nendpoints = [\"h:1\"]\npassword = \"hunter2\"\n", 3,
     "replication_groups.g.password", "use password_env or password_file"},
    {"inline secret access key",
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"hunter2\"\n", 3,
     "api.credentials[0].secret_access_key", "use secret_access_key_env or secret_access_key_file"},

    {"password_env and password_file",
     "[cache_clusters.a]\nendpoint = \"h:1\"\npassword_env = \"P\"\npassword_file = \"f\"\n", 4,
     "cache_clusters.a.password_file", "password_env and password_file are both set"},
    {"password_file and password_env in defaults",
     "[defaults]\npassword_file = \"f\"\npassword_env = \"P\"\n", 3, "defaults.password_env",
     "both set"},
    {"both secret sources",
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"S\"\n"
     "secret_access_key_file = \"f\"\n",
     4, "api.credentials[0].secret_access_key_file", "both set"},
    {"no secret source", "[api]\n[[api.credentials]]\naccess_key_id = \"A\"\n", 2,
     "api.credentials[0]", "needs secret_access_key_env or secret_access_key_file"},
    {"missing access key id", "[[api.credentials]]\nsecret_access_key_env = \"S\"\n", 1,
     "api.credentials[0].access_key_id", "missing"},
    {"duplicate access key id",
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"S\"\n"
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"T\"\n",
     5, "api.credentials[1].access_key_id", "duplicate access_key_id"},

    {"id starting with a digit", "[cache_clusters.1abc]\nendpoint = \"h:1\"\n", 1,
     "cache_clusters.1abc", "must start with a letter"},
    {"id with two hyphens", "[cache_clusters.a--b]\nendpoint = \"h:1\"\n", 1, "cache_clusters.a--b",
     "two hyphens in a row"},
    {"id ending with a hyphen", "[replication_groups.ab-]\nendpoints = [\"h:1\"]\n", 1,
     "replication_groups.ab-", "must not end with a hyphen"},
    {"id with an underscore", "[cache_clusters.a_b]\nendpoint = \"h:1\"\n", 1, "cache_clusters.a_b",
     "only letters, digits and hyphens"},
    {"id with a space", "[cache_clusters.\"my id\"]\nendpoint = \"h:1\"\n", 1,
     "cache_clusters.\"my id\"", "only letters, digits and hyphens"},
    {"id longer than 40", "[cache_clusters.a1234567890123456789012345678901234567890]\n", 1,
     "cache_clusters.a1234567890123456789012345678901234567890", "longer than 40"},
    {"duplicate id differing in case",
     "[cache_clusters.Alpha]\nendpoint = \"h:1\"\n\n[cache_clusters.alpha]\nendpoint = \"h:2\"\n",
     4, "cache_clusters.alpha", "duplicate id: cache_clusters.Alpha (line 1)"},
    {"duplicate id across tables",
     "[cache_clusters.alpha]\nendpoint = \"h:1\"\n[replication_groups.ALPHA]\n"
     "endpoints = [\"h:2\"]\n",
     3, "replication_groups.ALPHA", "duplicate id: cache_clusters.alpha (line 1)"},
    {"duplicate id across tables, group first",
     "[replication_groups.alpha]\nendpoints = [\"h:2\"]\n[cache_clusters.Alpha]\n"
     "endpoint = \"h:1\"\n",
     3, "cache_clusters.Alpha", "duplicate id: replication_groups.alpha (line 1)"},

    {"cluster without endpoint", "[cache_clusters.a]\nusername = \"x\"\n", 1,
     "cache_clusters.a.endpoint", "missing"},
    {"group without endpoints", "[replication_groups.g]\nmaster_name = \"m\"\n", 1,
     "replication_groups.g.endpoints", "missing"},
    {"group with empty endpoints", "[replication_groups.g]\nendpoints = []\n", 2,
     "replication_groups.g.endpoints", "at least one endpoint"},
    {"master_name without sentinels",
     "[replication_groups.g]\nendpoints = [\"h:1\"]\nmaster_name = \"m\"\n", 3,
     "replication_groups.g.master_name", "needs sentinels"},
    {"sentinels without master_name",
     "[replication_groups.g]\nendpoints = [\"h:1\"]\nsentinels = [\"h:26379\"]\n", 3,
     "replication_groups.g.sentinels", "need master_name"},
    {"empty master_name",
     "[replication_groups.g]\nendpoints = [\"h:1\"]\nsentinels = [\"h:2\"]\nmaster_name = \"\"\n",
     4, "replication_groups.g.master_name", "must not be empty"},

    {"endpoint without port", "[cache_clusters.a]\nendpoint = \"localhost\"\n", 2,
     "cache_clusters.a.endpoint", "invalid endpoint: missing port"},
    {"endpoint with port 0", "[cache_clusters.a]\nendpoint = \"h:0\"\n", 2,
     "cache_clusters.a.endpoint", "between 1 and 65535"},
    {"group endpoint out of range", "[replication_groups.g]\nendpoints = [\"h:1\", \"h:70000\"]\n",
     2, "replication_groups.g.endpoints[1]", "between 1 and 65535"},
    {"sentinel without brackets",
     "[replication_groups.g]\nendpoints = [\"h:1\"]\nsentinels = [\"::1:26379\"]\n"
     "master_name = \"m\"\n",
     3, "replication_groups.g.sentinels[0]", "needs brackets"},
    {"listen without port", "[api]\nlisten = \"127.0.0.1\"\n", 2, "api.listen", "missing port"},

    {"zstd level too high", "[storage]\nlevel = 20\n", 2, "storage.level",
     "between 1 and 19 for zstd"},
    {"zstd level zero", "[storage]\ncompression = \"zstd\"\nlevel = 0\n", 3, "storage.level",
     "between 1 and 19 for zstd"},
    {"lz4 level too high", "[storage]\ncompression = \"lz4\"\nlevel = 13\n", 3, "storage.level",
     "between 0 and 12 for lz4"},
    {"level without compression", "[storage]\nlevel = 3\ncompression = \"none\"\n", 2,
     "storage.level", "takes no level"},
    {"unknown compression", "[storage]\ncompression = \"gzip\"\n", 2, "storage.compression",
     "must be zstd, lz4 or none"},
    {"empty storage path", "[storage]\npath = \"\"\n", 2, "storage.path", "must not be empty"},
    {"unknown capture mode", "[defaults]\ncapture = \"fork\"\n", 2, "defaults.capture",
     "must be sync or bgsave-file"},
    {"unknown engine", "[defaults]\nengine = \"memcached\"\n", 2, "defaults.engine",
     "must be redis or valkey"},
    {"zero connect timeout", "[defaults]\nconnect_timeout_ms = 0\n", 2,
     "defaults.connect_timeout_ms", "between 1 and"},
    {"negative transfer timeout",
     "[cache_clusters.a]\nendpoint = \"h:1\"\ntransfer_timeout_ms = -1\n", 3,
     "cache_clusters.a.transfer_timeout_ms", "between 0 and"},
    {"timeout beyond int", "[defaults]\npause_timeout_ms = 99999999999\n", 2,
     "defaults.pause_timeout_ms", "between 1 and 2147483647"},
    {"password_env that is not a name", "[defaults]\npassword_env = \"$REDIS_PASSWORD\"\n", 2,
     "defaults.password_env", "must name an environment variable"},
    {"empty secret env",
     "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"\"\n", 3,
     "api.credentials[0].secret_access_key_env", "must name an environment variable"},
};

TEST(FleetErrorTest, EachRefusalNamesLineAndKey) {
  for (const Refusal& refusal : kRefusals) {
    SCOPED_TRACE(refusal.name);
    const FleetError error = MustFail(refusal.text);
    EXPECT_EQ(error.file, kFleetFile.string());
    EXPECT_EQ(error.line, refusal.line) << error.ToString();
    EXPECT_GE(error.column, 1) << error.ToString();
    EXPECT_EQ(error.key, refusal.key) << error.ToString();
    EXPECT_NE(error.message.find(refusal.message), std::string::npos) << error.ToString();
  }
}

TEST(FleetErrorTest, ToStringMatchesCompilerStyle) {
  const FleetError error =
      MustFail("[cache_clusters.a]\nendpoint = \"h:1\"\nendpont = \"h:2\"\n", "finalsnap.toml");
  EXPECT_EQ(error.ToString(),
            "finalsnap.toml:3:1: key cache_clusters.a.endpont: unknown key (did you mean "
            "'endpoint'?)");
  EXPECT_EQ((FleetError{"f.toml", 0, 0, "", "fleet file not found"}).ToString(),
            "f.toml: fleet file not found");
  EXPECT_EQ((FleetError{"f.toml", 4, 0, "", "bad"}).ToString(), "f.toml:4: bad");
}

TEST(FleetErrorTest, ValueErrorsPointAtTheValue) {
  const FleetError error = MustFail("[storage]\n  level = \"1\"\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.column, 11);
}

TEST(FleetErrorTest, SyntaxErrorUsesTomlPosition) {
  const FleetError error = MustFail("[storage]\npath = \"unterminated\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_GE(error.column, 1);
  EXPECT_EQ(error.key, "");
  EXPECT_FALSE(error.message.empty());

  const FleetError redefined = MustFail("[storage]\nlevel = 1\nlevel = 2\n");
  EXPECT_EQ(redefined.line, 3);
}

TEST(FleetErrorTest, SecretsInTheWrongPlaceAreNeverEchoed) {
  const std::string secret = "hunter2-Xq9";
  const std::string texts[] = {
      "[cache_clusters.a]\nendpoint = \"h:1\"\npassword = \"" + secret + "\"\n",
      "[defaults]\npassword_env = \"" + secret + "\"\n",
      "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"" + secret + "\"\n",
      "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_access_key_env = \"" + secret + "\"\n",
      "[cache_clusters.a]\nendpoint = \"admin:" + secret + "@h:6379\"\n",
  };
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    const FleetError error = MustFail(text);
    EXPECT_EQ(error.ToString().find(secret), std::string::npos) << error.ToString();
  }
}

}  // namespace
}  // namespace finalsnap
