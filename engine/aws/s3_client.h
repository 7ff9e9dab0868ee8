// S3Client: the S3 calls a snapshot store needs, on the engine's loop, signed with our own SigV4
// (sigv4.h) and sent through HttpClient (libcurl multi). Works with AWS S3 and S3-compatible
// stores (Ceph RGW, MinIO): path-style or virtual-host addressing, any endpoint.
//
//   S3Endpoint where{.endpoint = "http://127.0.0.1:7480", .region = "us-east-1",
//                    .bucket = "backups", .addressing = S3Addressing::kPath};
//   S3Client s3(loop, where, credentials);
//   auto upload = co_await s3.CreateMultipartUpload("fleet/bkup/0001.rdb.zst");
//   auto part = co_await s3.UploadPart(key, *upload, 1, bytes);    // Content-MD5 checked
//   auto done = co_await s3.CompleteMultipartUpload(key, *upload, {*part});
//   auto info = co_await s3.HeadObject(key);                       // size, ETag
//
// Every call returns the value or an S3Error: the HTTP status and S3's error code and message
// when the store answered, or a transport error when it did not. Nothing retries here; the
// caller decides (S3Error::retryable says what is worth retrying).
//
// Dialects met and handled here:
//   - Object keys are percent-encoded once, '/' kept, and the signed path is exactly the path
//     sent (S3 does not normalise dot segments; keys never contain them, see CheckObjectKey).
//   - The endpoint's own path, if any, is kept in front of the bucket (no doubled endpoint).
//   - Payload: the SHA-256 of every body is signed over http; over https the body is
//     UNSIGNED-PAYLOAD and its Content-MD5 protects it (as botocore does for S3).
//   - CompleteMultipartUpload may answer 200 with an <Error> body (AWS) or an empty <ETag>
//     (Ceph RGW 16); the former is an error here, the latter is why the caller HEADs the object.
//   - An error body with an empty <Message/> (RGW) gets the HTTP reason instead.
#ifndef FINALSNAP_AWS_S3_CLIENT_H_
#define FINALSNAP_AWS_S3_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "async.h"
#include "finalsnap/status.h"
#include "http_client.h"
#include "loop.h"
#include "sigv4.h"

namespace finalsnap::detail {

enum class S3Addressing { kPath, kVirtual };

struct S3Endpoint {
  // scheme://host[:port][/path], no trailing '/'; empty means AWS:
  // https://s3.<region>.amazonaws.com
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  S3Addressing addressing = S3Addressing::kPath;
};

struct S3Error {
  int http_status = 0;  // 0: no answer (transport error)
  std::string code;     // S3's code ("NoSuchBucket", "SignatureDoesNotMatch"), or "Transport"
  std::string message;  // S3's message, or the transport error
  std::string request_id;

  // 5xx, 408, 429, throttling and transport errors: worth another try.
  bool retryable() const;
  // "NoSuchBucket (404): The specified bucket does not exist."
  std::string Describe() const;
};

template <typename T>
using S3Result = Expected<T, S3Error>;

struct S3ObjectInfo {
  uint64_t size = 0;
  std::string etag;  // without quotes
};

struct S3Part {
  int number = 0;
  std::string etag;  // as UploadPart returned it, without quotes
};

struct S3ListedObject {
  std::string key;
  uint64_t size = 0;
  std::string etag;
};

struct S3ListPage {
  std::vector<S3ListedObject> objects;
  std::vector<std::string> common_prefixes;
  std::optional<std::string> next_token;  // set while there is more
};

struct S3Upload {
  std::string key;
  std::string upload_id;
  std::string initiated;
};

// Checks an object key we build: 1..1024 bytes of [A-Za-z0-9._/-], no empty, "." or ".."
// segment, no leading '/'. Keys from a listing are checked the same way before they are used.
Status CheckObjectKey(std::string_view key);

// What protects a part on the wire: its Content-MD5 (base64), checked by the store, and the
// SHA-256 (hex) that is signed as its payload hash, or kUnsignedPayload over https. Computed by
// the caller with DigestPart, off the loop for big parts (MD5 runs at ~0.7 GB/s).
struct PartDigest {
  std::string md5_base64;
  std::string payload_hash;
};
PartDigest DigestPart(std::span<const char> data, bool sign_payload);

class S3Client {
 public:
  S3Client(Loop& loop, S3Endpoint where, SigV4Credentials credentials);

  const S3Endpoint& where() const { return where_; }
  // "s3://bucket" followed by "/key" when a key is given: for messages.
  std::string Url(std::string_view key = {}) const;
  // Whether payloads are signed (http) or sent as UNSIGNED-PAYLOAD with their MD5 (https).
  bool sign_payload() const { return sign_payload_; }

  Task<S3Result<void>> HeadBucket();
  // Creates the bucket, in the endpoint's region (outside us-east-1 with a LocationConstraint).
  // For tests and benchmarks: finalsnap itself never creates buckets.
  Task<S3Result<void>> CreateBucket();
  Task<S3Result<S3ObjectInfo>> HeadObject(std::string key);
  Task<S3Result<S3ObjectInfo>> PutObject(std::string key, std::span<const char> body,
                                         std::string content_type);
  Task<S3Result<void>> DeleteObject(std::string key);
  // Streams the object's body to `on_body`; return false from it to stop.
  Task<S3Result<S3ObjectInfo>> GetObject(std::string key,
                                         std::function<bool(std::string_view)> on_body);
  Task<S3Result<S3ListPage>> ListObjects(std::string prefix, std::string delimiter,
                                         std::optional<std::string> token);

  Task<S3Result<std::string>> CreateMultipartUpload(std::string key);
  Task<S3Result<S3Part>> UploadPart(std::string key, std::string upload_id, int number,
                                    std::span<const char> body, PartDigest digest);
  // The ETag of the completed object as the answer gives it (may be empty: see above).
  Task<S3Result<std::string>> CompleteMultipartUpload(std::string key, std::string upload_id,
                                                      std::vector<S3Part> parts);
  Task<S3Result<void>> AbortMultipartUpload(std::string key, std::string upload_id);
  Task<S3Result<std::vector<S3Upload>>> ListMultipartUploads(std::string prefix);

  // Requests in flight on this client.
  size_t in_flight() const { return http_.in_flight(); }

  // Tests: how long a stalled transfer is given (HttpRequest::stall).
  void set_stall(std::chrono::milliseconds stall) { stall_ = stall; }

 private:
  struct Call;
  Task<HttpResponse> Send(Call call);

  S3Endpoint where_;
  SigV4Credentials credentials_;
  HttpClient http_;
  bool sign_payload_ = true;
  std::chrono::milliseconds stall_{30'000};
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_AWS_S3_CLIENT_H_
