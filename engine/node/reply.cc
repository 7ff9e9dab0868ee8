// Reply and the INFO parsers (reply.h).
#include "reply.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace finalsnap::detail {
namespace {

// "name<kv>value<separator>name<kv>value...", CRLF line ends allowed, into name -> value. Items
// without <kv> (INFO's "# Server" headers, blank lines) are skipped; the first of two equal names
// wins.
std::map<std::string, std::string> SplitPairs(std::string_view text, char separator, char kv) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    const size_t end = text.find(separator);
    std::string_view item = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (!item.empty() && item.back() == '\r') item.remove_suffix(1);
    if (item.empty() || item[0] == '#') continue;
    const size_t at = item.find(kv);
    if (at == std::string_view::npos) continue;
    out.emplace(std::string(item.substr(0, at)), std::string(item.substr(at + 1)));
  }
  return out;
}

}  // namespace

Reply ReplyFrom(const redisReply* r) {
  Reply out;
  if (r == nullptr) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(ReplyFrom(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

std::string Reply::ToString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kInteger:
      return std::to_string(integer);
    case Type::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i) s += ", ";
        s += elements[i].ToString();
      }
      return s + "]";
    }
    default:
      return str;
  }
}

std::map<std::string, std::string> ParseInfo(std::string_view text) {
  return SplitPairs(text, '\n', ':');
}

std::map<std::string, std::string> ParseInfoFields(std::string_view text) {
  return SplitPairs(text, ',', '=');
}

std::map<uint64_t, rdb::DbCounts> ParseKeyspace(const std::map<std::string, std::string>& info) {
  auto number = [](const std::map<std::string, std::string>& fields, const char* name) {
    uint64_t n = 0;
    if (auto it = fields.find(name); it != fields.end()) {
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
    }
    return n;
  };
  std::map<uint64_t, rdb::DbCounts> out;
  for (const auto& [name, value] : info) {
    if (name.size() < 3 || name.compare(0, 2, "db") != 0) continue;
    uint64_t db = 0;
    auto [end, ec] = std::from_chars(name.data() + 2, name.data() + name.size(), db);
    if (ec != std::errc() || end != name.data() + name.size()) continue;
    const std::map<std::string, std::string> fields = ParseInfoFields(value);
    out[db] = rdb::DbCounts{number(fields, "keys"), number(fields, "expires")};
  }
  return out;
}

}  // namespace finalsnap::detail
