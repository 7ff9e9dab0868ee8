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
#include "fleet_loader.h"

namespace finalsnap {
namespace fleet_loader {

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

}  // namespace fleet_loader

using namespace fleet_loader;  // NOLINT: this file is the loader's

Status CheckLocalStorage(const StorageSettings& storage) {
  if (!storage.object_store) return Status::Ok();
  return Status::Error("storage.url (" + storage.object_store->Url() +
                       "): snapshots cannot be kept in an object store by this version of "
                       "finalsnap yet; use storage.path for local storage");
}

std::string ObjectStoreSettings::Url() const {
  return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix);
}

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
