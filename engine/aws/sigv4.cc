// SigV4's building blocks and the signer (sigv4.h), with OpenSSL's SHA-256 and HMAC.
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <map>

#include "finalsnap/status.h"
#include "finalsnap/text.h"

namespace finalsnap::detail {
namespace {

bool Unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::vector<std::pair<std::string, std::string>>> DecodeQuery(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  if (query.empty()) return params;
  for (std::string_view pair : SplitView(query, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::optional<std::string> name = PercentDecode(pair.substr(0, eq), false);
    std::optional<std::string> value =
        PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), false);
    if (!name || !value) return std::nullopt;
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

std::string CanonicalHeaderValue(std::string_view s) {
  std::string out;
  bool pending_space = false;
  for (const char c : s) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service) {
  return std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/" +
         std::string(kSigV4Terminator);
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (Unreserved(byte) || (keep_slash && c == '/')) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  // botocore's remove_dot_segments: drops empty and "." segments, resolves "..".
  std::vector<std::string_view> out;
  for (std::string_view segment : SplitView(raw_path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(segment);
  }
  std::string path = raw_path.front() == '/' ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0) path += '/';
    path += out[i];
  }
  if (raw_path.back() == '/' && !out.empty()) path += '/';
  // botocore quotes the path as it appears in the URL (safe '/~'), so an escape in the raw path
  // is encoded again ('%' -> '%25'), as the SigV4 rules for non-S3 services say.
  return UriEncode(path, /*keep_slash=*/true);
}

std::optional<std::string> CanonicalQueryString(std::string_view raw_query, bool drop_signature) {
  std::optional<std::vector<std::pair<std::string, std::string>>> params = DecodeQuery(raw_query);
  if (!params) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [name, value] : *params) {
    if (drop_signature && name == "X-Amz-Signature") continue;
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return {};  // never matches a signature: a failure refuses, it never accepts
  }
  return ToHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &length) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(mac), length);
}

std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  const std::string k_date = HmacSha256("AWS4" + std::string(secret), date);
  const std::string k_region = HmacSha256(k_date, region);
  const std::string k_service = HmacSha256(k_region, service);
  return HmacSha256(k_service, kSigV4Terminator);
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  return std::string(kSigV4Algorithm) + "\n" + std::string(amz_date) + "\n" + std::string(scope) +
         "\n" + Sha256Hex(canonical_request);
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
  auto number = [&](size_t pos, size_t len) -> int {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return -1;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;
  tm.tm_mon = number(4, 2) - 1;
  tm.tm_mday = number(6, 2);
  tm.tm_hour = number(9, 2);
  tm.tm_min = number(11, 2);
  tm.tm_sec = number(13, 2);
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  const std::tm copy = tm;
  const time_t t = ::timegm(&tm);
  // timegm normalizes out-of-range days (Feb 31); a date that moved was not a real date.
  if (t == static_cast<time_t>(-1) || tm.tm_mday != copy.tm_mday || tm.tm_mon != copy.tm_mon) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(t);
}

std::string FormatAmzDate(std::chrono::system_clock::time_point time) {
  const time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

void SignV4(const RequestToSign& request, const SigV4Credentials& credentials) {
  HeaderList& headers = *request.headers;
  const std::string amz_date = FormatAmzDate(request.now);
  const std::string date = amz_date.substr(0, 8);
  headers.emplace_back("x-amz-date", amz_date);
  headers.emplace_back("x-amz-content-sha256", std::string(request.payload_hash));
  if (!credentials.session_token.empty()) {
    headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  std::vector<std::pair<std::string, std::string>> sorted;
  sorted.reserve(headers.size());
  for (const auto& [name, value] : headers)
    sorted.emplace_back(Lower(name), CanonicalHeaderValue(value));
  std::sort(sorted.begin(), sorted.end());
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : sorted) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }
  const std::string canonical_request =
      std::string(request.method) + "\n" + std::string(request.canonical_uri) + "\n" +
      std::string(request.canonical_query) + "\n" + canonical_headers + "\n" + signed_headers +
      "\n" + std::string(request.payload_hash);
  const std::string scope = CredentialScope(date, request.region, request.service);
  const std::string signature = ToHex(
      HmacSha256(SigningKey(credentials.secret_access_key, date, request.region, request.service),
                 StringToSign(amz_date, scope, canonical_request)));
  headers.emplace_back("authorization", std::string(kSigV4Algorithm) +
                                            " Credential=" + credentials.access_key_id + "/" +
                                            scope + ", SignedHeaders=" + signed_headers +
                                            ", Signature=" + signature);
}

}  // namespace finalsnap::detail
