// The fleet-file loader's helpers and typed getters (fleet_loader.h).
#include "fleet_loader.h"

#include <algorithm>
#include <limits>

#include "finalsnap/text.h"

namespace finalsnap::fleet_loader {

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
                    int* out, int max) {
  std::optional<int64_t> value;
  if (!GetInteger(table, path, key, &value)) return false;
  if (!value) return true;
  if (*value < min || *value > max) {
    return Fail(table.get(key)->source(), JoinKey(path, key),
                "must be between " + std::to_string(min) + " and " + std::to_string(max));
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

}  // namespace finalsnap::fleet_loader
