// The fleet file: the Redis and Valkey nodes finalsnap may snapshot and shut down, named by
// ElastiCache-style ids, plus where snapshots are stored and which keys the API server accepts.
//
// Start with LoadFleet. It reads a TOML file (the format is in DESIGN.md, "Fleet file") into a
// Fleet, or returns a FleetError that names the file, line, column and dotted key at fault:
//
//   auto loaded = LoadFleet(DefaultFleetPath(fleet_flag));
//   if (!loaded.ok()) { /* show loaded.error().ToString() */ }
//   const Fleet& fleet = *loaded;
//   const CacheClusterEntry* entry = fleet.FindCacheCluster("myRedisCluster");
//
// The loader is strict on purpose. The file drives commands that shut servers down, so a typo
// must never silently drop a setting: unknown keys (with a "did you mean" hint), wrong value
// types, out-of-range values, conflicting settings and ids that ElastiCache would refuse all fail
// the load.
//
// Passwords and API secrets are never in the fleet file, and so never in a Fleet. The file says
// where to find each one (an environment variable or a file), and ResolvePassword or
// ResolveApiSecret reads it only when it is needed. Their error messages name the variable or
// file, never a value.
//
// Relative paths in the file (storage.path, api.state, password_file, secret_access_key_file)
// are relative to the fleet file's directory, not to the working directory, so that a command
// means the same thing wherever it is run from. The loader resolves them all to absolute paths.
//
// This header does not include toml++: the parser is an implementation detail of fleet.cc.
#ifndef FINALSNAP_FLEET_H_
#define FINALSNAP_FLEET_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/decoder.h"
#include "finalsnap/status.h"

namespace finalsnap {

// A TCP address as the user wrote it. The host is a name or an address; an IPv6 address is
// stored without its brackets.
struct Endpoint {
  std::string host;
  uint16_t port = 0;

  // "host:port", with brackets around an IPv6 address ("[::1]:6379"), so that the result parses
  // back to the same Endpoint.
  std::string ToString() const;

  bool operator==(const Endpoint&) const = default;
};

// Parses "host:port" or "[ipv6]:port". Refuses an empty host, a missing, zero or out-of-range
// port, and an unbracketed IPv6 address. On failure the error says what is wrong.
Expected<Endpoint> ParseEndpoint(std::string_view text);

// How a node's RDB is captured. kSync uses the replication protocol and works remotely;
// kBgsaveFile runs BGSAVE and reads the node's own RDB file, for agents on the node's host.
enum class CaptureMode { kSync, kBgsaveFile };

// "sync" or "bgsave-file", as written in the fleet file.
std::string_view CaptureModeName(CaptureMode mode);
// The inverse of CaptureModeName; nullopt for any other name.
std::optional<CaptureMode> CaptureModeFromName(std::string_view name);

// How to talk to the nodes of one cache cluster or replication group. In a loaded Fleet these
// are the effective values: the built-in defaults below, overlaid by [defaults], overlaid by the
// entry's own keys. The password source counts as one setting: an entry that sets password_env
// or password_file replaces whichever of the two [defaults] set. An empty username,
// password_env or password_file in an entry turns that setting off for the entry.
struct NodeSettings {
  std::string username;  // ACL user for AUTH; empty for the default user
  // At most one of these two is set; neither means the nodes need no password.
  std::string password_env;             // name of the environment variable holding it
  std::filesystem::path password_file;  // absolute path of a file holding it
  // The dotted key that chose the source ("cache_clusters.a.password_file",
  // "defaults.password_env"), which errors name instead of any value.
  std::string password_key;
  CaptureMode capture = CaptureMode::kSync;
  std::string engine;  // "redis", "valkey", or empty to detect it from INFO
  int connect_timeout_ms = 5000;
  int command_timeout_ms = 10000;
  // The CLIENT PAUSE timeout: the pause expires on its own this long after its last renewal,
  // so a crashed engine never leaves writes paused.
  int pause_timeout_ms = 10000;
  // The whole capture must end within this time; 0 means no limit.
  int transfer_timeout_ms = 0;
};

// [cache_clusters.<id>]: a single node, as an ElastiCache cache cluster without replicas.
struct CacheClusterEntry {
  std::string id;  // as written in the file
  Endpoint endpoint;
  NodeSettings settings;
};

// [replication_groups.<id>]: a primary with replicas, or a sharded Redis Cluster. Any member is
// enough to start from: replicas and shards are discovered when the group is resolved.
struct ReplicationGroupEntry {
  std::string id;                   // as written in the file
  std::vector<Endpoint> endpoints;  // never empty
  std::vector<Endpoint> sentinels;  // set together with master_name, or neither is
  std::string master_name;          // the Sentinel name of the primary
  NodeSettings settings;
};

// [storage] url = "s3://bucket/prefix": snapshots in an S3-compatible object store (AWS S3, Ceph
// RGW, MinIO). Credentials, in the aws CLI's order: access_key_id with secret_access_key_env or
// _file from the fleet file; else `profile` from the shared AWS files; else the AWS_* environment
// variables; else the AWS_PROFILE (or "default") profile. See ResolveObjectStoreCredentials.
struct ObjectStoreSettings {
  std::string bucket;    // DNS-style: 3..63 of a-z 0-9 . -
  std::string prefix;    // "" or "some/prefix": no leading, trailing or doubled '/'
  std::string endpoint;  // "http(s)://host[:port][/path]"; "" is AWS S3 for the region
  std::string region;    // "" = AWS_REGION, AWS_DEFAULT_REGION, the profile's, else us-east-1
  bool virtual_addressing = false;  // addressing = "virtual"; default: virtual for AWS, else path
  std::string profile;              // a profile of ~/.aws/credentials and ~/.aws/config
  std::string access_key_id;
  std::string secret_env;                         // secret_access_key_env
  std::filesystem::path secret_file;              // secret_access_key_file, absolute
  std::string secret_key;                         // the dotted key that set the secret's source
  uint64_t part_size_bytes = uint64_t{16} << 20;  // part_size_mib, 5..5120
  int parts_in_flight = 4;                        // 1..64: memory is this many parts at most

  // "s3://bucket/prefix", for messages.
  std::string Url() const;
};

// Snapshot commands read and write local storage only so far: with `url` set, this refuses
// (naming storage.url) rather than let a command fall back to a local directory unseen.
Status CheckLocalStorage(const struct StorageSettings& storage);

// [storage]: where snapshots are written and how they are compressed.
struct StorageSettings {
  std::filesystem::path path;  // absolute; defaults to "snapshots" beside the fleet file
  // Set by `url`: snapshots go to the object store instead of `path`.
  std::optional<ObjectStoreSettings> object_store;
  Compression compression = Compression::kZstd;
  int level = 1;  // zstd 1..19 (default 1), lz4 0..12 (default 0), 0 for none
};

// One [[api.credentials]] entry: a SigV4 access key the API server accepts. Exactly one of
// secret_env and secret_file is set.
struct ApiCredential {
  std::string access_key_id;
  std::string secret_env;             // secret_access_key_env
  std::filesystem::path secret_file;  // secret_access_key_file, absolute
  // The dotted key that set the secret's source ("api.credentials[0].secret_access_key_env"),
  // which errors name instead of any value.
  std::string secret_key;
};

// The shortest API secret ResolveApiSecret accepts. SigV4's HMAC is only as strong as its key,
// and AWS's own secret access keys are 40 characters.
inline constexpr size_t kMinApiSecretBytes = 16;

// [api]: settings for `finalsnap serve`.
struct ApiSettings {
  Endpoint listen{"127.0.0.1", 8080};  // loopback unless the file says otherwise
  std::filesystem::path state;         // absolute; defaults to "state" beside the fleet file
  std::vector<ApiCredential> credentials;
};

// A loaded fleet file. Entries are in the order the file lists them.
struct Fleet {
  std::filesystem::path file;  // absolute path of the fleet file
  StorageSettings storage;
  ApiSettings api;
  std::vector<CacheClusterEntry> cache_clusters;
  std::vector<ReplicationGroupEntry> replication_groups;

  // Ids are case-insensitive, as in ElastiCache. Both return nullptr when there is no such id;
  // the pointers stay valid as long as the Fleet is not modified.
  const CacheClusterEntry* FindCacheCluster(std::string_view id) const;
  const ReplicationGroupEntry* FindReplicationGroup(std::string_view id) const;
};

// Why a fleet file was refused. line and column are 1-based, and 0 when the error has no place
// in the file (such as a missing file). key is the full dotted key, such as
// "cache_clusters.a.endpoint" or "api.credentials[0].access_key_id", and empty when the error is
// not about one key.
struct FleetError {
  std::string file;  // the path as the caller gave it
  int line = 0;
  int column = 0;
  std::string key;
  std::string message;

  // "finalsnap.toml:12:1: key cache_clusters.a.endpont: unknown key (did you mean 'endpoint'?)";
  // the place and key parts are left out when unknown.
  std::string ToString() const;
};

// Reads and validates a fleet file. Never throws for bad input: a missing or unreadable file,
// TOML syntax errors and every refused setting come back as a FleetError.
Expected<Fleet, FleetError> LoadFleet(const std::filesystem::path& file);

// Validates fleet-file text that is already in memory. `file` is used in error messages and to
// resolve relative paths (against its directory); it is not read.
Expected<Fleet, FleetError> ParseFleet(std::string_view toml_text,
                                       const std::filesystem::path& file);

// The fleet file to use: `flag` (--fleet) if not empty, else $FINALSNAP_FLEET if set and not
// empty, else "finalsnap.toml" in the working directory.
std::filesystem::path DefaultFleetPath(std::string_view flag);

// A secret read from where the fleet file points: the secret, nullopt when none is configured,
// or an error that names the fleet file's key (password_key, secret_key) and says why it could
// not be used. It never contains the secret, nor the key's value: a secret pasted into
// password_env or password_file must not come back in an error.
using ResolvedSecret = Expected<std::optional<std::string>>;

// Reads the password that `settings` points to: the environment variable's value, or the file's
// contents with one trailing newline ("\n" or "\r\n") removed. A value of nullopt means
// that the nodes need no password. An unset or empty variable, and an unreadable or empty file,
// are errors: connecting without the password would only fail later, less clearly.
ResolvedSecret ResolvePassword(const NodeSettings& settings);

// The credentials (and region) an object store is reached with, and where they came from.
struct ObjectStoreCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only
  std::string region;         // never empty: us-east-1 when nothing says otherwise
  // For messages, never a secret: "storage.secret_access_key_env", "profile backup
  // (AWS_SHARED_CREDENTIALS_FILE)", "the environment (AWS_ACCESS_KEY_ID)".
  std::string source;
};

// Finds the object store's credentials as the aws CLI would, in this order: the fleet file's
// access_key_id and secret source; its `profile`; the environment's AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN); the profile named by AWS_PROFILE, else
// "default". Profiles are read from AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and
// AWS_CONFIG_FILE (default ~/.aws/config, "[profile NAME]" sections). An error names the source
// that was tried and what was missing, never a secret.
Expected<ObjectStoreCredentials> ResolveObjectStoreCredentials(const ObjectStoreSettings& settings);

// Reads an API credential's secret access key the same way. The secret is required, so on
// success the value is always set, and at least kMinApiSecretBytes long.
ResolvedSecret ResolveApiSecret(const ApiCredential& credential);

}  // namespace finalsnap

#endif  // FINALSNAP_FLEET_H_
