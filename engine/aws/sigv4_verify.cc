// SigV4 verification (sigv4.h): what `finalsnap serve` checks on every request.
#include <openssl/crypto.h>

#include <cstdlib>
#include <map>

#include "finalsnap/status.h"
#include "finalsnap/text.h"
#include "sigv4.h"

namespace finalsnap::detail {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

SigV4Verdict Refuse(std::string code, int status, std::string message) {
  SigV4Verdict v;
  v.code = std::move(code);
  v.http_status = status;
  v.message = std::move(message);
  return v;
}

SigV4Verdict Incomplete(std::string message) {
  return Refuse("IncompleteSignature", 400, std::move(message));
}

SigV4Verdict Mismatch(std::string message) {
  return Refuse("SignatureDoesNotMatch", 403, std::move(message));
}

constexpr char kMismatchMessage[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

// The values of one header (case-insensitive name), in order.
std::vector<std::string_view> HeaderValues(const HeaderList& headers, std::string_view lower_name) {
  std::vector<std::string_view> values;
  for (const auto& [name, value] : headers) {
    if (name.size() == lower_name.size() && Lower(name) == lower_name) values.push_back(value);
  }
  return values;
}

// What the signer claims: from the Authorization header or from the presigned query.
struct Claim {
  std::string credential;  // "AKID/20150202/us-west-2/elasticache/aws4_request"
  std::string signed_headers;
  std::string signature;
  std::string amz_date;
  std::optional<long> expires_seconds;  // presigned only
  bool presigned = false;
};

// Parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...": the claim, or
// the IncompleteSignature refusal to answer with.
Expected<Claim, SigV4Verdict> ParseAuthorization(std::string_view header) {
  header = Trim(header);
  const size_t space = header.find(' ');
  const std::string_view algorithm = header.substr(0, space);
  if (algorithm != kSigV4Algorithm) {
    return Incomplete("Unsupported authorization algorithm '" + std::string(algorithm) +
                      "': only AWS4-HMAC-SHA256 (Signature Version 4) is accepted.");
  }
  if (space == std::string_view::npos) {
    return Incomplete("Authorization header requires 'Credential' parameter.");
  }
  Claim claim;
  std::map<std::string, std::string, std::less<>> fields;
  for (std::string_view part : SplitView(header.substr(space + 1), ',')) {
    part = Trim(part);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return Incomplete(
          "Authorization header requires each component to be of the form "
          "key=value; got '" +
          std::string(part) + "'.");
    }
    fields[std::string(Trim(part.substr(0, eq)))] = std::string(Trim(part.substr(eq + 1)));
  }
  for (const char* required : {"Credential", "SignedHeaders", "Signature"}) {
    if (fields.find(required) == fields.end()) {
      return Incomplete("Authorization header requires '" + std::string(required) + "' parameter.");
    }
  }
  claim.credential = fields["Credential"];
  claim.signed_headers = fields["SignedHeaders"];
  claim.signature = fields["Signature"];
  return claim;
}

}  // namespace

SigV4Verdict VerifySigV4(const SigV4Request& request, const SecretLookup& secrets,
                         std::chrono::system_clock::time_point now, std::string_view service) {
  static const HeaderList kNoHeaders;
  const HeaderList& headers = request.headers != nullptr ? *request.headers : kNoHeaders;
  const size_t question = request.target.find('?');
  const std::string_view raw_path = request.target.substr(0, question);
  const std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);

  std::optional<std::vector<std::pair<std::string, std::string>>> query = DecodeQuery(raw_query);
  if (!query) return Incomplete("The query string has a malformed percent-escape.");
  auto query_value = [&](std::string_view name) -> std::optional<std::string> {
    std::optional<std::string> found;
    for (const auto& [n, v] : *query) {
      if (n == name) found = v;
    }
    return found;
  };

  const std::vector<std::string_view> authorization = HeaderValues(headers, "authorization");
  const std::optional<std::string> query_algorithm = query_value("X-Amz-Algorithm");

  if (authorization.empty() && !query_algorithm) {
    // Signature Version 2 query parameters are not an authentication this server accepts.
    if (query_value("Signature") || query_value("AWSAccessKeyId")) {
      return Incomplete(
          "Only Signature Version 4 is accepted (X-Amz-Algorithm=AWS4-HMAC-SHA256 "
          "or an Authorization header).");
    }
    return Refuse("MissingAuthenticationToken", 403, "Request is missing Authentication Token");
  }
  if (!authorization.empty() && query_algorithm) {
    return Incomplete(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
        "or the Authorization header should be specified.");
  }
  if (authorization.size() > 1) return Incomplete("More than one Authorization header.");
  if (const std::optional<std::string> version = query_value("SignatureVersion");
      version && *version != "4") {
    return Incomplete("SignatureVersion " + *version + " is not accepted; only 4.");
  }

  Claim claim;
  if (!authorization.empty()) {
    Expected<Claim, SigV4Verdict> parsed = ParseAuthorization(authorization.front());
    if (!parsed.ok()) return parsed.error();
    claim = std::move(parsed).value();
    const std::vector<std::string_view> dates = HeaderValues(headers, "x-amz-date");
    if (dates.size() != 1) {
      return Incomplete(
          "Authorization header requires existence of exactly one 'X-Amz-Date' "
          "header.");
    }
    claim.amz_date = std::string(Trim(dates.front()));
  } else {
    if (*query_algorithm != kSigV4Algorithm) {
      return Incomplete("X-Amz-Algorithm must be AWS4-HMAC-SHA256, not '" + *query_algorithm +
                        "'.");
    }
    claim.presigned = true;
    for (const char* required :
         {"X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"}) {
      if (!query_value(required)) {
        return Incomplete("A presigned request requires the " + std::string(required) +
                          " query parameter.");
      }
    }
    claim.credential = *query_value("X-Amz-Credential");
    claim.amz_date = *query_value("X-Amz-Date");
    claim.signed_headers = *query_value("X-Amz-SignedHeaders");
    claim.signature = *query_value("X-Amz-Signature");
    if (std::optional<std::string> expires = query_value("X-Amz-Expires")) {
      char* end = nullptr;
      const long seconds = std::strtol(expires->c_str(), &end, 10);
      if (expires->empty() || *end != '\0' || seconds < 1 || seconds > 604800) {
        return Incomplete("X-Amz-Expires must be a number of seconds from 1 to 604800.");
      }
      claim.expires_seconds = seconds;
    }
  }

  // Credential=AKID/DATE/REGION/SERVICE/aws4_request
  const std::vector<std::string_view> scope = SplitView(claim.credential, '/');
  if (scope.size() != 5 || scope[0].empty() || scope[1].empty() || scope[2].empty() ||
      scope[3].empty()) {
    return Incomplete(
        "Credential must have the form "
        "<access key id>/<date>/<region>/<service>/aws4_request, got '" +
        claim.credential + "'.");
  }
  SigV4Verdict result;
  result.access_key_id = std::string(scope[0]);
  result.region = std::string(scope[2]);
  auto refuse = [&](SigV4Verdict v) {
    v.access_key_id = result.access_key_id;
    v.region = result.region;
    return v;
  };

  // No session tokens here: the fleet file lists long-term keys only.
  if (!HeaderValues(headers, "x-amz-security-token").empty() ||
      query_value("X-Amz-Security-Token")) {
    return refuse(Refuse("InvalidClientTokenId", 403,
                         "The security token included in the request is invalid (finalsnap "
                         "accepts long-term access keys only, without a session token)."));
  }
  const std::optional<std::string> secret = secrets(scope[0]);
  if (!secret) {
    return refuse(Refuse("InvalidClientTokenId", 403,
                         "The security token included in the request is invalid."));
  }
  if (scope[4] != kSigV4Terminator) {
    return refuse(
        Mismatch("Credential should be scoped with a valid terminator: 'aws4_request', "
                 "not '" +
                 std::string(scope[4]) + "'."));
  }
  if (scope[3] != service) {
    return refuse(Mismatch("Credential should be scoped to correct service: '" +
                           std::string(service) + "'."));
  }
  const std::optional<std::chrono::system_clock::time_point> signed_at =
      ParseAmzDate(claim.amz_date);
  if (!signed_at) {
    return refuse(Incomplete("X-Amz-Date must be a UTC time of the form 20150202T192317Z, not '" +
                             claim.amz_date + "'."));
  }
  if (scope[1] != claim.amz_date.substr(0, 8)) {
    return refuse(Mismatch("Credential should be scoped to a valid date: '" +
                           claim.amz_date.substr(0, 8) + "', not '" + std::string(scope[1]) +
                           "'."));
  }

  // The signed headers: lower-case names separated by ';', each present in the request, and
  // host among them (otherwise the request could be replayed against another endpoint).
  const std::vector<std::string_view> signed_names = SplitView(claim.signed_headers, ';');
  bool has_host = false;
  std::string canonical_headers;
  for (std::string_view name : signed_names) {
    if (name.empty() || Lower(name) != name) {
      return refuse(
          Incomplete("SignedHeaders must be lower-case header names separated by ';', "
                     "got '" +
                     claim.signed_headers + "'."));
    }
    if (name == "host") has_host = true;
    const std::vector<std::string_view> values = HeaderValues(headers, name);
    if (values.empty()) {
      return refuse(Mismatch(std::string(kMismatchMessage) + " (signed header '" +
                             std::string(name) + "' is missing from the request)"));
    }
    std::string joined;
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) joined += ',';
      joined += CanonicalHeaderValue(values[i]);
    }
    canonical_headers += std::string(name) + ":" + joined + "\n";
  }
  if (!has_host) return refuse(Incomplete("SignedHeaders must include 'host'."));

  // The payload hash is always computed from the body as received: a signed
  // x-amz-content-sha256 header must agree with it, and an unsigned payload is not accepted,
  // since it would let the body (the action and its parameters) change after signing.
  const std::string payload_hash = Sha256Hex(request.body);
  const std::vector<std::string_view> content_sha = HeaderValues(headers, "x-amz-content-sha256");
  if (!content_sha.empty() && Lower(Trim(content_sha.front())) != payload_hash) {
    return refuse(
        Mismatch("The x-amz-content-sha256 header does not match the SHA-256 of the "
                 "request body (unsigned payloads are not accepted)."));
  }

  const std::optional<std::string> canonical_query =
      CanonicalQueryString(raw_query, claim.presigned);
  if (!canonical_query) return refuse(Incomplete("The query string has a malformed escape."));
  const std::string canonical_request =
      std::string(request.method) + "\n" + CanonicalUri(raw_path) + "\n" + *canonical_query + "\n" +
      canonical_headers + "\n" + claim.signed_headers + "\n" + payload_hash;
  const std::string scope_text = CredentialScope(scope[1], scope[2], scope[3]);
  const std::string expected =
      ToHex(HmacSha256(SigningKey(*secret, scope[1], scope[2], scope[3]),
                       StringToSign(claim.amz_date, scope_text, canonical_request)));
  const std::string given = Lower(claim.signature);
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return refuse(Mismatch(kMismatchMessage));
  }

  // Only a genuine signature gets as far as the clock: a stale request with a bad signature is
  // refused as a bad signature.
  const auto skew = now - *signed_at;
  const std::string now_text = FormatAmzDate(now);
  if (claim.expires_seconds) {
    if (*signed_at - now > kMaxClockSkew || skew > std::chrono::seconds(*claim.expires_seconds)) {
      return refuse(Refuse("RequestExpired", 400,
                           "Request has expired: signed at " + claim.amz_date + ", valid for " +
                               std::to_string(*claim.expires_seconds) + " s; the time is now " +
                               now_text + "."));
    }
  } else if (skew > kMaxClockSkew || -skew > kMaxClockSkew) {
    return refuse(Refuse("RequestExpired", 400,
                         "Request has expired: signed at " + claim.amz_date +
                             ", more than 15 minutes from the server's time " + now_text + "."));
  }
  result.ok = true;
  return result;
}

}  // namespace finalsnap::detail
