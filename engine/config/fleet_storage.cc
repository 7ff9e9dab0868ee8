// The fleet file's [storage] and [api] tables (fleet_loader.h).
#include <algorithm>

#include "finalsnap/text.h"
#include "fleet_loader.h"

namespace finalsnap::fleet_loader {

bool Loader::ReadStorage(const toml::table& table, StorageSettings* storage) {
  constexpr std::string_view kPath = "storage";
  if (!CheckKeys(table, kPath, {kStorageKeys, kObjectStoreKeys}, &kInlineSecret)) return false;

  std::optional<std::string> path;
  if (!GetNonEmptyString(table, kPath, "path", &path)) return false;
  if (path) storage->path = Resolve(*path);
  if (table.get("url") != nullptr) {
    if (path) {
      return Fail(table.get("url")->source(), "storage.url",
                  "url and path are both set; snapshots go to one store: use one");
    }
    ObjectStoreSettings object_store;
    if (!ReadObjectStore(table, &object_store)) return false;
    storage->object_store = std::move(object_store);
  } else {
    for (std::string_view key : kObjectStoreKeys) {
      if (const toml::node* node = table.get(key)) {
        return Fail(node->source(), JoinKey(kPath, key),
                    "is a setting of an object store; it needs url = \"s3://bucket/prefix\"");
      }
    }
  }

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

// One '/'-separated run of [A-Za-z0-9._-] segments, none empty, "." or "..".
bool IsPlainKeyPath(std::string_view text) {
  if (text.empty() || text.size() > 512) return false;
  for (std::string_view segment : SplitView(text, '/')) {
    if (segment.empty() || segment == "." || segment == "..") return false;
    for (const char c : segment) {
      if (!IsAsciiLetter(c) && !IsAsciiDigit(c) && c != '.' && c != '_' && c != '-') return false;
    }
  }
  return true;
}

// AWS's bucket naming rules (which every S3-compatible store accepts): 3 to 63 lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or digit.
bool IsBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || IsAsciiDigit(c); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '-'; }) &&
         name.find("..") == std::string_view::npos;
}

bool Loader::ReadObjectStore(const toml::table& table, ObjectStoreSettings* out) {
  constexpr std::string_view kPath = "storage";
  std::optional<std::string> url;
  if (!GetNonEmptyString(table, kPath, "url", &url)) return false;
  const toml::source_region& url_at = table.get("url")->source();
  if (!url->starts_with("s3://")) {
    return Fail(url_at, "storage.url", "must be s3://bucket or s3://bucket/prefix");
  }
  std::string rest = url->substr(5);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t slash = rest.find('/');
  out->bucket = rest.substr(0, slash);
  if (!IsBucketName(out->bucket)) {
    return Fail(url_at, "storage.url",
                "the bucket must be 3 to 63 lower-case letters, digits, '.' and '-', starting "
                "and ending with a letter or digit");
  }
  if (slash != std::string::npos) {
    out->prefix = rest.substr(slash + 1);
    if (!IsPlainKeyPath(out->prefix)) {
      return Fail(url_at, "storage.url",
                  "the prefix must be '/'-separated names of letters, digits, '.', '_' and "
                  "'-' (no empty, '.' or '..' part), at most 512 characters");
    }
  }

  std::optional<std::string> endpoint;
  if (!GetNonEmptyString(table, kPath, "endpoint", &endpoint)) return false;
  if (endpoint) {
    std::string e = *endpoint;
    while (!e.empty() && e.back() == '/') e.pop_back();
    const size_t scheme = e.find("://");
    const std::string host = scheme == std::string::npos
                                 ? ""
                                 : e.substr(scheme + 3, e.find('/', scheme + 3) - scheme - 3);
    const std::string lower = Lower(e.substr(0, scheme == std::string::npos ? 0 : scheme));
    if ((lower != "http" && lower != "https") || host.empty() ||
        e.find_first_of("?#@ ") != std::string::npos) {
      return Fail(table.get("endpoint")->source(), "storage.endpoint",
                  "must be http://host[:port] or https://host[:port], optionally with a path, "
                  "and no user, query or fragment");
    }
    out->endpoint = e;
  }
  std::optional<std::string> region;
  if (!GetNonEmptyString(table, kPath, "region", &region)) return false;
  if (region) {
    const bool ok = region->size() <= 32 && std::all_of(region->begin(), region->end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || IsAsciiDigit(c) || c == '-';
                    });
    if (!ok) {
      return Fail(table.get("region")->source(), "storage.region",
                  "must be a region name such as us-west-2 (lower-case letters, digits, '-')");
    }
    out->region = *region;
  }
  out->virtual_addressing = out->endpoint.empty();
  std::optional<std::string> addressing;
  if (!GetString(table, kPath, "addressing", &addressing)) return false;
  if (addressing) {
    if (*addressing != "path" && *addressing != "virtual") {
      return Fail(table.get("addressing")->source(), "storage.addressing",
                  "must be path (https://host/bucket/key) or virtual (https://bucket.host/key)");
    }
    out->virtual_addressing = *addressing == "virtual";
  }
  if (out->virtual_addressing && out->bucket.find('.') != std::string::npos &&
      Lower(out->endpoint).starts_with("https")) {
    return Fail(url_at, "storage.url",
                "a bucket with '.' cannot be reached with virtual addressing over https (its "
                "name breaks the certificate's wildcard); use addressing = \"path\"");
  }

  std::optional<std::string> profile;
  if (!GetNonEmptyString(table, kPath, "profile", &profile)) return false;
  if (profile) {
    if (!std::all_of(profile->begin(), profile->end(), [](char c) {
          return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_' || c == '-' || c == '.';
        })) {
      return Fail(table.get("profile")->source(), "storage.profile",
                  "must be a profile name (letters, digits, '_', '-', '.')");
    }
    out->profile = *profile;
  }
  std::optional<std::string> id;
  if (!ReadAccessKeyId(table, kPath, &id)) return false;
  if (id) {
    if (profile) {
      return Fail(table.get("access_key_id")->source(), "storage.access_key_id",
                  "access_key_id and profile are both set; use one");
    }
    out->access_key_id = *id;
    if (!ReadSecretSource(table, kPath, &out->secret_env, &out->secret_file, &out->secret_key)) {
      return false;
    }
  } else {
    for (const char* key : {"secret_access_key_env", "secret_access_key_file"}) {
      if (const toml::node* node = table.get(key)) {
        return Fail(node->source(), JoinKey(kPath, key), "needs access_key_id beside it");
      }
    }
  }

  // S3's limits on a part: at least 5 MiB (but the last), at most 5 GiB.
  int part_mib = 16;
  if (!GetInt(table, kPath, "part_size_mib", 5, &part_mib, 5120)) return false;
  out->part_size_bytes = static_cast<uint64_t>(part_mib) << 20;
  return GetInt(table, kPath, "parts_in_flight", 1, &out->parts_in_flight, 64);
}

bool Loader::ReadAccessKeyId(const toml::table& table, std::string_view path,
                             std::optional<std::string>* out) {
  if (!GetNonEmptyString(table, path, "access_key_id", out)) return false;
  if (!*out) return true;
  const std::string& id = **out;
  if (id.size() > kMaxAccessKeyIdLength || !std::all_of(id.begin(), id.end(), [](char c) {
        return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_';
      })) {
    return Fail(table.get("access_key_id")->source(), JoinKey(path, "access_key_id"),
                "must be 1 to 128 letters, digits and underscores");
  }
  return true;
}

bool Loader::ReadCredential(const toml::table& table, std::string_view path,
                            ApiCredential* credential) {
  if (!CheckKeys(table, path, {kCredentialKeys}, &kInlineSecret)) return false;
  std::optional<std::string> id;
  if (!ReadAccessKeyId(table, path, &id)) return false;
  if (!id) {
    return Fail(table.source(), JoinKey(path, "access_key_id"),
                "missing: a credential needs access_key_id");
  }
  credential->access_key_id = *id;

  return ReadSecretSource(table, path, &credential->secret_env, &credential->secret_file,
                          &credential->secret_key);
}

bool Loader::ReadSecretSource(const toml::table& table, std::string_view path, std::string* env_out,
                              fs::path* file_out, std::string* key_out) {
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
    *env_out = *env;
    *key_out = JoinKey(path, "secret_access_key_env");
  }
  std::optional<std::string> file;
  if (!GetNonEmptyString(table, path, "secret_access_key_file", &file)) return false;
  if (file) {
    *file_out = Resolve(*file);
    *key_out = JoinKey(path, "secret_access_key_file");
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
