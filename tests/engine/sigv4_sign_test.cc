// SigV4 signing (aws/sigv4.h, SignV4) held to the worked examples of Amazon S3's documentation
// ("Signature Calculations for the Authorization Header: Transferring Payload in a Single Chunk":
// GET Object, PUT Object, GET Bucket Lifecycle, GET Bucket (List Objects)), whose signatures AWS
// publishes, and to our own verifier: what SignV4 signs, VerifySigV4 accepts, and a request
// changed after signing it refuses.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "sigv4.h"

namespace finalsnap::detail {
namespace {

const SigV4Credentials kDocs{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                             ""};
constexpr char kEmptySha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::chrono::system_clock::time_point DocsTime() { return *ParseAmzDate("20130524T000000Z"); }

std::string Authorization(const HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    if (name == "authorization") return value;
  }
  return "";
}

TEST(SigV4SignTest, GetObjectWithRangeMatchesTheS3Documentation) {
  HeaderList headers = {{"host", "examplebucket.s3.amazonaws.com"}, {"range", "bytes=0-9"}};
  SignV4({"GET", "/test.txt", "", kEmptySha, "us-east-1", "s3", DocsTime(), &headers}, kDocs);
  EXPECT_EQ(Authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4SignTest, PutObjectMatchesTheS3Documentation) {
  const std::string body = "Welcome to Amazon S3.";
  HeaderList headers = {{"host", "examplebucket.s3.amazonaws.com"},
                        {"date", "Fri, 24 May 2013 00:00:00 GMT"},
                        {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  const std::string hash = Sha256Hex(body);
  EXPECT_EQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SignV4(
      {"PUT", CanonicalUri("/test$file.text"), "", hash, "us-east-1", "s3", DocsTime(), &headers},
      kDocs);
  EXPECT_EQ(Authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4SignTest, ASubresourceWithoutValueIsSignedAsNameEquals) {
  // GET /?lifecycle: the canonical query is "lifecycle=" (curl's own signer gets this wrong
  // for "?uploads" in Debian 12's 7.88, which is why we sign ourselves).
  HeaderList headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  SignV4({"GET", "/", *CanonicalQueryString("lifecycle", false), kEmptySha, "us-east-1", "s3",
          DocsTime(), &headers},
         kDocs);
  EXPECT_EQ(Authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4SignTest, ListObjectsQueryIsSortedAndMatchesTheS3Documentation) {
  HeaderList headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  SignV4({"GET", "/", *CanonicalQueryString("prefix=J&max-keys=2", false), kEmptySha, "us-east-1",
          "s3", DocsTime(), &headers},
         kDocs);
  EXPECT_EQ(Authorization(headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4SignTest, WhatSignV4SignsVerifySigV4AcceptsAndAChangeAfterSigningIsRefused) {
  const std::string body = "Action=DescribeSnapshots&Version=2015-02-02";
  HeaderList headers = {{"host", "127.0.0.1:8080"},
                        {"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  const auto now = std::chrono::system_clock::now();
  SignV4({"POST", "/", "", Sha256Hex(body), "us-west-2", "elasticache", now, &headers},
         {"AKIDEXAMPLE", "a-secret-of-some-length", ""});
  auto secrets = [](std::string_view id) -> std::optional<std::string> {
    if (id == "AKIDEXAMPLE") return "a-secret-of-some-length";
    return std::nullopt;
  };
  const SigV4Verdict accepted = VerifySigV4({"POST", "/", &headers, body}, secrets, now);
  EXPECT_TRUE(accepted.ok) << accepted.code << ": " << accepted.message;
  const SigV4Verdict changed =
      VerifySigV4({"POST", "/", &headers, body + "&CacheClusterId=x"}, secrets, now);
  EXPECT_EQ(changed.code, "SignatureDoesNotMatch");
}

TEST(SigV4SignTest, ASessionTokenIsSentAndSigned) {
  HeaderList headers = {{"host", "h"}};
  SignV4({"GET", "/", "", kEmptySha, "us-east-1", "s3", DocsTime(), &headers},
         {"AKID", "secret", "token-123"});
  bool token = false;
  for (const auto& [name, value] : headers)
    token = token || (name == "x-amz-security-token" && value == "token-123");
  EXPECT_TRUE(token);
  EXPECT_NE(Authorization(headers).find("x-amz-security-token"), std::string::npos);
}

}  // namespace
}  // namespace finalsnap::detail
