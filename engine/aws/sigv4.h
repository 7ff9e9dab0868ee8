// AWS Signature Version 4: verification for the API server (`finalsnap serve`), the check every
// request passes before it can reach an operation, and signing for the S3 client (s3_client.h),
// both from the same building blocks, so what one signs the other would accept.
//
// Signing: SignV4 adds x-amz-date, x-amz-content-sha256 (and x-amz-security-token with a session
// token) and the Authorization header to a request's headers, as botocore does for S3.
//
// Verification: start with VerifySigV4. It takes the request as it arrived (method, raw
// request-target, headers, body) and a lookup from access key id to secret, and either accepts it
// or names the AWS error code to answer with:
//
//   MissingAuthenticationToken  403  no Authorization header and no X-Amz-Algorithm query parameter
//   IncompleteSignature         400  an Authorization header or presigned query that does not parse
//   InvalidClientTokenId        403  an access key id the fleet file does not list
//   SignatureDoesNotMatch       403  a wrong secret, a request changed after signing, a wrong scope
//   RequestExpired              400  signed more than 15 minutes before or after the server's clock
//                                    (or past a presigned URL's X-Amz-Expires)
//
// Both ways the aws CLI and SDKs sign are accepted: the Authorization header (what the aws CLI
// sends with its form-encoded POST) and the presigned query string (X-Amz-Algorithm,
// X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Signature), which is how a plain GET in
// the ElastiCache documentation's form is signed. The canonical request is built exactly as AWS
// specifies it (and botocore builds it): method, URI path with dot segments removed and encoded,
// query parameters decoded, re-encoded and sorted, the signed headers lower-cased, trimmed and
// sorted, and the SHA-256 of the body as received. The signature is compared in constant time.
//
// This file does no I/O; the building blocks are exposed for the unit tests, which hold them to
// values computed independently with botocore.
#ifndef FINALSNAP_AWS_SIGV4_H_
#define FINALSNAP_AWS_SIGV4_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace finalsnap::detail {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kSigV4Terminator = "aws4_request";
// The payload hash of a request whose body is not hashed (S3 over TLS, with Content-MD5).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; sent as x-amz-security-token
};

// A request about to be sent. `headers` must hold every header to be signed, with lower-case
// names and one entry per name, host among them; SignV4 appends x-amz-date,
// x-amz-content-sha256, x-amz-security-token (with a session token) and authorization.
struct RequestToSign {
  std::string_view method;           // "PUT"
  std::string_view canonical_uri;    // the path as sent, already encoded: "/bucket/a/0001.rdb"
  std::string_view canonical_query;  // CanonicalQueryString of the query as sent: "uploads="
  std::string_view payload_hash;     // Sha256Hex(body) or kUnsignedPayload
  std::string_view region;           // "us-west-2"
  std::string_view service;          // "s3"
  std::chrono::system_clock::time_point now;
  HeaderList* headers = nullptr;
};
void SignV4(const RequestToSign& request, const SigV4Credentials& credentials);

struct SigV4Request {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // the raw request-target: "/", "/?Action=...&X-Amz-Signature=..."
  const HeaderList* headers = nullptr;  // as received; names in any case, repeats allowed
  std::string_view body;
};

struct SigV4Verdict {
  bool ok = false;
  // On refusal: the AWS error code, its HTTP status and a message that never contains a secret.
  std::string code;
  int http_status = 0;
  std::string message;
  // On success (and on a refusal after the credential parsed): who signed, and for where.
  std::string access_key_id;
  std::string region;
};

// The secret for an access key id, or nullopt if the key is unknown.
using SecretLookup = std::function<std::optional<std::string>(std::string_view access_key_id)>;

// How far the signing time may be from the server's clock, either way.
inline constexpr std::chrono::minutes kMaxClockSkew{15};

SigV4Verdict VerifySigV4(const SigV4Request& request, const SecretLookup& secrets,
                         std::chrono::system_clock::time_point now,
                         std::string_view service = "elasticache");

// --- Building blocks (exposed for the unit tests). -----------------------------------------

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and '/' if keep_slash).
std::string UriEncode(std::string_view s, bool keep_slash);
// Decodes %XX escapes; with plus_is_space also '+' (form encoding). nullopt on a bad escape.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);
// The canonical URI of a raw request path: dot segments and empty segments removed (as botocore
// does), then encoded with '/' kept. "" becomes "/".
std::string CanonicalUri(std::string_view raw_path);
// The canonical query string of a raw query: each name and value decoded and strictly
// re-encoded, sorted by name then value, joined with '&'. X-Amz-Signature is left out when
// drop_signature (presigned requests). nullopt on a bad escape.
std::optional<std::string> CanonicalQueryString(std::string_view raw_query, bool drop_signature);
// Lower-case hex of SHA-256(data).
std::string Sha256Hex(std::string_view data);
// HMAC-SHA256(key, data), raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);
// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);
// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical_request>".
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
std::string ToHex(std::string_view bytes);
// The decoded query parameters of a raw query, in order, or nullopt on a bad escape.
std::optional<std::vector<std::pair<std::string, std::string>>> DecodeQuery(
    std::string_view raw_query);
// botocore's ' '.join(value.split()): trims and collapses every run of whitespace to one space.
std::string CanonicalHeaderValue(std::string_view value);
// "<date>/<region>/<service>/aws4_request".
std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service);

// "20150202T192317Z" <-> time. nullopt unless exactly that form and a valid time.
std::optional<std::chrono::system_clock::time_point> ParseAmzDate(std::string_view text);
std::string FormatAmzDate(std::chrono::system_clock::time_point time);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_AWS_SIGV4_H_
