// The fleet-file loader's inside, shared by its files: fleet_loader.cc (helpers and the typed
// getters), fleet.cc (nodes, clusters, groups and the entry points) and fleet_storage.cc
// ([storage] and [api]). Private to the config stage.
#ifndef FINALSNAP_CONFIG_FLEET_LOADER_H_
#define FINALSNAP_CONFIG_FLEET_LOADER_H_

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "finalsnap/fleet.h"

namespace finalsnap::fleet_loader {

namespace fs = std::filesystem;

// The largest fleet file we read. Real files are a few KiB even for hundreds of clusters; the
// cap only keeps a wrong path (a snapshot, a log) from being read whole into memory.
inline constexpr std::uintmax_t kMaxFleetFileBytes = 16 << 20;

// ElastiCache's limit on cache cluster and replication group ids.
inline constexpr size_t kMaxIdLength = 40;
// AWS access key ids are at most 128 characters.
inline constexpr size_t kMaxAccessKeyIdLength = 128;

// --- String helpers. All comparisons are ASCII: ids and keys are ASCII by their own rules.

bool IsAsciiLetter(char c);
bool IsAsciiDigit(char c);

// Optimal string alignment distance (Levenshtein plus swaps of adjacent characters), ignoring
// case, so that "endpiont" and "Endpoint" both count as near "endpoint", as a reader would.
size_t EditDistance(std::string_view a, std::string_view b);

// A key as TOML would need it written: bare when it can be, quoted otherwise, so that the
// dotted keys in error messages can be pasted back into the file.
std::string KeyPart(std::string_view key);

std::string JoinKey(std::string_view path, std::string_view key);

std::string IndexKey(std::string_view path, size_t index);

// True for a POSIX environment variable name. Checking it catches a password pasted into
// password_env, which must then not be echoed back in the error.
bool IsEnvName(std::string_view name);

// Why `id` breaks ElastiCache's rule for cache cluster and replication group ids, or nullopt.
std::optional<std::string> IdProblem(std::string_view id);

// --- toml++ helpers.

// toml++'s syntax errors can quote the text they choke on ("expected 'true', saw 'tru...'",
// "unknown escape sequence '\q'"): that text may be a secret written without quotes, so it is
// cut. The line and column still say where.
std::string WithoutValue(std::string_view description);

std::string TypeName(toml::node_type type);

bool Before(const toml::source_region& a, const toml::source_region& b);

// toml::table is ordered by key; fleet entries and error hunting go in file order instead.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& table);

// --- The keys each table allows.

inline constexpr std::string_view kTopLevelKeys[] = {"storage", "defaults", "cache_clusters",
                                                     "replication_groups", "api"};
inline constexpr std::string_view kStorageKeys[] = {"path", "url", "compression", "level"};
inline constexpr std::string_view kObjectStoreKeys[] = {"endpoint",
                                                        "region",
                                                        "addressing",
                                                        "profile",
                                                        "access_key_id",
                                                        "secret_access_key_env",
                                                        "secret_access_key_file",
                                                        "part_size_mib",
                                                        "parts_in_flight"};
inline constexpr std::string_view kNodeSettingKeys[] = {
    "username",         "password_env",        "password_file",
    "capture",          "connect_timeout_ms",  "command_timeout_ms",
    "pause_timeout_ms", "transfer_timeout_ms", "engine"};
inline constexpr std::string_view kCacheClusterKeys[] = {"endpoint"};
inline constexpr std::string_view kReplicationGroupKeys[] = {"endpoints", "sentinels",
                                                             "master_name"};
inline constexpr std::string_view kApiKeys[] = {"listen", "state", "credentials"};
inline constexpr std::string_view kCredentialKeys[] = {"access_key_id", "secret_access_key_env",
                                                       "secret_access_key_file"};

// A key that is refused with its own message rather than "unknown key": the secret itself,
// which must never be kept in the fleet file.
struct RefusedKey {
  std::string_view key;
  std::string_view message;
};
inline constexpr RefusedKey kInlinePassword{
    "password",
    "a password must not be written in the fleet file; use password_env or password_file"};
inline constexpr RefusedKey kInlineSecret{
    "secret_access_key",
    "a secret access key must not be written in the fleet file; use "
    "secret_access_key_env or secret_access_key_file"};

// --- The loader.

class Loader {
 public:
  Loader(std::string file, fs::path dir) : file_(std::move(file)), dir_(std::move(dir)) {}

  bool Load(const toml::table& root, Fleet* fleet);
  FleetError TakeError() { return std::move(error_); }

 private:
  bool Fail(const toml::source_region& where, std::string key, std::string message) {
    error_ = FleetError{file_, static_cast<int>(where.begin.line),
                        static_cast<int>(where.begin.column), std::move(key), std::move(message)};
    return false;
  }

  fs::path Resolve(std::string_view path) const {
    fs::path p(path);
    return (p.is_absolute() ? p : dir_ / p).lexically_normal();
  }

  bool CheckKeys(const toml::table& table, std::string_view path,
                 std::initializer_list<std::span<const std::string_view>> allowed,
                 const RefusedKey* refused = nullptr);

  // Typed getters. An absent key leaves *out untouched and succeeds; a value of the wrong type
  // or out of range fails, naming the key.
  bool GetTable(const toml::table& table, std::string_view path, std::string_view key,
                const toml::table** out);
  bool GetString(const toml::table& table, std::string_view path, std::string_view key,
                 std::optional<std::string>* out);
  bool GetNonEmptyString(const toml::table& table, std::string_view path, std::string_view key,
                         std::optional<std::string>* out);
  bool GetInteger(const toml::table& table, std::string_view path, std::string_view key,
                  std::optional<int64_t>* out);
  bool GetInt(const toml::table& table, std::string_view path, std::string_view key, int min,
              int* out, int max = std::numeric_limits<int>::max());
  bool GetEnvName(const toml::table& table, std::string_view path, std::string_view key,
                  bool allow_empty, std::optional<std::string>* out);
  bool GetEndpoint(const toml::table& table, std::string_view path, std::string_view key,
                   std::optional<Endpoint>* out);
  bool GetEndpointList(const toml::table& table, std::string_view path, std::string_view key,
                       std::optional<std::vector<Endpoint>>* out);
  bool ToEndpoint(const toml::node& node, const std::string& key, std::string_view text,
                  Endpoint* out);

  bool ReadStorage(const toml::table& table, StorageSettings* storage);
  bool ReadNodeSettings(const toml::table& table, std::string_view path, NodeSettings* settings);
  bool ReadCacheClusters(const toml::table& table, const NodeSettings& defaults,
                         std::vector<CacheClusterEntry>* out);
  bool ReadReplicationGroups(const toml::table& table, const NodeSettings& defaults,
                             std::vector<ReplicationGroupEntry>* out);
  bool ReadApi(const toml::table& table, ApiSettings* api);
  bool ReadCredential(const toml::table& table, std::string_view path, ApiCredential* credential);
  bool ReadObjectStore(const toml::table& table, ObjectStoreSettings* out);
  // access_key_id of `table`, checked (1 to 128 letters, digits, '_'); absent leaves *out unset.
  bool ReadAccessKeyId(const toml::table& table, std::string_view path,
                       std::optional<std::string>* out);
  // secret_access_key_env or secret_access_key_file (exactly one) of `table`.
  bool ReadSecretSource(const toml::table& table, std::string_view path, std::string* env,
                        fs::path* file, std::string* key);
  bool CheckId(const toml::key& key, std::string_view path);
  bool CheckIdsUnique();

  // Every cache cluster and replication group id seen, for the case-insensitive uniqueness
  // check across both tables.
  struct IdSeen {
    std::string id;
    std::string path;
    toml::source_region where;
  };
  std::vector<IdSeen> ids_;

  std::string file_;
  fs::path dir_;
  FleetError error_;
};

}  // namespace finalsnap::fleet_loader

#endif  // FINALSNAP_CONFIG_FLEET_LOADER_H_
