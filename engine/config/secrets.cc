// The secret readers (fleet.h): ResolvePassword and ResolveApiSecret read a password or an API
// secret from the environment variable or the file the fleet file names, only when it is needed.
//
// Every error names the fleet file's key ("cache_clusters.a.password_file: ...") and never a
// value: not the secret, and not the variable's name or the file's path either, since a secret
// pasted into password_env or password_file would otherwise come back in the error, on stderr
// and in JSON.
#include <cerrno>
#include <cstdlib>
#include <map>
#include <string>

#include "file_io.h"
#include "finalsnap/fleet.h"
#include "finalsnap/text.h"

namespace finalsnap {
namespace {

// The largest password or secret file. Redis passwords are bulk strings of any length, but a
// secret file bigger than this is certainly the wrong file.
constexpr size_t kMaxSecretBytes = 64 << 10;

// Reads a secret from an environment variable or a file; neither set means no secret. Errors
// begin with `key`, the fleet file's key that chose the source.
ResolvedSecret ReadSecret(const std::string& key, const std::string& env,
                          const std::filesystem::path& file) {
  if (!env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr)
      return Status::Error(key + ": the environment variable it names is not set");
    if (*value == '\0') return Status::Error(key + ": the environment variable it names is empty");
    return std::optional<std::string>(value);
  }
  if (file.empty()) return std::optional<std::string>();

  std::string value;
  switch (const int err = detail::ReadFileBounded(file, kMaxSecretBytes, &value)) {
    case 0:
      break;
    case EISDIR:
      return Status::Error(key + ": the file it names is a directory");
    case EFBIG:
      return Status::Error(key + ": the file it names is larger than 64 KiB");
    default:
      return Status::Error(key + ": cannot read the file it names: " + detail::ErrnoMessage(err));
  }
  // Editors and `echo` add a newline that is not part of the secret.
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (!value.empty() && value.back() == '\r') value.pop_back();
  if (value.empty()) return Status::Error(key + ": the file it names is empty");
  return std::optional<std::string>(std::move(value));
}

// The key to name: the one the loader recorded, else the setting's own name (settings built in
// code rather than loaded).
std::string KeyOr(const std::string& recorded, const std::string& env, const char* env_key,
                  const char* file_key) {
  if (!recorded.empty()) return recorded;
  return env.empty() ? file_key : env_key;
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The shared AWS files are INI: "[section]" lines, then "key = value" lines; '#' and ';' start
// comments. Returns the keys of `section`, nullopt if the file has no such section, or an error
// when the file exists but cannot be read.
Expected<std::optional<std::map<std::string, std::string>>> IniSection(
    const std::filesystem::path& file, const std::string& section) {
  std::string text;
  switch (const int err = detail::ReadFileBounded(file, size_t{1} << 20, &text)) {
    case 0:
      break;
    case ENOENT:
      return std::optional<std::map<std::string, std::string>>();
    default:
      return Status::Error("cannot read " + file.string() + ": " + detail::ErrnoMessage(err));
  }
  std::optional<std::map<std::string, std::string>> found;
  bool inside = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      std::string_view name = line.substr(1, line.size() - 2);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      inside = name == section;
      if (inside && !found) found.emplace();
      continue;
    }
    const size_t eq = line.find('=');
    if (!inside || eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq);
    std::string_view value = line.substr(eq + 1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    (*found)[Lower(key)] = std::string(value);
  }
  return found;
}

std::filesystem::path AwsFile(const char* variable, const char* name) {
  if (std::string set = Env(variable); !set.empty()) return set;
  return std::filesystem::path(Env("HOME")) / ".aws" / name;
}

// Fills `out` from profile `name` of the shared files, or says what is missing.
Status FromProfile(const std::string& name, ObjectStoreCredentials* out) {
  const std::filesystem::path credentials_file =
      AwsFile("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  const std::filesystem::path config_file = AwsFile("AWS_CONFIG_FILE", "config");
  auto credentials = IniSection(credentials_file, name);
  if (!credentials.ok()) return credentials.error();
  auto config = IniSection(config_file, name == "default" ? name : "profile " + name);
  if (!config.ok()) return config.error();
  if (!credentials->has_value() && !config->has_value()) {
    return Status::Error("profile " + name + " is in neither " + credentials_file.string() +
                         " nor " + config_file.string());
  }
  std::map<std::string, std::string> keys = config->value_or(std::map<std::string, std::string>{});
  for (auto& [k, v] : credentials->value_or(std::map<std::string, std::string>{})) keys[k] = v;
  if (keys["aws_access_key_id"].empty() || keys["aws_secret_access_key"].empty()) {
    return Status::Error("profile " + name +
                         " has no aws_access_key_id and aws_secret_access_key (in " +
                         credentials_file.string() + " or " + config_file.string() + ")");
  }
  out->access_key_id = keys["aws_access_key_id"];
  out->secret_access_key = keys["aws_secret_access_key"];
  out->session_token = keys["aws_session_token"];
  if (out->region.empty()) out->region = keys["region"];
  out->source = "profile " + name;
  return Status::Ok();
}

}  // namespace

Expected<ObjectStoreCredentials> ResolveObjectStoreCredentials(
    const ObjectStoreSettings& settings) {
  ObjectStoreCredentials out;
  out.region = settings.region;
  if (out.region.empty()) out.region = Env("AWS_REGION");
  if (out.region.empty()) out.region = Env("AWS_DEFAULT_REGION");
  if (!settings.access_key_id.empty()) {
    const std::string key =
        KeyOr(settings.secret_key, settings.secret_env, "storage.secret_access_key_env",
              "storage.secret_access_key_file");
    ResolvedSecret secret = ReadSecret(key, settings.secret_env, settings.secret_file);
    if (!secret.ok()) return secret.error();
    if (!secret->has_value()) {
      return Status::Error("storage.access_key_id has no secret_access_key_env or _file");
    }
    out.access_key_id = settings.access_key_id;
    out.secret_access_key = std::move(**secret);
    out.source = key;
  } else if (!settings.profile.empty()) {
    if (Status s = FromProfile(settings.profile, &out); !s.ok()) {
      return Status::Error("storage.profile: " + s.message());
    }
  } else if (!Env("AWS_ACCESS_KEY_ID").empty() || !Env("AWS_SECRET_ACCESS_KEY").empty()) {
    if (Env("AWS_ACCESS_KEY_ID").empty() || Env("AWS_SECRET_ACCESS_KEY").empty()) {
      return Status::Error(
          "the environment sets only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    }
    out.access_key_id = Env("AWS_ACCESS_KEY_ID");
    out.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
    out.session_token = Env("AWS_SESSION_TOKEN");
    out.source = "the environment (AWS_ACCESS_KEY_ID)";
  } else {
    const std::string profile = Env("AWS_PROFILE").empty() ? "default" : Env("AWS_PROFILE");
    if (Status s = FromProfile(profile, &out); !s.ok()) {
      return Status::Error(
          "no credentials for " + settings.Url() +
          ": set storage.access_key_id with secret_access_key_env or _file, or storage.profile, "
          "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (" +
          s.message() + ")");
    }
  }
  if (out.region.empty()) out.region = "us-east-1";
  return out;
}

ResolvedSecret ResolvePassword(const NodeSettings& settings) {
  return ReadSecret(
      KeyOr(settings.password_key, settings.password_env, "password_env", "password_file"),
      settings.password_env, settings.password_file);
}

ResolvedSecret ResolveApiSecret(const ApiCredential& credential) {
  if (credential.secret_env.empty() && credential.secret_file.empty()) {
    return Status::Error("credential " + credential.access_key_id +
                         " has no secret_access_key_env or secret_access_key_file");
  }
  const std::string key = KeyOr(credential.secret_key, credential.secret_env,
                                "secret_access_key_env", "secret_access_key_file");
  ResolvedSecret secret = ReadSecret(key, credential.secret_env, credential.secret_file);
  if (secret.ok() && secret->value_or("").size() < kMinApiSecretBytes) {
    return Status::Error(key + ": the secret is shorter than " +
                         std::to_string(kMinApiSecretBytes) +
                         " bytes; use a random secret of at least that length");
  }
  return secret;
}

}  // namespace finalsnap
