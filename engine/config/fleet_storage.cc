// The fleet file's [storage] and [api] tables (fleet_loader.h).
#include <algorithm>

#include "finalsnap/text.h"
#include "fleet_loader.h"

namespace finalsnap::fleet_loader {

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

}  // namespace finalsnap::fleet_loader
