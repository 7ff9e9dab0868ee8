// libFuzzer target for the fleet loader (engine/config/fleet.cc): TOML text -> Fleet, through
// ParseFleet, the function LoadFleet hands a file's text to.
//
// Crashes and undefined behaviour are found by the sanitizers (toml++ included: it is compiled
// into this target). Wrong answers are found by invariants that hold for every input; a violated
// one prints which and traps:
//   - ParseFleet never throws; a refusal has a message;
//   - a refusal never echoes a string value of the file (a secret pasted into the wrong key must
//     not come back): for each string value of 6 or more bytes (not a key, nor one of the
//     loader's own words), the file is parsed again with the value's letters and digits changed,
//     and the changed value must not appear in the new message;
//   - an accepted fleet holds only checked values: every path (storage.path, api.state,
//     password_file, secret_access_key_file) is absolute and lexically normal; every id is an
//     ElastiCache id (1-40 letters, digits and single hyphens, a letter first, so never a path
//     component); access key ids are letters, digits and underscores; password_env and
//     secret_access_key_env are environment variable names; every endpoint has a host and a
//     port from 1 to 65535 and its ToString parses back to it; at most one password source per
//     entry and exactly one secret source per credential; timeouts and the level are in range;
//   - parsing is deterministic: the same text gives the same verdict.
//
// Input: the bytes are the fleet file's text. Seeds: the fleet files in tests/engine/fleet_test.cc
// and the README's example (see tests/fuzz/README.md).
#include <toml++/toml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/fleet.h"

namespace {

namespace fs = std::filesystem;
using finalsnap::Fleet;
using finalsnap::NodeSettings;

#define FUZZ_CHECK(cond, what)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fleet_fuzz: invariant violated (%s): %s\n", what, #cond); \
      __builtin_trap();                                                               \
    }                                                                                 \
  } while (0)

// Words the loader's messages may hold whatever the input: key names and allowed values.
constexpr std::string_view kLoaderWords =
    "storage defaults cache_clusters replication_groups api path compression level username "
    "password_env password_file password capture connect_timeout_ms command_timeout_ms "
    "pause_timeout_ms transfer_timeout_ms engine endpoint endpoints sentinels master_name listen "
    "state credentials access_key_id secret_access_key_env secret_access_key_file "
    "secret_access_key zstd lz4 none sync bgsave-file redis valkey host:port";

// The string values under `node`, and every key (a message may name a key, which is no value).
void Collect(const toml::node& node, std::vector<std::string>* values, std::string* keys) {
  if (const auto* table = node.as_table()) {
    for (auto&& [key, value] : *table) {
      *keys += std::string(key.str()) + "\n";
      Collect(value, values, keys);
    }
  } else if (const auto* array = node.as_array()) {
    for (const toml::node& element : *array) Collect(element, values, keys);
  } else if (const auto* text = node.as_string()) {
    values->push_back(text->get());
  }
}

bool IsId(std::string_view id) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (id.empty() || id.size() > 40 || !letter(id.front()) || id.back() == '-') return false;
  for (size_t i = 0; i < id.size(); ++i) {
    if (!letter(id[i]) && !digit(id[i]) && id[i] != '-') return false;
    if (id[i] == '-' && i + 1 < id.size() && id[i + 1] == '-') return false;
  }
  return true;
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  for (const char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool IsCheckedPath(const fs::path& path) {
  return path.is_absolute() && path == path.lexically_normal();
}

void CheckEndpoint(const finalsnap::Endpoint& endpoint) {
  FUZZ_CHECK(!endpoint.host.empty(), "an endpoint has a host");
  FUZZ_CHECK(endpoint.port != 0, "an endpoint has a port");
  const auto again = finalsnap::ParseEndpoint(endpoint.ToString());
  FUZZ_CHECK(again.ok() && *again == endpoint, "an endpoint's ToString parses back to it");
}

void CheckSettings(const NodeSettings& s) {
  FUZZ_CHECK(s.password_env.empty() || s.password_file.empty(), "one password source");
  FUZZ_CHECK(s.password_env.empty() || IsEnvName(s.password_env), "password_env is a name");
  FUZZ_CHECK(s.password_file.empty() || IsCheckedPath(s.password_file),
             "password_file is absolute and normal");
  FUZZ_CHECK(s.engine.empty() || s.engine == "redis" || s.engine == "valkey", "engine");
  FUZZ_CHECK(s.connect_timeout_ms >= 1 && s.command_timeout_ms >= 1 && s.pause_timeout_ms >= 1 &&
                 s.transfer_timeout_ms >= 0,
             "timeouts are in range");
}

void CheckFleet(const Fleet& fleet) {
  FUZZ_CHECK(IsCheckedPath(fleet.storage.path), "storage.path is absolute and normal");
  FUZZ_CHECK(IsCheckedPath(fleet.api.state), "api.state is absolute and normal");
  switch (fleet.storage.compression) {
    case finalsnap::Compression::kZstd:
      FUZZ_CHECK(fleet.storage.level >= 1 && fleet.storage.level <= 19, "zstd level");
      break;
    case finalsnap::Compression::kLz4:
      FUZZ_CHECK(fleet.storage.level >= 0 && fleet.storage.level <= 12, "lz4 level");
      break;
    case finalsnap::Compression::kNone:
      FUZZ_CHECK(fleet.storage.level == 0, "no level without compression");
      break;
  }
  for (const auto& c : fleet.cache_clusters) {
    FUZZ_CHECK(IsId(c.id), "a cache cluster id is an ElastiCache id");
    CheckEndpoint(c.endpoint);
    CheckSettings(c.settings);
  }
  for (const auto& g : fleet.replication_groups) {
    FUZZ_CHECK(IsId(g.id), "a replication group id is an ElastiCache id");
    FUZZ_CHECK(!g.endpoints.empty(), "a group has endpoints");
    for (const auto& e : g.endpoints) CheckEndpoint(e);
    for (const auto& e : g.sentinels) CheckEndpoint(e);
    FUZZ_CHECK(g.sentinels.empty() == g.master_name.empty(), "sentinels go with master_name");
    CheckSettings(g.settings);
  }
  CheckEndpoint(fleet.api.listen);
  for (const auto& credential : fleet.api.credentials) {
    const std::string& id = credential.access_key_id;
    FUZZ_CHECK(!id.empty() && id.size() <= 128, "access_key_id length");
    for (const char c : id) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      FUZZ_CHECK(ok, "access_key_id characters");
    }
    FUZZ_CHECK(credential.secret_env.empty() != credential.secret_file.empty(),
               "exactly one secret source");
    FUZZ_CHECK(credential.secret_env.empty() || IsEnvName(credential.secret_env),
               "secret_access_key_env is a name");
    FUZZ_CHECK(credential.secret_file.empty() || IsCheckedPath(credential.secret_file),
               "secret_access_key_file is absolute and normal");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const fs::path file = "/fuzz/etc/finalsnap.toml";
  const auto loaded = finalsnap::ParseFleet(text, file);
  const auto again = finalsnap::ParseFleet(text, file);
  FUZZ_CHECK(loaded.ok() == again.ok(), "parsing is deterministic");
  if (loaded.ok()) {
    CheckFleet(*loaded);
    return 0;
  }
  const std::string& message = loaded.error().message;
  FUZZ_CHECK(!message.empty(), "a refusal says why");
  FUZZ_CHECK(message == again.error().message, "parsing is deterministic");
  // The values the file holds (when it parses as TOML at all), none of which may be echoed.
  std::vector<std::string> values;
  std::string keys;
  try {
    const toml::table root = toml::parse(text);
    Collect(root, &values, &keys);
  } catch (const toml::parse_error&) {
    // Not TOML: the loader refused it before looking at any value.
  }
  for (const std::string& value : values) {
    if (value.size() < 6 || kLoaderWords.find(value) != std::string_view::npos ||
        keys.find(value) != std::string::npos) {
      continue;
    }
    // The message may hold the value's bytes by coincidence (a value "st be bet" is in "must be
    // between"). An echo is a message that changes with the value: change every letter and
    // digit of it in the text (flipping the lowest bit keeps letters letters and digits digits)
    // and look for the changed value in the new message.
    std::string changed = value;
    for (char& c : changed) {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (alnum) c = static_cast<char>(c ^ 1);
    }
    if (changed == value || keys.find(changed) != std::string::npos) continue;
    std::string text2(text);
    for (size_t at = text2.find(value); at != std::string::npos;
         at = text2.find(value, at + changed.size())) {
      text2.replace(at, value.size(), changed);
    }
    const auto loaded2 = finalsnap::ParseFleet(text2, file);
    if (loaded2.ok()) continue;
    const std::string& message2 = loaded2.error().message;
    if (message2.find(changed) != std::string::npos &&
        kLoaderWords.find(changed) == std::string_view::npos) {
      std::fprintf(stderr, "fleet_fuzz: the message echoes a value: %s\n", message2.c_str());
      __builtin_trap();
    }
  }
  return 0;
}
