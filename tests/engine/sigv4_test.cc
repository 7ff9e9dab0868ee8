// SigV4 verification (engine/sigv4.h) against values computed independently with botocore, the
// signer the aws CLI itself uses. The expected values were produced on the development machine
// with botocore 1.43.11 (the aws CLI 1.45's) and are hard-coded here:
//
//   from botocore.auth import SigV4Auth, SigV4QueryAuth; from botocore.awsrequest import AWSRequest
//   creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
//   req = AWSRequest('POST', 'http://127.0.0.1:8080/', data=kBody,
//                    headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
//   with mock.patch('botocore.auth.get_current_datetime',
//                   return_value=datetime.datetime(2015, 2, 2, 19, 23, 17)):
//       SigV4Auth(creds, 'elasticache', 'us-west-2').add_auth(req)     # -> Authorization
//   (the canonical request and string to sign: SigV4Auth.canonical_request/string_to_sign on a
//   request prepared with _modify_request_before_signing, before the Authorization header)
//   SigV4QueryAuth(creds, 'elasticache', 'us-west-2', expires=900).add_auth(get)  # -> kPresigned
//   SigV4Auth._canonical_query_string_params / _normalize_url_path for the encoding cases
#include "sigv4.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

namespace finalsnap::detail {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

constexpr char kAccessKey[] = "AKIDEXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kBody[] =
    "Action=DeleteCacheCluster&Version=2015-02-02&CacheClusterId=myRedisCluster&"
    "FinalSnapshotIdentifier=bkup-20150515-final";
constexpr char kAuthorization[] =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150202/us-west-2/elasticache/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=5ed6789a2906cf3b845065b4e6f4a435921db14f40e54f73ffb7bd3a37fcc95d";
constexpr char kCanonicalRequest[] =
    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n"
    "host:127.0.0.1:8080\nx-amz-date:20150202T192317Z\n\ncontent-type;host;x-amz-date\n"
    "8ceb182ae47113c534df8faad7adf59d16bd94d4f85c4525411c828142672b45";
constexpr char kStringToSign[] =
    "AWS4-HMAC-SHA256\n20150202T192317Z\n20150202/us-west-2/elasticache/aws4_request\n"
    "789d94a21a130c1c10439297adeb70139a28d21a8ef4e0f6673a4e9dc13d646b";
// The documentation's GET (with its SignatureVersion, SignatureMethod and Timestamp), presigned.
constexpr char kPresigned[] =
    "/?Action=DeleteCacheCluster&CacheClusterId=myRedisCluster&FinalSnapshotIdentifier="
    "bkup-20150515-final&Version=2015-02-02&SignatureVersion=4&SignatureMethod=HmacSHA256&"
    "Timestamp=20150202T192317Z&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%"
    "2F20150202%2Fus-west-2%2Felasticache%2Faws4_request&X-Amz-Date=20150202T192317Z&"
    "X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature="
    "e2155bd013422505450797184b94c346d33d1f234a0a8f325aa1088778303526";

std::chrono::system_clock::time_point SignedAt() { return *ParseAmzDate("20150202T192317Z"); }

std::optional<std::string> Lookup(std::string_view key) {
  if (key == kAccessKey) return std::string(kSecret);
  return std::nullopt;
}

HeaderList PostHeaders() {
  return {{"Host", "127.0.0.1:8080"},
          {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
          {"X-Amz-Date", "20150202T192317Z"},
          {"Authorization", kAuthorization},
          {"Content-Length", "112"},
          {"User-Agent", "aws-cli/1.45.11"}};
}

SigV4Verdict VerifyPost(const HeaderList& headers, std::string_view body,
                        std::chrono::system_clock::time_point now = SignedAt()) {
  SigV4Request r;
  r.method = "POST";
  r.target = "/";
  r.headers = &headers;
  r.body = body;
  return VerifySigV4(r, Lookup, now);
}

SigV4Verdict VerifyGet(std::string_view target, std::chrono::system_clock::time_point now,
                       const HeaderList& headers = {
                           {"Host", "elasticache.us-west-2.amazonaws.com"}}) {
  SigV4Request r;
  r.method = "GET";
  r.target = target;
  r.headers = &headers;
  return VerifySigV4(r, Lookup, now);
}

TEST(SigV4BuildingBlocksTest, MatchBotocore) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(kBody), "8ceb182ae47113c534df8faad7adf59d16bd94d4f85c4525411c828142672b45");
  EXPECT_EQ(ToHex(SigningKey(kSecret, "20150202", "us-west-2", "elasticache")),
            "0e64472c3009875830a9d0ed3eceba3f322aaad90a3f6cb215077284ece8ea4b");
  EXPECT_EQ(StringToSign("20150202T192317Z", "20150202/us-west-2/elasticache/aws4_request",
                         kCanonicalRequest),
            kStringToSign);
  EXPECT_EQ(
      ToHex(HmacSha256(SigningKey(kSecret, "20150202", "us-west-2", "elasticache"), kStringToSign)),
      "5ed6789a2906cf3b845065b4e6f4a435921db14f40e54f73ffb7bd3a37fcc95d");
}

TEST(SigV4BuildingBlocksTest, CanonicalQueryAndUriMatchBotocore) {
  // botocore: _canonical_query_string_params([('b','x y'), ('a','1/2'), ('A~','é'), ('a','0'),
  // ('c','*+=&')]), i.e. the same parameters percent-encoded on the wire.
  EXPECT_EQ(CanonicalQueryString("b=x%20y&a=1%2F2&A~=%C3%A9&a=0&c=%2A%2B%3D%26", false),
            "A~=%C3%A9&a=0&a=1%2F2&b=x%20y&c=%2A%2B%3D%26");
  // Lenient input encodings give the same canonical form (a client may leave '*' or '/' bare).
  EXPECT_EQ(CanonicalQueryString("c=*%2B%3D%26&a=1/2", false), "a=1%2F2&c=%2A%2B%3D%26");
  EXPECT_EQ(CanonicalQueryString("X-Amz-Signature=abc&a=1", true), "a=1");
  EXPECT_EQ(CanonicalQueryString("", false), "");
  EXPECT_FALSE(CanonicalQueryString("a=%zz", false).has_value());
  // botocore: _normalize_url_path('/a/./b/../c//d/%41')
  EXPECT_EQ(CanonicalUri("/a/./b/../c//d/%41"), "/a/c/d/%2541");
  EXPECT_EQ(CanonicalUri(""), "/");
  EXPECT_EQ(CanonicalUri("/"), "/");
}

TEST(SigV4BuildingBlocksTest, AmzDates) {
  const auto t = ParseAmzDate("20150202T192317Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatAmzDate(*t), "20150202T192317Z");
  EXPECT_FALSE(ParseAmzDate("2015-02-02T19:23:17Z").has_value());
  EXPECT_FALSE(ParseAmzDate("20150231T192317Z").has_value());  // February 31
  EXPECT_FALSE(ParseAmzDate("20150202T252317Z").has_value());
  EXPECT_FALSE(ParseAmzDate("").has_value());
}

TEST(SigV4Test, AcceptsTheAwsCliPost) {
  const SigV4Verdict v = VerifyPost(PostHeaders(), kBody);
  EXPECT_TRUE(v.ok) << v.code << ": " << v.message;
  EXPECT_EQ(v.access_key_id, kAccessKey);
  EXPECT_EQ(v.region, "us-west-2");
}

TEST(SigV4Test, AcceptsWithinFifteenMinutesEitherWay) {
  EXPECT_TRUE(VerifyPost(PostHeaders(), kBody, SignedAt() + minutes(14)).ok);
  EXPECT_TRUE(VerifyPost(PostHeaders(), kBody, SignedAt() - minutes(14)).ok);
  const SigV4Verdict late = VerifyPost(PostHeaders(), kBody, SignedAt() + minutes(15) + seconds(1));
  EXPECT_EQ(late.code, "RequestExpired");
  EXPECT_EQ(late.http_status, 400);
  const SigV4Verdict early =
      VerifyPost(PostHeaders(), kBody, SignedAt() - minutes(15) - seconds(1));
  EXPECT_EQ(early.code, "RequestExpired");
}

TEST(SigV4Test, RefusesATamperedBody) {
  std::string body = kBody;
  body.replace(body.find("bkup-20150515-final"), 19, "bkup-20150515-other");
  const SigV4Verdict v = VerifyPost(PostHeaders(), body);
  EXPECT_EQ(v.code, "SignatureDoesNotMatch");
  EXPECT_EQ(v.http_status, 403);
  // Dropping the final snapshot after signing is the change that matters most.
  EXPECT_EQ(VerifyPost(PostHeaders(),
                       "Action=DeleteCacheCluster&Version=2015-02-02&"
                       "CacheClusterId=myRedisCluster")
                .code,
            "SignatureDoesNotMatch");
}

TEST(SigV4Test, RefusesTamperedSignedHeadersAndTargets) {
  HeaderList headers = PostHeaders();
  headers[0].second = "127.0.0.1:9999";  // replayed against another endpoint
  EXPECT_EQ(VerifyPost(headers, kBody).code, "SignatureDoesNotMatch");

  headers = PostHeaders();
  headers[2].second = "20150202T192318Z";  // another time than the one signed
  EXPECT_EQ(VerifyPost(headers, kBody).code, "SignatureDoesNotMatch");

  headers = PostHeaders();
  SigV4Request r;
  r.method = "POST";
  r.target = "/?Action=DeleteSnapshot";  // a query added after signing
  r.headers = &headers;
  r.body = kBody;
  EXPECT_EQ(VerifySigV4(r, Lookup, SignedAt()).code, "SignatureDoesNotMatch");
  r.target = "/";
  r.method = "PUT";
  EXPECT_EQ(VerifySigV4(r, Lookup, SignedAt()).code, "SignatureDoesNotMatch");
}

TEST(SigV4Test, UnsignedHeadersMayChange) {
  HeaderList headers = PostHeaders();
  headers[5].second = "something-else/1.0";  // User-Agent is not signed
  EXPECT_TRUE(VerifyPost(headers, kBody).ok);
  // Header names are case-insensitive, values trimmed and inner spaces collapsed.
  headers[1] = {"content-TYPE", "  application/x-www-form-urlencoded;   charset=utf-8 "};
  EXPECT_TRUE(VerifyPost(headers, kBody).ok);
}

TEST(SigV4Test, RefusesAWrongSecretAndAnUnknownKey) {
  const SigV4Verdict wrong = VerifySigV4(
      SigV4Request{"POST", "/", nullptr, kBody},
      [](std::string_view) { return std::optional<std::string>("not-the-secret"); }, SignedAt());
  // No headers at all: there is nothing to check.
  EXPECT_EQ(wrong.code, "MissingAuthenticationToken");

  const HeaderList headers = PostHeaders();
  SigV4Request r{"POST", "/", &headers, kBody};
  const SigV4Verdict bad_secret = VerifySigV4(
      r, [](std::string_view) { return std::optional<std::string>("not-the-secret"); }, SignedAt());
  EXPECT_EQ(bad_secret.code, "SignatureDoesNotMatch");
  const SigV4Verdict unknown = VerifySigV4(
      r, [](std::string_view) { return std::optional<std::string>(); }, SignedAt());
  EXPECT_EQ(unknown.code, "InvalidClientTokenId");
  EXPECT_EQ(unknown.http_status, 403);
}

TEST(SigV4Test, RefusesMissingAndMalformedAuthentication) {
  HeaderList headers = PostHeaders();
  headers.erase(headers.begin() + 3);  // no Authorization
  const SigV4Verdict missing = VerifyPost(headers, kBody);
  EXPECT_EQ(missing.code, "MissingAuthenticationToken");
  EXPECT_EQ(missing.http_status, 403);

  for (const char* bad : {"AWS AKIDEXAMPLE:abc",  // Signature Version 2
                          "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
                          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150202/us-west-2, "
                          "SignedHeaders=host, Signature=00",
                          "AWS4-HMAC-SHA256 garbage"}) {
    headers = PostHeaders();
    headers[3].second = bad;
    EXPECT_EQ(VerifyPost(headers, kBody).code, "IncompleteSignature") << bad;
  }
  // Host must be signed.
  headers = PostHeaders();
  headers[3].second =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150202/us-west-2/elasticache/aws4_request, "
      "SignedHeaders=x-amz-date, Signature=00";
  EXPECT_EQ(VerifyPost(headers, kBody).code, "IncompleteSignature");
  // Another service's scope.
  headers[3].second =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150202/us-west-2/s3/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date, Signature=00";
  EXPECT_EQ(VerifyPost(headers, kBody).code, "SignatureDoesNotMatch");
  // A session token is refused: the fleet file lists long-term keys only.
  headers = PostHeaders();
  headers.emplace_back("X-Amz-Security-Token", "token");
  EXPECT_EQ(VerifyPost(headers, kBody).code, "InvalidClientTokenId");
  // A body hash header that disagrees with the body.
  headers = PostHeaders();
  headers.emplace_back("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD");
  EXPECT_EQ(VerifyPost(headers, kBody).code, "SignatureDoesNotMatch");
}

TEST(SigV4Test, AcceptsTheDocumentationsGetPresigned) {
  const SigV4Verdict v = VerifyGet(kPresigned, SignedAt() + minutes(10));
  EXPECT_TRUE(v.ok) << v.code << ": " << v.message;
  // X-Amz-Expires=900: valid for 15 minutes after signing, not after.
  EXPECT_EQ(VerifyGet(kPresigned, SignedAt() + seconds(901)).code, "RequestExpired");
  // Any parameter changed after signing.
  std::string tampered = kPresigned;
  tampered.replace(tampered.find("bkup-20150515-final"), 19, "bkup-20150515-other");
  EXPECT_EQ(VerifyGet(tampered, SignedAt()).code, "SignatureDoesNotMatch");
  std::string dropped = kPresigned;
  dropped.erase(dropped.find("&FinalSnapshotIdentifier=bkup-20150515-final"),
                std::string("&FinalSnapshotIdentifier=bkup-20150515-final").size());
  EXPECT_EQ(VerifyGet(dropped, SignedAt()).code, "SignatureDoesNotMatch");
  // Another host.
  EXPECT_EQ(VerifyGet(kPresigned, SignedAt(), {{"Host", "127.0.0.1:8080"}}).code,
            "SignatureDoesNotMatch");
  // Both mechanisms at once.
  EXPECT_EQ(VerifyGet(kPresigned, SignedAt(),
                      {{"Host", "elasticache.us-west-2.amazonaws.com"},
                       {"Authorization", kAuthorization}})
                .code,
            "IncompleteSignature");
}

TEST(SigV4Test, RefusesTheDocumentationsGetUnsigned) {
  // The page's URL with X-Amz-Credential=<credential> and no signature is not a signature.
  const SigV4Verdict v = VerifyGet(
      "/?Action=DeleteCacheCluster&CacheClusterId=myRedisCluster&Version=2015-02-02&"
      "SignatureVersion=4&SignatureMethod=HmacSHA256&Timestamp=20150202T192317Z",
      SignedAt());
  EXPECT_EQ(v.code, "MissingAuthenticationToken");
  const SigV4Verdict v2 = VerifyGet(
      "/?Action=DeleteCacheCluster&SignatureVersion=2&AWSAccessKeyId=AKIDEXAMPLE&Signature=x",
      SignedAt());
  EXPECT_EQ(v2.code, "IncompleteSignature");
}

}  // namespace
}  // namespace finalsnap::detail
