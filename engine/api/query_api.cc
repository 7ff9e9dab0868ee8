// The Query protocol's wire format (query_api.h).
#include "query_api.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

#include "sigv4.h"

namespace finalsnap::detail {

ApiError ApiError::Of(std::string_view fault, std::string message) {
  const FaultInfo info = LookupFault(fault);
  return ApiError{info.code, info.http_status, info.sender, std::move(message)};
}

namespace {

ApiError BlankValue(std::string_view name) {
  return ApiError::Of("InvalidParameterValue",
                      "The parameter " + std::string(name) + " must not be empty or blank.");
}

}  // namespace

Expected<void, ApiError> QueryParams::AddForm(std::string_view form) {
  size_t start = 0;
  while (start <= form.size()) {
    size_t end = form.find('&', start);
    if (end == std::string_view::npos) end = form.size();
    const std::string_view pair = form.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) {
      if (end == form.size()) break;
      continue;
    }
    const size_t eq = pair.find('=');
    std::optional<std::string> name = PercentDecode(pair.substr(0, eq), true);
    std::optional<std::string> value =
        PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!name || !value) {
      return ApiError::Of("MalformedQueryString", "Malformed percent-escape in '" +
                                                      std::string(pair.substr(0, 200)) + "'.");
    }
    if (name->empty()) {
      return ApiError::Of("MalformedQueryString", "A parameter has an empty name.");
    }
    if (!values_.emplace(*name, std::move(*value)).second) {
      return ApiError::Of("InvalidParameterCombination",
                          "Parameter " + *name + " is given more than once.");
    }
    if (end == form.size()) break;
  }
  return {};
}

std::optional<std::string> QueryParams::Get(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

Expected<std::string, ApiError> QueryParams::Required(std::string_view name) {
  understood_.insert(std::string(name));
  std::optional<std::string> value = Get(name);
  if (!value) {
    return ApiError::Of("MissingParameter",
                        "The request must contain the parameter " + std::string(name) + ".");
  }
  if (IsBlank(*value)) return BlankValue(name);
  return *value;
}

std::optional<std::string> QueryParams::Optional(std::string_view name) {
  understood_.insert(std::string(name));
  return Get(name);
}

Expected<std::optional<bool>, ApiError> QueryParams::OptionalBool(std::string_view name) {
  std::optional<std::string> value = Optional(name);
  if (!value) return std::optional<bool>();
  if (*value == "true") return std::optional<bool>(true);
  if (*value == "false") return std::optional<bool>(false);
  return ApiError::Of("InvalidParameterValue", "Invalid boolean value '" + *value +
                                                   "' for parameter " + std::string(name) +
                                                   ": expected true or false.");
}

Expected<std::optional<int>, ApiError> QueryParams::OptionalInt(std::string_view name, int min,
                                                                int max) {
  std::optional<std::string> value = Optional(name);
  if (!value) return std::optional<int>();
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value->c_str(), &end, 10);
  if (value->empty() || *end != '\0' || errno != 0 || v < min || v > max) {
    return ApiError::Of("InvalidParameterValue",
                        "Invalid value '" + *value + "' for " + std::string(name) +
                            ": must be an integer from " + std::to_string(min) + " to " +
                            std::to_string(max) + ".");
  }
  return std::optional<int>(static_cast<int>(v));
}

Expected<std::optional<std::chrono::system_clock::time_point>, ApiError> QueryParams::OptionalTime(
    std::string_view name) {
  std::optional<std::string> value = Optional(name);
  using Result = std::optional<std::chrono::system_clock::time_point>;
  if (!value) return Result();
  Result t = ParseIsoTimestamp(*value);
  if (!t) {
    return ApiError::Of("InvalidParameterValue",
                        "Invalid timestamp '" + *value + "' for " + std::string(name) +
                            ": expected ISO 8601, such as 2015-02-02T19:23:17Z.");
  }
  return t;
}

Expected<void, ApiError> QueryParams::RejectUnknown() const {
  for (const auto& [name, value] : values_) {
    if (understood_.find(name) == understood_.end()) {
      return ApiError::Of("InvalidParameterValue", "Unknown parameter " + name +
                                                       " for this action (finalsnap refuses "
                                                       "parameters it would otherwise ignore).");
    }
  }
  for (const auto& [name, value] : values_) {
    if (protocol_.find(name) == protocol_.end() && IsBlank(value)) return BlankValue(name);
  }
  return {};
}

void AcceptProtocolParams(QueryParams& params) {
  for (const char* name :
       {"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "SignatureVersion",
        "SignatureMethod", "Timestamp"}) {
    params.Accept(name);
  }
}

Expected<ActionArgs, ApiError> ActionArgs::Read(QueryParams& params,
                                                std::span<const ParamRule> rules) {
  using Kind = ParamRule::Kind;
  ActionArgs args;
  for (const ParamRule& rule : rules) {
    const std::string name(rule.name);
    if (rule.kind == Kind::kUnsupported) {
      const bool given =
          !name.empty() && name.back() == '.'
              ? std::any_of(params.values().begin(), params.values().end(),
                            [&](const auto& p) { return p.first.rfind(name, 0) == 0; })
              : params.Has(name);
      if (given) return ApiError::Of("InvalidParameterValue", std::string(rule.refusal));
      continue;
    }
    if (rule.required) {
      Expected<std::string, ApiError> value = params.Required(name);
      if (!value.ok()) return value.error();
      args.values_.emplace(name, std::move(*value));
      continue;
    }
    // Each kind's reader marks the parameter understood and refuses a malformed value.
    auto keep = [&](auto read) -> Expected<void, ApiError> {
      auto value = read();
      if (!value.ok()) return value.error();
      if (auto& v = *value) args.values_.emplace(name, Value(std::move(*v)));
      return {};
    };
    Expected<void, ApiError> error;
    switch (rule.kind) {
      case Kind::kString:
        if (std::optional<std::string> v = params.Optional(name)) args.values_.emplace(name, *v);
        break;
      case Kind::kBool:
        error = keep([&] { return params.OptionalBool(name); });
        break;
      case Kind::kInt:
        error = keep([&] { return params.OptionalInt(name, rule.min, rule.max); });
        break;
      case Kind::kTime:
        error = keep([&] { return params.OptionalTime(name); });
        break;
      case Kind::kUnsupported:
        break;
    }
    if (!error.ok()) return error.error();
  }
  if (Expected<void, ApiError> e = params.RejectUnknown(); !e.ok()) return e.error();
  return args;
}

namespace {

std::string_view ListMemberName(std::string_view list) {
  // The `locationName` of each list's member in the model (service-2.json).
  static constexpr std::pair<std::string_view, std::string_view> kMembers[] = {
      {"CacheClusters", "CacheCluster"},
      {"CacheNodes", "CacheNode"},
      {"Snapshots", "Snapshot"},
      {"NodeSnapshots", "NodeSnapshot"},
      {"ReplicationGroups", "ReplicationGroup"},
      {"NodeGroups", "NodeGroup"},
      {"NodeGroupMembers", "NodeGroupMember"},
      {"MemberClusters", "ClusterId"},
      {"Events", "Event"},
  };
  for (const auto& [name, member] : kMembers) {
    if (name == list) return member;
  }
  return "member";
}

void WriteElement(std::string& out, std::string_view name, const ModelJson& value) {
  if (value.is_null()) return;
  out += '<';
  out += name;
  out += '>';
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) WriteElement(out, key, child);
  } else if (value.is_array()) {
    const std::string_view member = ListMemberName(name);
    for (const ModelJson& item : value) WriteElement(out, member, item);
  } else if (value.is_boolean()) {
    out += value.get<bool>() ? "true" : "false";
  } else if (value.is_string()) {
    out += XmlEscape(value.get_ref<const std::string&>());
  } else {
    out += value.dump();
  }
  out += "</";
  out += name;
  out += '>';
}

}  // namespace

std::string RenderResponse(std::string_view action, const ModelJson& result,
                           std::string_view request_id) {
  std::string out;
  out += "<";
  out += action;
  out += "Response xmlns=\"";
  out += kXmlNamespace;
  out += "\">";
  const std::string wrapper = std::string(action) + "Result";
  if (result.is_object() && !result.empty()) {
    WriteElement(out, wrapper, result);
  } else {
    out += "<" + wrapper + "/>";
  }
  out += "<ResponseMetadata><RequestId>";
  out += XmlEscape(request_id);
  out += "</RequestId></ResponseMetadata></";
  out += action;
  out += "Response>\n";
  return out;
}

std::string RenderError(const ApiError& error, std::string_view request_id) {
  std::string out = "<ErrorResponse xmlns=\"";
  out += kXmlNamespace;
  out += "\"><Error><Type>";
  out += error.sender ? "Sender" : "Receiver";
  out += "</Type><Code>";
  out += XmlEscape(error.code);
  out += "</Code><Message>";
  out += XmlEscape(error.message);
  out += "</Message></Error><RequestId>";
  out += XmlEscape(request_id);
  out += "</RequestId></ErrorResponse>\n";
  return out;
}

std::string IsoTimestamp(std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  const time_t seconds = static_cast<time_t>(ms.count() / 1000);
  const int millis = static_cast<int>(ms.count() % 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> ParseIsoTimestamp(std::string_view text) {
  size_t pos = 0;
  auto digits = [&](size_t n) -> int {
    if (pos + n > text.size()) return -1;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    pos += n;
    return v;
  };
  auto expect = [&](char c) {
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  };
  std::tm tm{};
  const int year = digits(4);
  if (year < 1970 || !expect('-')) return std::nullopt;
  const int month = digits(2);
  if (month < 1 || month > 12 || !expect('-')) return std::nullopt;
  const int day = digits(2);
  if (day < 1 || day > 31) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  std::chrono::microseconds fraction{0};
  long offset_seconds = 0;
  if (pos < text.size()) {
    if (!expect('T') && !expect(' ')) return std::nullopt;
    tm.tm_hour = digits(2);
    if (tm.tm_hour < 0 || tm.tm_hour > 23 || !expect(':')) return std::nullopt;
    tm.tm_min = digits(2);
    if (tm.tm_min < 0 || tm.tm_min > 59) return std::nullopt;
    if (expect(':')) {
      tm.tm_sec = digits(2);
      if (tm.tm_sec < 0 || tm.tm_sec > 60) return std::nullopt;
      if (expect('.')) {
        long micros = 0;
        int n = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (n < 6) micros = micros * 10 + (text[pos] - '0');
          ++n;
          ++pos;
        }
        if (n == 0) return std::nullopt;
        for (int k = n; k < 6; ++k) micros *= 10;
        fraction = std::chrono::microseconds(micros);
      }
    }
    if (expect('Z')) {
      // UTC
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      const int sign = text[pos] == '-' ? -1 : 1;
      ++pos;
      const int hours = digits(2);
      expect(':');
      const int minutes = digits(2);
      if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return std::nullopt;
      offset_seconds = sign * (hours * 3600L + minutes * 60L);
    } else if (pos != text.size()) {
      return std::nullopt;
    }
  }
  if (pos != text.size()) return std::nullopt;
  const std::tm copy = tm;
  const time_t t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1) || tm.tm_mday != copy.tm_mday) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t - offset_seconds) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(fraction);
}

std::string NewRequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const uint64_t a = rng();
  const uint64_t b = rng();
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

}  // namespace finalsnap::detail
