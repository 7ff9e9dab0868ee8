// The secret readers (fleet.h): ResolvePassword and ResolveApiSecret read a password or an API
// secret from the environment variable or the file the fleet file names, only when it is needed.
//
// Every error names the fleet file's key ("cache_clusters.a.password_file: ...") and never a
// value: not the secret, and not the variable's name or the file's path either, since a secret
// pasted into password_env or password_file would otherwise come back in the error, on stderr
// and in JSON.
#include <cerrno>
#include <cstdlib>
#include <string>

#include "file_io.h"
#include "finalsnap/fleet.h"

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

}  // namespace

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
