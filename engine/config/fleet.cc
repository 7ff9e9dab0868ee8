// The fleet-file loader (fleet.h): TOML text, parsed by toml++, checked key by key into a Fleet;
// plus endpoint parsing. The secret readers are in secrets.cc.
//
// The loader walks the toml++ tree by hand instead of mapping it generically, because every
// table must be checked against the keys allowed at that place: a misspelt key that a generic
// mapper skipped would silently drop a setting (say, a password source) from a command that
// shuts servers down. Each step returns false after recording the first error, and that error is
// the one reported, so a file is fixed one message at a time, top to bottom within each table.
#include "finalsnap/fleet.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <map>
#include <span>
#include <utility>

#include "file_io.h"
#include "finalsnap/text.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;

// The largest fleet file we read. Real files are a few KiB even for hundreds of clusters; the
// cap only keeps a wrong path (a snapshot, a log) from being read whole into memory.
constexpr std::uintmax_t kMaxFleetFileBytes = 16 << 20;

// ElastiCache's limit on cache cluster and replication group ids.
constexpr size_t kMaxIdLength = 40;
// AWS access key ids are at most 128 characters.
constexpr size_t kMaxAccessKeyIdLength = 128;

// --- String helpers. All comparisons are ASCII: ids and keys are ASCII by their own rules.

bool IsAsciiLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// Optimal string alignment distance (Levenshtein plus swaps of adjacent characters), ignoring
// case, so that "endpiont" and "Endpoint" both count as near "endpoint", as a reader would.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> before_previous(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = AsciiLower(a[i - 1]) == AsciiLower(b[j - 1]) ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && AsciiLower(a[i - 1]) == AsciiLower(b[j - 2]) &&
          AsciiLower(a[i - 2]) == AsciiLower(b[j - 1])) {
        current[j] = std::min(current[j], before_previous[j - 2] + 1);
      }
    }
    std::swap(before_previous, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// A key as TOML would need it written: bare when it can be, quoted otherwise, so that the
// dotted keys in error messages can be pasted back into the file.
std::string KeyPart(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_' || c == '-';
  });
  if (bare) return std::string(key);
  std::string quoted = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

std::string JoinKey(std::string_view path, std::string_view key) {
  return path.empty() ? KeyPart(key) : std::string(path) + "." + KeyPart(key);
}

std::string IndexKey(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

// True for a POSIX environment variable name. Checking it catches a password pasted into
// password_env, which must then not be echoed back in the error.
bool IsEnvName(std::string_view name) {
  return !name.empty() && !IsAsciiDigit(name.front()) &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_'; });
}

// Why `id` breaks ElastiCache's rule for cache cluster and replication group ids, or nullopt.
std::optional<std::string> IdProblem(std::string_view id) {
  if (id.empty()) return "it is empty";
  if (id.size() > kMaxIdLength) return "it is longer than 40 characters";
  if (!IsAsciiLetter(id.front())) return "it must start with a letter";
  for (char c : id) {
    if (!IsAsciiLetter(c) && !IsAsciiDigit(c) && c != '-') {
      return "it may contain only letters, digits and hyphens";
    }
  }
  if (id.find("--") != std::string_view::npos) return "it must not contain two hyphens in a row";
  if (id.back() == '-') return "it must not end with a hyphen";
  return std::nullopt;
}

// --- toml++ helpers.

// toml++'s syntax errors can quote the text they choke on ("expected 'true', saw 'tru...'",
// "unknown escape sequence '\q'"): that text may be a secret written without quotes, so it is
// cut. The line and column still say where.
std::string WithoutValue(std::string_view description) {
  std::string text(description.substr(0, description.find(", saw ")));
  if (const size_t escape = text.find("escape sequence '"); escape != std::string::npos) {
    text.resize(escape + std::string_view("escape sequence").size());
  }
  return text;
}

std::string TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool Before(const toml::source_region& a, const toml::source_region& b) {
  return std::pair(a.begin.line, a.begin.column) < std::pair(b.begin.line, b.begin.column);
}

// toml::table is ordered by key; fleet entries and error hunting go in file order instead.
std::vector<std::pair<const toml::key*, const toml::node*>> InFileOrder(const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return Before(a.first->source(), b.first->source());
  });
  return entries;
}

// --- The keys each table allows.

constexpr std::string_view kTopLevelKeys[] = {"storage", "defaults", "cache_clusters",
                                              "replication_groups", "api"};
constexpr std::string_view kStorageKeys[] = {"path", "compression", "level"};
constexpr std::string_view kNodeSettingKeys[] = {
    "username",         "password_env",        "password_file",
    "capture",          "connect_timeout_ms",  "command_timeout_ms",
    "pause_timeout_ms", "transfer_timeout_ms", "engine"};
constexpr std::string_view kCacheClusterKeys[] = {"endpoint"};
constexpr std::string_view kReplicationGroupKeys[] = {"endpoints", "sentinels", "master_name"};
constexpr std::string_view kApiKeys[] = {"listen", "state", "credentials"};
constexpr std::string_view kCredentialKeys[] = {"access_key_id", "secret_access_key_env",
                                                "secret_access_key_file"};

// A key that is refused with its own message rather than "unknown key": the secret itself,
// which must never be kept in the fleet file.
struct RefusedKey {
  std::string_view key;
  std::string_view message;
};
constexpr RefusedKey kInlinePassword{
    "password",
    "a password must not be written in the fleet file; use password_env or password_file"};
constexpr RefusedKey kInlineSecret{"secret_access_key",
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
              int* out);
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

bool Loader::CheckKeys(const toml::table& table, std::string_view path,
                       std::initializer_list<std::span<const std::string_view>> allowed,
                       const RefusedKey* refused) {
  auto is_allowed = [&](std::string_view key) {
    for (auto list : allowed) {
      if (std::find(list.begin(), list.end(), key) != list.end()) return true;
    }
    return false;
  };
  // Report the first offending key in the file, not the first in toml++'s key order.
  const toml::key* first = nullptr;
  for (auto&& [key, node] : table) {
    if (!is_allowed(key.str()) && (first == nullptr || Before(key.source(), first->source()))) {
      first = &key;
    }
  }
  if (first == nullptr) return true;
  std::string full_key = JoinKey(path, first->str());
  if (refused != nullptr && first->str() == refused->key) {
    return Fail(first->source(), std::move(full_key), std::string(refused->message));
  }
  std::string message = "unknown key";
  std::string_view hint;
  size_t best = 3;  // suggest only keys within two edits
  for (auto list : allowed) {
    for (std::string_view candidate : list) {
      const size_t distance = EditDistance(first->str(), candidate);
      if (distance < best && distance < candidate.size()) {
        best = distance;
        hint = candidate;
      }
    }
  }
  if (!hint.empty()) message += " (did you mean '" + std::string(hint) + "'?)";
  return Fail(first->source(), std::move(full_key), std::move(message));
}

bool Loader::GetTable(const toml::table& table, std::string_view path, std::string_view key,
                      const toml::table** out) {
  *out = nullptr;
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  *out = node->as_table();
  if (*out == nullptr) {
    return Fail(node->source(), JoinKey(path, key),
                "expected a table, got " + TypeName(node->type()));
  }
  return true;
}

bool Loader::GetString(const toml::table& table, std::string_view path, std::string_view key,
                       std::optional<std::string>* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const toml::value<std::string>* value = node->as_string();
  if (value == nullptr) {
    return Fail(node->source(), JoinKey(path, key),
                "expected a string, got " + TypeName(node->type()));
  }
  *out = value->get();
  return true;
}

bool Loader::GetNonEmptyString(const toml::table& table, std::string_view path,
                               std::string_view key, std::optional<std::string>* out) {
  if (!GetString(table, path, key, out)) return false;
  if (out->has_value() && (*out)->empty()) {
    return Fail(table.get(key)->source(), JoinKey(path, key), "must not be empty");
  }
  return true;
}

bool Loader::GetInteger(const toml::table& table, std::string_view path, std::string_view key,
                        std::optional<int64_t>* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const toml::value<int64_t>* value = node->as_integer();
  if (value == nullptr) {
    return Fail(node->source(), JoinKey(path, key),
                "expected an integer, got " + TypeName(node->type()));
  }
  *out = value->get();
  return true;
}

bool Loader::GetInt(const toml::table& table, std::string_view path, std::string_view key, int min,
                    int* out) {
  std::optional<int64_t> value;
  if (!GetInteger(table, path, key, &value)) return false;
  if (!value) return true;
  constexpr int kMax = std::numeric_limits<int>::max();
  if (*value < min || *value > kMax) {
    return Fail(table.get(key)->source(), JoinKey(path, key),
                "must be between " + std::to_string(min) + " and " + std::to_string(kMax));
  }
  *out = static_cast<int>(*value);
  return true;
}

bool Loader::GetEnvName(const toml::table& table, std::string_view path, std::string_view key,
                        bool allow_empty, std::optional<std::string>* out) {
  if (!GetString(table, path, key, out)) return false;
  if (!out->has_value() || ((*out)->empty() && allow_empty)) return true;
  // The value is not repeated in the message: it may be the secret itself, pasted in the
  // wrong place.
  if (!IsEnvName(**out)) {
    return Fail(table.get(key)->source(), JoinKey(path, key),
                "must name an environment variable (letters, digits and underscores, not starting "
                "with a digit), not hold the secret itself");
  }
  return true;
}

bool Loader::ToEndpoint(const toml::node& node, const std::string& key, std::string_view text,
                        Endpoint* out) {
  auto parsed = ParseEndpoint(text);
  if (!parsed.ok()) {
    // The text is not repeated: a mistyped endpoint may be a password pasted in the wrong place
    // (or carry one, as "user:secret@host:6379"). The key and the place in the file say which
    // value is meant; ParseEndpoint's own messages never include the text.
    return Fail(node.source(), key, "invalid endpoint: " + parsed.error().message());
  }
  *out = std::move(parsed).value();
  return true;
}

bool Loader::GetEndpoint(const toml::table& table, std::string_view path, std::string_view key,
                         std::optional<Endpoint>* out) {
  std::optional<std::string> text;
  if (!GetString(table, path, key, &text)) return false;
  if (!text) return true;
  Endpoint endpoint;
  if (!ToEndpoint(*table.get(key), JoinKey(path, key), *text, &endpoint)) return false;
  *out = std::move(endpoint);
  return true;
}

bool Loader::GetEndpointList(const toml::table& table, std::string_view path, std::string_view key,
                             std::optional<std::vector<Endpoint>>* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return true;
  const std::string full_key = JoinKey(path, key);
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return Fail(node->source(), full_key,
                "expected an array of \"host:port\" strings, got " + TypeName(node->type()));
  }
  if (array->empty()) return Fail(node->source(), full_key, "must list at least one endpoint");
  std::vector<Endpoint> endpoints;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const toml::value<std::string>* text = element.as_string();
    if (text == nullptr) {
      return Fail(element.source(), IndexKey(full_key, i),
                  "expected a \"host:port\" string, got " + TypeName(element.type()));
    }
    Endpoint endpoint;
    if (!ToEndpoint(element, IndexKey(full_key, i), text->get(), &endpoint)) return false;
    endpoints.push_back(std::move(endpoint));
  }
  *out = std::move(endpoints);
  return true;
}

bool Loader::ReadStorage(const toml::table& table, StorageSettings* storage) {
  constexpr std::string_view kPath = "storage";
  if (!CheckKeys(table, kPath, {kStorageKeys})) return false;

  std::optional<std::string> path;
  if (!GetNonEmptyString(table, kPath, "path", &path)) return false;
  if (path) storage->path = Resolve(*path);

  std::optional<std::string> compression;
  if (!GetString(table, kPath, "compression", &compression)) return false;
  if (compression) {
    std::optional<Compression> parsed = CompressionFromName(*compression);
    if (!parsed) {
      return Fail(table.get("compression")->source(), "storage.compression",
                  "must be zstd, lz4 or none");
    }
    storage->compression = *parsed;
  }

  // The level's range depends on the codec, so it is checked only once the codec is known.
  int min = 0;
  int max = 0;
  switch (storage->compression) {
    case Compression::kZstd:
      min = 1;
      max = 19;
      break;
    case Compression::kLz4:
      min = 0;
      max = 12;
      break;
    case Compression::kNone:
      break;
  }
  storage->level = min;
  std::optional<int64_t> level;
  if (!GetInteger(table, kPath, "level", &level)) return false;
  if (level) {
    const toml::source_region& where = table.get("level")->source();
    const std::string codec(CompressionName(storage->compression));
    if (storage->compression == Compression::kNone) {
      return Fail(where, "storage.level", "compression = \"none\" takes no level");
    }
    if (*level < min || *level > max) {
      return Fail(where, "storage.level",
                  "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                      " for " + codec);
    }
    storage->level = static_cast<int>(*level);
  }
  return true;
}

bool Loader::ReadNodeSettings(const toml::table& table, std::string_view path,
                              NodeSettings* settings) {
  std::optional<std::string> username;
  if (!GetString(table, path, "username", &username)) return false;
  if (username) settings->username = *username;

  // The password source is one setting with two spellings: both in one table is a conflict,
  // while either one in an entry replaces whichever [defaults] chose.
  const toml::node* env_node = table.get("password_env");
  const toml::node* file_node = table.get("password_file");
  if (env_node != nullptr && file_node != nullptr) {
    const bool env_later = Before(file_node->source(), env_node->source());
    return Fail(env_later ? env_node->source() : file_node->source(),
                JoinKey(path, env_later ? "password_env" : "password_file"),
                "password_env and password_file are both set; use one");
  }
  std::optional<std::string> password_env;
  if (!GetEnvName(table, path, "password_env", /*allow_empty=*/true, &password_env)) return false;
  if (password_env) {
    settings->password_env = *password_env;
    settings->password_file.clear();
    settings->password_key = JoinKey(path, "password_env");
  }
  std::optional<std::string> password_file;
  if (!GetString(table, path, "password_file", &password_file)) return false;
  if (password_file) {
    settings->password_env.clear();
    settings->password_file = password_file->empty() ? fs::path() : Resolve(*password_file);
    settings->password_key = JoinKey(path, "password_file");
  }

  std::optional<std::string> capture;
  if (!GetString(table, path, "capture", &capture)) return false;
  if (capture) {
    std::optional<CaptureMode> mode = CaptureModeFromName(*capture);
    if (!mode) {
      return Fail(table.get("capture")->source(), JoinKey(path, "capture"),
                  "must be sync or bgsave-file");
    }
    settings->capture = *mode;
  }

  std::optional<std::string> engine;
  if (!GetString(table, path, "engine", &engine)) return false;
  if (engine) {
    if (!engine->empty() && *engine != "redis" && *engine != "valkey") {
      return Fail(table.get("engine")->source(), JoinKey(path, "engine"),
                  "must be redis or valkey (or empty, to detect it)");
    }
    settings->engine = *engine;
  }

  return GetInt(table, path, "connect_timeout_ms", 1, &settings->connect_timeout_ms) &&
         GetInt(table, path, "command_timeout_ms", 1, &settings->command_timeout_ms) &&
         GetInt(table, path, "pause_timeout_ms", 1, &settings->pause_timeout_ms) &&
         GetInt(table, path, "transfer_timeout_ms", 0, &settings->transfer_timeout_ms);
}

bool Loader::CheckId(const toml::key& key, std::string_view path) {
  if (std::optional<std::string> problem = IdProblem(key.str())) {
    return Fail(key.source(), std::string(path),
                "invalid id: " + *problem +
                    " (ids are 1 to 40 letters, digits and hyphens, as in ElastiCache)");
  }
  ids_.push_back(IdSeen{std::string(key.str()), std::string(path), key.source()});
  return true;
}

bool Loader::ReadCacheClusters(const toml::table& table, const NodeSettings& defaults,
                               std::vector<CacheClusterEntry>* out) {
  for (auto [key, node] : InFileOrder(table)) {
    const std::string path = JoinKey("cache_clusters", key->str());
    const toml::table* entry_table = node->as_table();
    if (entry_table == nullptr) {
      return Fail(node->source(), path, "expected a table, got " + TypeName(node->type()));
    }
    if (!CheckId(*key, path)) return false;
    if (!CheckKeys(*entry_table, path, {kNodeSettingKeys, kCacheClusterKeys}, &kInlinePassword)) {
      return false;
    }
    CacheClusterEntry entry;
    entry.id = key->str();
    entry.settings = defaults;
    if (!ReadNodeSettings(*entry_table, path, &entry.settings)) return false;
    std::optional<Endpoint> endpoint;
    if (!GetEndpoint(*entry_table, path, "endpoint", &endpoint)) return false;
    if (!endpoint) {
      return Fail(entry_table->source(), JoinKey(path, "endpoint"),
                  "missing: a cache cluster needs endpoint = \"host:port\"");
    }
    entry.endpoint = std::move(*endpoint);
    out->push_back(std::move(entry));
  }
  return true;
}

bool Loader::ReadReplicationGroups(const toml::table& table, const NodeSettings& defaults,
                                   std::vector<ReplicationGroupEntry>* out) {
  for (auto [key, node] : InFileOrder(table)) {
    const std::string path = JoinKey("replication_groups", key->str());
    const toml::table* entry_table = node->as_table();
    if (entry_table == nullptr) {
      return Fail(node->source(), path, "expected a table, got " + TypeName(node->type()));
    }
    if (!CheckId(*key, path)) return false;
    if (!CheckKeys(*entry_table, path, {kNodeSettingKeys, kReplicationGroupKeys},
                   &kInlinePassword)) {
      return false;
    }
    ReplicationGroupEntry entry;
    entry.id = key->str();
    entry.settings = defaults;
    if (!ReadNodeSettings(*entry_table, path, &entry.settings)) return false;

    std::optional<std::vector<Endpoint>> endpoints;
    if (!GetEndpointList(*entry_table, path, "endpoints", &endpoints)) return false;
    if (!endpoints) {
      return Fail(entry_table->source(), JoinKey(path, "endpoints"),
                  "missing: a replication group needs endpoints = [\"host:port\", ...]");
    }
    entry.endpoints = std::move(*endpoints);

    std::optional<std::vector<Endpoint>> sentinels;
    if (!GetEndpointList(*entry_table, path, "sentinels", &sentinels)) return false;
    std::optional<std::string> master_name;
    if (!GetNonEmptyString(*entry_table, path, "master_name", &master_name)) return false;
    if (master_name && !sentinels) {
      return Fail(entry_table->get("master_name")->source(), JoinKey(path, "master_name"),
                  "master_name needs sentinels = [\"host:port\", ...]");
    }
    if (sentinels && !master_name) {
      return Fail(entry_table->get("sentinels")->source(), JoinKey(path, "sentinels"),
                  "sentinels need master_name, the name Sentinel knows the primary by");
    }
    if (sentinels) entry.sentinels = std::move(*sentinels);
    if (master_name) entry.master_name = std::move(*master_name);
    out->push_back(std::move(entry));
  }
  return true;
}

bool Loader::CheckIdsUnique() {
  // Sorted by position, so that the error points at the second occurrence in the file.
  std::stable_sort(ids_.begin(), ids_.end(),
                   [](const IdSeen& a, const IdSeen& b) { return Before(a.where, b.where); });
  std::map<std::string, const IdSeen*> first_by_id;
  for (const IdSeen& seen : ids_) {
    auto [it, inserted] = first_by_id.emplace(Lower(seen.id), &seen);
    if (!inserted) {
      return Fail(seen.where, seen.path,
                  "duplicate id: " + it->second->path + " (line " +
                      std::to_string(it->second->where.begin.line) +
                      ") has the same id, and ids are case-insensitive");
    }
  }
  return true;
}

bool Loader::ReadCredential(const toml::table& table, std::string_view path,
                            ApiCredential* credential) {
  if (!CheckKeys(table, path, {kCredentialKeys}, &kInlineSecret)) return false;
  std::optional<std::string> id;
  if (!GetNonEmptyString(table, path, "access_key_id", &id)) return false;
  if (!id) {
    return Fail(table.source(), JoinKey(path, "access_key_id"),
                "missing: a credential needs access_key_id");
  }
  const bool id_ok =
      id->size() <= kMaxAccessKeyIdLength && std::all_of(id->begin(), id->end(), [](char c) {
        return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_';
      });
  if (!id_ok) {
    return Fail(table.get("access_key_id")->source(), JoinKey(path, "access_key_id"),
                "must be 1 to 128 letters, digits and underscores");
  }
  credential->access_key_id = *id;

  const toml::node* env_node = table.get("secret_access_key_env");
  const toml::node* file_node = table.get("secret_access_key_file");
  if (env_node != nullptr && file_node != nullptr) {
    const bool env_later = Before(file_node->source(), env_node->source());
    return Fail(env_later ? env_node->source() : file_node->source(),
                JoinKey(path, env_later ? "secret_access_key_env" : "secret_access_key_file"),
                "secret_access_key_env and secret_access_key_file are both set; use one");
  }
  if (env_node == nullptr && file_node == nullptr) {
    return Fail(table.source(), std::string(path),
                "missing: a credential needs secret_access_key_env or secret_access_key_file");
  }
  std::optional<std::string> env;
  if (!GetEnvName(table, path, "secret_access_key_env", /*allow_empty=*/false, &env)) return false;
  if (env) {
    credential->secret_env = *env;
    credential->secret_key = JoinKey(path, "secret_access_key_env");
  }
  std::optional<std::string> file;
  if (!GetNonEmptyString(table, path, "secret_access_key_file", &file)) return false;
  if (file) {
    credential->secret_file = Resolve(*file);
    credential->secret_key = JoinKey(path, "secret_access_key_file");
  }
  return true;
}

bool Loader::ReadApi(const toml::table& table, ApiSettings* api) {
  constexpr std::string_view kPath = "api";
  if (!CheckKeys(table, kPath, {kApiKeys})) return false;

  std::optional<Endpoint> listen;
  if (!GetEndpoint(table, kPath, "listen", &listen)) return false;
  if (listen) api->listen = std::move(*listen);

  std::optional<std::string> state;
  if (!GetNonEmptyString(table, kPath, "state", &state)) return false;
  if (state) api->state = Resolve(*state);

  const toml::node* node = table.get("credentials");
  if (node == nullptr) return true;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return Fail(node->source(), "api.credentials",
                "expected [[api.credentials]] tables, got " + TypeName(node->type()));
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = IndexKey("api.credentials", i);
    const toml::table* credential_table = element.as_table();
    if (credential_table == nullptr) {
      return Fail(element.source(), path, "expected a table, got " + TypeName(element.type()));
    }
    ApiCredential credential;
    if (!ReadCredential(*credential_table, path, &credential)) return false;
    // Two secrets for one key id would make the server's choice between them arbitrary.
    for (const ApiCredential& earlier : api->credentials) {
      if (earlier.access_key_id == credential.access_key_id) {
        return Fail(credential_table->get("access_key_id")->source(),
                    JoinKey(path, "access_key_id"), "duplicate access_key_id");
      }
    }
    api->credentials.push_back(std::move(credential));
  }
  return true;
}

bool Loader::Load(const toml::table& root, Fleet* fleet) {
  if (!CheckKeys(root, "", {kTopLevelKeys})) return false;

  const toml::table* storage = nullptr;
  const toml::table* defaults = nullptr;
  const toml::table* cache_clusters = nullptr;
  const toml::table* replication_groups = nullptr;
  const toml::table* api = nullptr;
  if (!GetTable(root, "", "storage", &storage) || !GetTable(root, "", "defaults", &defaults) ||
      !GetTable(root, "", "cache_clusters", &cache_clusters) ||
      !GetTable(root, "", "replication_groups", &replication_groups) ||
      !GetTable(root, "", "api", &api)) {
    return false;
  }

  fleet->storage.path = Resolve("snapshots");
  if (storage != nullptr && !ReadStorage(*storage, &fleet->storage)) return false;

  NodeSettings node_defaults;
  if (defaults != nullptr) {
    if (!CheckKeys(*defaults, "defaults", {kNodeSettingKeys}, &kInlinePassword) ||
        !ReadNodeSettings(*defaults, "defaults", &node_defaults)) {
      return false;
    }
  }
  if (cache_clusters != nullptr &&
      !ReadCacheClusters(*cache_clusters, node_defaults, &fleet->cache_clusters)) {
    return false;
  }
  if (replication_groups != nullptr &&
      !ReadReplicationGroups(*replication_groups, node_defaults, &fleet->replication_groups)) {
    return false;
  }
  if (!CheckIdsUnique()) return false;

  fleet->api.state = Resolve("state");
  return api == nullptr || ReadApi(*api, &fleet->api);
}

}  // namespace

std::string Endpoint::ToString() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Expected<Endpoint> ParseEndpoint(std::string_view text) {
  // None of these messages repeats the text, so that callers can decide whether it is safe to
  // show (see the '@' case).
  if (text.find('@') != std::string_view::npos) {
    return Status::Error("expected host:port; a user name or password does not belong here");
  }
  if (text.find("://") != std::string_view::npos) {
    return Status::Error("expected host:port, not a URL");
  }
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return Status::Error("missing ']' after the IPv6 address");
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return Status::Error("missing ':port' after ']'");
    port = rest.substr(1);
    bracketed = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Status::Error("missing port; expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Status::Error("an IPv6 address needs brackets, as in [::1]:6379");
    }
  }
  if (host.empty()) return Status::Error("missing host; expected host:port");
  for (char c : host) {
    const bool ok = IsAsciiLetter(c) || IsAsciiDigit(c) || c == '.' || c == '-' || c == '_' ||
                    (bracketed && (c == ':' || c == '%'));
    if (!ok) return Status::Error("host has a character that is not allowed in a host name");
  }
  if (port.empty()) return Status::Error("missing port; expected host:port");
  if (!std::all_of(port.begin(), port.end(), IsAsciiDigit)) {
    return Status::Error("port is not a number");
  }
  // Leading zeros are harmless, so the length check comes after stripping them.
  const size_t first_digit = std::min(port.find_first_not_of('0'), port.size());
  const std::string_view digits = port.substr(first_digit);
  const unsigned long value = digits.size() > 5 ? 0 : std::stoul("0" + std::string(digits));
  if (digits.size() > 5 || value == 0 || value > 65535) {
    return Status::Error("port must be between 1 and 65535");
  }
  return Endpoint{std::string(host), static_cast<uint16_t>(value)};
}

std::string_view CaptureModeName(CaptureMode mode) {
  switch (mode) {
    case CaptureMode::kSync:
      return "sync";
    case CaptureMode::kBgsaveFile:
      return "bgsave-file";
  }
  return "sync";
}

std::optional<CaptureMode> CaptureModeFromName(std::string_view name) {
  if (name == "sync") return CaptureMode::kSync;
  if (name == "bgsave-file") return CaptureMode::kBgsaveFile;
  return std::nullopt;
}

const CacheClusterEntry* Fleet::FindCacheCluster(std::string_view id) const {
  for (const CacheClusterEntry& entry : cache_clusters) {
    if (EqualsIgnoreCase(entry.id, id)) return &entry;
  }
  return nullptr;
}

const ReplicationGroupEntry* Fleet::FindReplicationGroup(std::string_view id) const {
  for (const ReplicationGroupEntry& entry : replication_groups) {
    if (EqualsIgnoreCase(entry.id, id)) return &entry;
  }
  return nullptr;
}

std::string FleetError::ToString() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += "key " + key + ": ";
  return out + message;
}

Expected<Fleet, FleetError> ParseFleet(std::string_view toml_text, const fs::path& file) {
  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  if (ec) absolute = file;
  absolute = absolute.lexically_normal();

  toml::table root;
  try {
    root = toml::parse(toml_text, file.string());
  } catch (const toml::parse_error& error) {
    return FleetError{file.string(), static_cast<int>(error.source().begin.line),
                      static_cast<int>(error.source().begin.column), "",
                      WithoutValue(error.description())};
  }

  Fleet fleet;
  fleet.file = absolute;
  Loader loader(file.string(), absolute.parent_path());
  if (!loader.Load(root, &fleet)) return loader.TakeError();
  return fleet;
}

Expected<Fleet, FleetError> LoadFleet(const fs::path& file) {
  auto fail = [&](std::string message) {
    return FleetError{file.string(), 0, 0, "", std::move(message)};
  };
  // Bounded whatever the kind of file: --fleet /dev/zero or a pipe that never ends is refused
  // after 16 MiB, not read until memory runs out.
  std::string text;
  switch (const int err = detail::ReadFileBounded(file, kMaxFleetFileBytes, &text)) {
    case 0:
      break;
    case ENOENT:
      return fail("fleet file not found");
    case EISDIR:
      return fail("fleet file is a directory");
    case EFBIG:
      return fail("fleet file is larger than 16 MiB");
    default:
      return fail("cannot read fleet file: " + detail::ErrnoMessage(err));
  }
  return ParseFleet(text, file);
}

fs::path DefaultFleetPath(std::string_view flag) {
  if (!flag.empty()) return fs::path(flag);
  if (const char* env = std::getenv("FINALSNAP_FLEET"); env != nullptr && *env != '\0') {
    return fs::path(env);
  }
  return fs::path("finalsnap.toml");
}

}  // namespace finalsnap
