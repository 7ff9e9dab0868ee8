// Reply and the INFO parsers (reply.h).
#include "reply.h"

#include <hiredis/hiredis.h>

#include <algorithm>
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

std::optional<uint64_t> ToU64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
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

std::vector<std::map<std::string, std::string>> ParseClientList(std::string_view text) {
  std::vector<std::map<std::string, std::string>> out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    std::map<std::string, std::string> fields = SplitPairs(line, ' ', '=');
    if (!fields.empty()) out.push_back(std::move(fields));
  }
  return out;
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

Expected<std::vector<ClusterNodeLine>> ParseClusterNodes(std::string_view text) {
  std::vector<ClusterNodeLine> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    size_t s = 0;
    while (s < line.size()) {
      size_t e = line.find(' ', s);
      if (e == std::string_view::npos) e = line.size();
      if (e > s) f.push_back(line.substr(s, e - s));
      s = e + 1;
    }
    auto fail = [&](const std::string& why) {
      return Status::Error("line " + std::to_string(line_no) + ": " + why);
    };
    if (f.size() < 8) return fail("expected at least 8 fields");
    ClusterNodeLine n;
    n.id = std::string(f[0]);
    std::string_view addr = f[1];
    addr = addr.substr(0, addr.find(','));  // ",hostname"
    addr = addr.substr(0, addr.find('@'));  // "@cport"
    const size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return fail("no port in " + std::string(f[1]));
    n.host = std::string(addr.substr(0, colon));
    if (n.host.size() > 2 && n.host.front() == '[' && n.host.back() == ']') {
      n.host = n.host.substr(1, n.host.size() - 2);
    }
    auto port = ToU64(addr.substr(colon + 1));
    if (!port || *port > 65535) return fail("bad port in " + std::string(f[1]));
    n.port = static_cast<uint16_t>(*port);
    size_t fs = 0;
    const std::string_view flags = f[2];
    while (fs <= flags.size()) {
      size_t fe = flags.find(',', fs);
      if (fe == std::string_view::npos) fe = flags.size();
      if (fe > fs) n.flags.insert(std::string(flags.substr(fs, fe - fs)));
      fs = fe + 1;
    }
    if (f[3] != "-") n.master_id = std::string(f[3]);
    n.link_connected = f[7] == "connected";
    for (size_t i = 8; i < f.size(); ++i) {
      const std::string_view slot = f[i];
      if (slot.front() == '[') {
        n.migrating = true;
        continue;
      }
      const size_t dash = slot.find('-');
      auto a = ToU64(slot.substr(0, dash));
      auto b = dash == std::string_view::npos ? a : ToU64(slot.substr(dash + 1));
      if (!a || !b || *a > *b || *b > 16383) return fail("bad slot entry " + std::string(slot));
      n.slots.emplace_back(static_cast<int>(*a), static_cast<int>(*b));
    }
    std::sort(n.slots.begin(), n.slots.end());
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<ReplicaLine> ParseReplicaLines(const std::map<std::string, std::string>& info) {
  std::vector<ReplicaLine> out;
  for (int i = 0;; ++i) {
    auto it = info.find("slave" + std::to_string(i));
    if (it == info.end()) break;
    const std::map<std::string, std::string> f = ParseInfoFields(it->second);
    auto get = [&f](const char* k) {
      auto at = f.find(k);
      return at == f.end() ? std::string() : at->second;
    };
    ReplicaLine r;
    r.ip = get("ip");
    r.port = static_cast<uint16_t>(ToU64(get("port")).value_or(0));
    r.state = get("state");
    r.offset = ToU64(get("offset")).value_or(0);
    if (r.port != 0) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace finalsnap::detail
