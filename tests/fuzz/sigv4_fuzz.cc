// libFuzzer target for the SigV4 canonicaliser and verifier (engine/api/sigv4.h): the canonical
// URI, query string and headers, the percent-encoding both ways, the X-Amz-Date parser and the
// Authorization header parser (reached through VerifySigV4, which is the only way a request gets
// to it).
//
// Input: read with libFuzzer's FuzzedDataProvider: a selector byte, then strings for the request
// path, query, method, body, a handful of header names and values, and a free-form Authorization
// header and X-Amz-Date.
//
// Crashes and undefined behaviour are found by the sanitizers. Wrong answers are found by
// invariants that hold for every input; a violated one prints what it was and traps:
//   - every function gives the same answer twice (no hidden state);
//   - PercentDecode(UriEncode(s)) == s, with or without '/' kept, and UriEncode's output holds
//     only unreserved characters, '%XX' with upper-case hex (and '/' when kept);
//   - CanonicalQueryString is a fixed point (canonicalising its output gives the output again),
//     holds only unreserved characters, '%XX', '=' and '&', has X-Amz-Signature dropped when
//     asked, and fails exactly when the raw query has a '%' not followed by two hex digits;
//   - CanonicalUri's output holds only unreserved characters, '/' and '%XX'; it has no empty,
//     "." or ".." segment; canonicalising the path it encodes gives it again;
//   - ParseAmzDate accepts only the 16-character form, and FormatAmzDate gives back the same text
//     (but for a leap second, :60, which is the next minute);
//   - VerifySigV4 on the free-form Authorization header refuses with a known code and its
//     status, never accepts, and never puts the secret in its message;
//   - a request signed here, by an independent canonicaliser written from the SigV4
//     specification, is accepted at its signing time, and refused (SignatureDoesNotMatch) once
//     its body, method or a signed header changes.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "finalsnap/text.h"
#include "sigv4.h"

namespace {

using namespace finalsnap::detail;
using finalsnap::EqualsIgnoreCase;
using finalsnap::Lower;

#define FUZZ_CHECK(cond, what)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "sigv4_fuzz: invariant violated (%s): %s\n", what, #cond); \
      __builtin_trap();                                                               \
    }                                                                                 \
  } while (0)

constexpr char kAccessKey[] = "AKIDFUZZ";
constexpr char kSecret[] = "fuzz-secret-7c1e0a9b4f2d8e6a/+=";

bool IsUnreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
         c == '~';
}

bool IsUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }
bool IsHex(char c) { return IsUpperHex(c) || (c >= 'a' && c <= 'f'); }

// Only unreserved characters, '%XX' (upper-case hex) and the characters in `also`.
bool OnlyEncoded(std::string_view s, std::string_view also) {
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (IsUnreserved(c) || also.find(c) != std::string_view::npos) continue;
    if (c != '%' || i + 2 >= s.size() || !IsUpperHex(s[i + 1]) || !IsUpperHex(s[i + 2])) {
      return false;
    }
    i += 2;
  }
  return true;
}

bool HasBadEscape(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) return true;
    i += 2;
  }
  return false;
}

void CheckEncoding(const std::string& s) {
  for (const bool keep_slash : {false, true}) {
    const std::string encoded = UriEncode(s, keep_slash);
    FUZZ_CHECK(encoded == UriEncode(s, keep_slash), "UriEncode is deterministic");
    FUZZ_CHECK(OnlyEncoded(encoded, keep_slash ? "/" : ""), "UriEncode's alphabet");
    const std::optional<std::string> decoded = PercentDecode(encoded, false);
    FUZZ_CHECK(decoded && *decoded == s, "PercentDecode(UriEncode(s)) == s");
  }
  const std::optional<std::string> a = PercentDecode(s, true);
  const std::optional<std::string> b = PercentDecode(s, true);
  FUZZ_CHECK(a == b, "PercentDecode is deterministic");
  FUZZ_CHECK(a.has_value() == !HasBadEscape(s), "PercentDecode fails exactly on a bad escape");
}

void CheckQuery(const std::string& query) {
  for (const bool drop : {false, true}) {
    const std::optional<std::string> canonical = CanonicalQueryString(query, drop);
    FUZZ_CHECK(canonical == CanonicalQueryString(query, drop), "deterministic query");
    FUZZ_CHECK(canonical.has_value() == !HasBadEscape(query), "fails exactly on a bad escape");
    if (!canonical) continue;
    FUZZ_CHECK(OnlyEncoded(*canonical, "=&"), "the canonical query's alphabet");
    FUZZ_CHECK(CanonicalQueryString(*canonical, drop) == canonical,
               "the canonical query is a fixed point");
    if (drop) {
      FUZZ_CHECK(("&" + *canonical).find("&X-Amz-Signature=") == std::string::npos,
                 "X-Amz-Signature is dropped");
    }
  }
}

void CheckUri(const std::string& path) {
  const std::string canonical = CanonicalUri(path);
  FUZZ_CHECK(canonical == CanonicalUri(path), "deterministic URI");
  FUZZ_CHECK(OnlyEncoded(canonical, "/"), "the canonical URI's alphabet");
  const std::optional<std::string> plain = PercentDecode(canonical, false);
  FUZZ_CHECK(plain.has_value(), "the canonical URI decodes");
  // Segments: none empty (but the ends of a leading or trailing '/'), none "." or "..".
  std::string_view rest = *plain;
  if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (!rest.empty()) {
    for (size_t start = 0;;) {
      const size_t end = rest.find('/', start);
      const std::string_view segment = rest.substr(start, end - start);
      FUZZ_CHECK(!segment.empty() && segment != "." && segment != "..", "normalized segments");
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
  }
  if (!plain->empty()) {
    FUZZ_CHECK(CanonicalUri(*plain) == canonical, "canonicalising the canonical path again");
  }
}

void CheckDate(const std::string& text) {
  const auto parsed = ParseAmzDate(text);
  FUZZ_CHECK(parsed == ParseAmzDate(text), "deterministic date");
  if (!parsed) return;
  FUZZ_CHECK(text.size() == 16 && text[8] == 'T' && text[15] == 'Z', "the date's form");
  const std::string formatted = FormatAmzDate(*parsed);
  if (text.substr(13, 2) == "60") {
    FUZZ_CHECK(*parsed == *ParseAmzDate(text.substr(0, 13) + "59Z") + std::chrono::seconds(1),
               "a leap second is the next minute");
  } else {
    FUZZ_CHECK(formatted == text, "FormatAmzDate(ParseAmzDate(s)) == s");
  }
}

std::optional<std::string> Lookup(std::string_view key) {
  if (key == kAccessKey) return std::string(kSecret);
  return std::nullopt;
}

bool KnownRefusal(const SigV4Verdict& v) {
  static const std::set<std::pair<std::string, int>> kKnown = {{"MissingAuthenticationToken", 403},
                                                               {"IncompleteSignature", 400},
                                                               {"InvalidClientTokenId", 403},
                                                               {"SignatureDoesNotMatch", 403},
                                                               {"RequestExpired", 400}};
  return kKnown.count({v.code, v.http_status}) == 1 && !v.message.empty();
}

// botocore's ' '.join(value.split()) for the C locale's whitespace, written again here.
std::string Collapse(std::string_view v) {
  std::string out;
  std::string word;
  for (const char c : v) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      if (!word.empty()) out += (out.empty() ? "" : " ") + word;
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out += (out.empty() ? "" : " ") + word;
  return out;
}

// The Authorization header for `request`, signed at `amz_date` over `signed_names` (sorted,
// lower-case, "host" and "x-amz-date" among them), built from the specification.
std::string Sign(const SigV4Request& request, const std::vector<std::string>& signed_names,
                 const std::string& amz_date) {
  const std::string_view target = request.target;
  const size_t question = target.find('?');
  const std::string_view raw_path = target.substr(0, question);
  const std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  std::string headers;
  std::string names;
  for (const std::string& name : signed_names) {
    std::string joined;
    bool first = true;
    for (const auto& [n, v] : *request.headers) {
      if (Lower(n) != name) continue;
      joined += (first ? "" : ",") + Collapse(v);
      first = false;
    }
    headers += name + ":" + joined + "\n";
    names += (names.empty() ? "" : ";") + name;
  }
  const std::string canonical = std::string(request.method) + "\n" + CanonicalUri(raw_path) + "\n" +
                                CanonicalQueryString(raw_query, false).value_or("") + "\n" +
                                headers + "\n" + names + "\n" + Sha256Hex(request.body);
  const std::string date = amz_date.substr(0, 8);
  const std::string scope = date + "/us-west-2/elasticache/aws4_request";
  const std::string signature =
      ToHex(HmacSha256(SigningKey(kSecret, date, "us-west-2", "elasticache"),
                       StringToSign(amz_date, scope, canonical)));
  return std::string("AWS4-HMAC-SHA256 Credential=") + kAccessKey + "/" + scope +
         ", SignedHeaders=" + names + ", Signature=" + signature;
}

bool QueryIsPlain(std::string_view query) {
  // Parameters that switch to another kind of authentication, or are refused on their own.
  if (HasBadEscape(query)) return false;
  for (size_t start = 0; start <= query.size();) {
    const size_t end = std::min(query.find('&', start), query.size());
    const std::string_view pair = query.substr(start, end - start);
    const std::optional<std::string> name = PercentDecode(pair.substr(0, pair.find('=')), false);
    if (name &&
        (*name == "X-Amz-Algorithm" || *name == "X-Amz-Security-Token" || *name == "Signature" ||
         *name == "AWSAccessKeyId" || *name == "SignatureVersion")) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string path = "/" + in.ConsumeRandomLengthString(64);
  const std::string query = in.ConsumeRandomLengthString(128);
  std::string method = in.ConsumeRandomLengthString(8);
  const std::string body = in.ConsumeRandomLengthString(128);
  const std::string date_text = in.ConsumeRandomLengthString(20);
  HeaderList headers;
  const int extra = in.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < extra; ++i) {
    std::string name = in.ConsumeRandomLengthString(16);
    std::string value = in.ConsumeRandomLengthString(32);
    headers.emplace_back(std::move(name), std::move(value));
  }
  const std::string authorization = in.ConsumeRandomLengthString(256);

  CheckEncoding(path);
  CheckEncoding(query);
  CheckEncoding(body);
  CheckQuery(query);
  CheckUri(path);
  CheckUri(query);  // any text, not only a path that starts with '/'
  CheckDate(date_text);

  const std::string target = query.empty() ? path : path + "?" + query;
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1422905000));
  const std::string amz_date = FormatAmzDate(now);

  // A free-form Authorization header: the parser's input, never accepted.
  {
    HeaderList h = headers;
    h.emplace_back("Host", "127.0.0.1:8080");
    h.emplace_back("X-Amz-Date", date_text);
    h.emplace_back("Authorization", authorization);
    const SigV4Request request{method, target, &h, body};
    const SigV4Verdict v = VerifySigV4(request, Lookup, now);
    const SigV4Verdict again = VerifySigV4(request, Lookup, now);
    FUZZ_CHECK(v.ok == again.ok && v.code == again.code && v.message == again.message,
               "deterministic verdict");
    FUZZ_CHECK(!v.ok, "a free-form Authorization header is never accepted");
    FUZZ_CHECK(KnownRefusal(v), "a known refusal");
    FUZZ_CHECK(v.message.find(kSecret) == std::string::npos, "the secret is never echoed");
  }

  // The same request, signed properly here.
  if (method.empty() || method.find_first_of(" \t\r\n") != std::string::npos) method = "POST";
  const size_t question = target.find('?');
  if (question != std::string::npos &&
      !QueryIsPlain(std::string_view(target).substr(question + 1))) {
    return 0;
  }
  HeaderList h;
  std::set<std::string> names = {"host", "x-amz-date"};
  for (const auto& [name, value] : headers) {
    const std::string lower = Lower(name);
    // Header names are tokens (RFC 9110; http-parser refuses anything else).
    const bool token = std::all_of(lower.begin(), lower.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    if (lower.empty() || !token || lower == "authorization" || lower == "x-amz-date" ||
        lower == "host" || lower == "x-amz-security-token" || lower == "x-amz-content-sha256") {
      continue;
    }
    h.emplace_back(name, value);
    names.insert(lower);
  }
  h.emplace_back("Host", "127.0.0.1:8080");
  h.emplace_back("X-Amz-Date", amz_date);
  const std::vector<std::string> signed_names(names.begin(), names.end());
  SigV4Request request{method, target, &h, body};
  h.emplace_back("Authorization", Sign(request, signed_names, amz_date));
  const SigV4Verdict accepted = VerifySigV4(request, Lookup, now);
  FUZZ_CHECK(accepted.ok, "a correctly signed request is accepted");
  FUZZ_CHECK(accepted.access_key_id == kAccessKey && accepted.region == "us-west-2",
             "who signed, for where");

  const std::string other_body = body + "x";
  SigV4Request tampered = request;
  tampered.body = other_body;
  FUZZ_CHECK(VerifySigV4(tampered, Lookup, now).code == "SignatureDoesNotMatch",
             "a changed body is refused");
  const std::string other_method = method + "X";
  tampered = request;
  tampered.method = other_method;
  FUZZ_CHECK(VerifySigV4(tampered, Lookup, now).code == "SignatureDoesNotMatch",
             "a changed method is refused");
  HeaderList changed = h;
  changed[changed.size() - 3].second = "127.0.0.1:9999";  // Host
  tampered = request;
  tampered.headers = &changed;
  FUZZ_CHECK(VerifySigV4(tampered, Lookup, now).code == "SignatureDoesNotMatch",
             "a changed signed header is refused");
  FUZZ_CHECK(!VerifySigV4(request, Lookup, now + std::chrono::minutes(16)).ok,
             "a stale request is refused");
  return 0;
}
