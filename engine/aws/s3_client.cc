// S3Client (s3_client.h): request building, signing and the XML answers, read with libxml2.
#include "s3_client.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>

#include "finalsnap/text.h"

namespace finalsnap::detail {
namespace {

constexpr size_t kMaxXmlBody = size_t{8} << 20;  // a listing of 1000 keys is ~300 KB

// --- XML: a parsed document and the few lookups S3's answers need (by local name, so any
// namespace the store uses, or none, is fine). Never loads anything from the network and
// substitutes no entities.
using XmlDoc = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

XmlDoc ParseXml(std::string_view body) {
  if (body.empty() || body.size() > kMaxXmlBody) return XmlDoc(nullptr, xmlFreeDoc);
  return XmlDoc(
      xmlReadMemory(body.data(), static_cast<int>(body.size()), "s3.xml", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
      xmlFreeDoc);
}

bool Named(const xmlNode* node, std::string_view name) {
  return node->type == XML_ELEMENT_NODE &&
         std::string_view(reinterpret_cast<const char*>(node->name)) == name;
}

std::vector<const xmlNode*> Children(const xmlNode* parent, std::string_view name) {
  std::vector<const xmlNode*> out;
  if (parent == nullptr) return out;
  for (const xmlNode* c = parent->children; c != nullptr; c = c->next) {
    if (Named(c, name)) out.push_back(c);
  }
  return out;
}

const xmlNode* Child(const xmlNode* parent, std::string_view name) {
  std::vector<const xmlNode*> all = Children(parent, name);
  return all.empty() ? nullptr : all.front();
}

std::string Text(const xmlNode* node) {
  if (node == nullptr) return {};
  xmlChar* content = xmlNodeGetContent(node);
  std::string out = content != nullptr ? reinterpret_cast<const char*>(content) : "";
  xmlFree(content);
  return out;
}

std::string ChildText(const xmlNode* parent, std::string_view name) {
  return Text(Child(parent, name));
}

const xmlNode* Root(const XmlDoc& doc, std::string_view name) {
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  return root != nullptr && Named(root, name) ? root : nullptr;
}

std::optional<uint64_t> ParseSize(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string Unquote(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

S3Error Malformed(const HttpResponse& response, std::string what) {
  return S3Error{response.status, "MalformedResponse", std::move(what), ""};
}

// The error a failed response stands for.
S3Error ErrorOf(const HttpResponse& response) {
  if (!response.error.empty()) return S3Error{0, "Transport", response.error, ""};
  S3Error error{response.status, "", "", response.Header("x-amz-request-id").value_or("")};
  const XmlDoc doc = ParseXml(response.body);
  if (const xmlNode* root = Root(doc, "Error")) {
    error.code = ChildText(root, "Code");
    error.message = ChildText(root, "Message");
    if (error.request_id.empty()) error.request_id = ChildText(root, "RequestId");
  }
  if (error.code.empty()) {  // HEAD answers carry no body
    switch (response.status) {
      case 400:
        error.code = "BadRequest";
        break;
      case 403:
        error.code = "Forbidden";
        break;
      case 404:
        error.code = "NotFound";
        break;
      case 409:
        error.code = "Conflict";
        break;
      default:
        error.code = "HTTP" + std::to_string(response.status);
    }
  }
  if (error.message.empty()) error.message = "HTTP status " + std::to_string(response.status);
  return error;
}

bool Ok(const HttpResponse& response) {
  return response.error.empty() && response.status >= 200 && response.status < 300;
}

// scheme://authority and the path before the bucket, from the endpoint setting.
struct Base {
  std::string scheme;
  std::string authority;
  std::string path;  // "" or "/something", no trailing '/'
};

Base ParseEndpoint(const S3Endpoint& where) {
  std::string endpoint =
      where.endpoint.empty() ? "https://s3." + where.region + ".amazonaws.com" : where.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  Base base;
  const size_t scheme_end = endpoint.find("://");
  base.scheme = scheme_end == std::string::npos ? "https" : Lower(endpoint.substr(0, scheme_end));
  const std::string rest =
      scheme_end == std::string::npos ? endpoint : endpoint.substr(scheme_end + 3);
  const size_t slash = rest.find('/');
  base.authority = rest.substr(0, slash);
  if (slash != std::string::npos) base.path = rest.substr(slash);
  return base;
}

}  // namespace

// What one S3 call sends.
struct S3Client::Call {
  std::string method = "GET";
  std::string key;  // "" for the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  std::span<const char> body;
  std::string payload_hash;  // "" = computed here from body
  std::function<bool(std::string_view)> on_body;
};

bool S3Error::retryable() const {
  return http_status == 0 || http_status >= 500 || http_status == 408 || http_status == 429 ||
         code == "SlowDown" || code == "RequestTimeout" || code == "InternalError";
}

std::string S3Error::Describe() const {
  std::string out = code;
  if (http_status != 0) out += " (" + std::to_string(http_status) + ")";
  if (!message.empty()) out += ": " + message;
  return out;
}

Status CheckObjectKey(std::string_view key) {
  if (key.empty() || key.size() > 1024) {
    return Status::Error("an object key must be 1 to 1024 bytes long");
  }
  for (const char c : key) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '/';
    if (!allowed) {
      return Status::Error("the object key '" + std::string(key) +
                           "' has a character other than letters, digits, '-', '_', '.', '/'");
    }
  }
  for (std::string_view segment : SplitView(key, '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return Status::Error("the object key '" + std::string(key) +
                           "' has an empty, '.' or '..' segment");
    }
  }
  return Status::Ok();
}

PartDigest DigestPart(std::span<const char> data, bool sign_payload) {
  unsigned char md5[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), md5, &length, EVP_md5(), nullptr);
  PartDigest digest;
  digest.md5_base64 = Base64(md5, length);
  digest.payload_hash = sign_payload ? Sha256Hex(std::string_view(data.data(), data.size()))
                                     : std::string(kUnsignedPayload);
  return digest;
}

S3Client::S3Client(Loop& loop, S3Endpoint where, SigV4Credentials credentials)
    : where_(std::move(where)), credentials_(std::move(credentials)), http_(loop) {
  sign_payload_ = ParseEndpoint(where_).scheme != "https";
}

std::string S3Client::Url(std::string_view key) const {
  std::string out = "s3://" + where_.bucket;
  if (!key.empty()) out += "/" + std::string(key);
  return out;
}

Task<HttpResponse> S3Client::Send(Call call) {
  const Base base = ParseEndpoint(where_);
  std::string authority = base.authority;
  std::string path = base.path;
  if (where_.addressing == S3Addressing::kVirtual) {
    authority = where_.bucket + "." + authority;
  } else {
    path += "/" + where_.bucket;
  }
  if (!call.key.empty()) path += "/" + UriEncode(call.key, /*keep_slash=*/true);
  if (path.empty()) path = "/";
  // The query is sent in its canonical form, so what is signed is exactly what is sent.
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : call.query) {
    query.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(query.begin(), query.end());
  std::string query_text;
  for (const auto& [name, value] : query) {
    if (!query_text.empty()) query_text += '&';
    query_text += name + "=" + value;
  }
  HttpRequest request;
  request.method = call.method;
  request.url =
      base.scheme + "://" + authority + path + (query_text.empty() ? "" : "?" + query_text);
  request.headers = std::move(call.headers);
  request.headers.emplace_back("host", authority);
  const std::string payload_hash =
      !call.payload_hash.empty() ? call.payload_hash
      : sign_payload_            ? Sha256Hex(std::string_view(call.body.data(), call.body.size()))
                                 : std::string(kUnsignedPayload);
  SignV4(RequestToSign{request.method, path, query_text, payload_hash, where_.region, "s3",
                       std::chrono::system_clock::now(), &request.headers},
         credentials_);
  request.body = call.body;
  request.on_body = std::move(call.on_body);
  request.max_body = kMaxXmlBody;
  request.stall = stall_;
  co_return co_await http_.Send(std::move(request));
}

Task<S3Result<void>> S3Client::HeadBucket() {
  Call call;
  call.method = "HEAD";
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) {
    S3Error error = ErrorOf(response);
    if (response.status == 404) error.code = "NoSuchBucket";
    co_return error;
  }
  co_return {};
}

Task<S3Result<void>> S3Client::CreateBucket() {
  const std::string body = where_.region == "us-east-1"
                               ? ""
                               : "<CreateBucketConfiguration><LocationConstraint>" +
                                     XmlEscape(where_.region) +
                                     "</LocationConstraint></CreateBucketConfiguration>";
  Call call;
  call.method = "PUT";
  call.body = std::span<const char>(body.data(), body.size());
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  co_return {};
}

Task<S3Result<S3ObjectInfo>> S3Client::HeadObject(std::string key) {
  Call call;
  call.method = "HEAD";
  call.key = std::move(key);
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) {
    S3Error error = ErrorOf(response);
    if (response.status == 404) error.code = "NoSuchKey";
    co_return error;
  }
  const std::optional<uint64_t> size = ParseSize(response.Header("content-length").value_or(""));
  if (!size) co_return Malformed(response, "HEAD answered without a Content-Length");
  co_return S3ObjectInfo{*size, Unquote(response.Header("etag").value_or(""))};
}

Task<S3Result<S3ObjectInfo>> S3Client::PutObject(std::string key, std::span<const char> body,
                                                 std::string content_type) {
  const PartDigest digest = DigestPart(body, sign_payload_);
  Call call;
  call.method = "PUT";
  call.key = std::move(key);
  call.headers = {{"content-md5", digest.md5_base64}, {"content-type", std::move(content_type)}};
  call.body = body;
  call.payload_hash = digest.payload_hash;
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  co_return S3ObjectInfo{body.size(), Unquote(response.Header("etag").value_or(""))};
}

Task<S3Result<void>> S3Client::DeleteObject(std::string key) {
  Call call;
  call.method = "DELETE";
  call.key = std::move(key);
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  co_return {};
}

Task<S3Result<S3ObjectInfo>> S3Client::GetObject(std::string key,
                                                 std::function<bool(std::string_view)> on_body) {
  Call call;
  call.key = std::move(key);
  call.on_body = std::move(on_body);
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) {
    S3Error error = ErrorOf(response);
    if (response.status == 404 && error.code == "NotFound") error.code = "NoSuchKey";
    co_return error;
  }
  const std::optional<uint64_t> size = ParseSize(response.Header("content-length").value_or(""));
  if (size && *size != response.body_bytes) {
    co_return Malformed(response, "GET gave " + std::to_string(response.body_bytes) +
                                      " bytes where Content-Length said " + std::to_string(*size));
  }
  co_return S3ObjectInfo{response.body_bytes, Unquote(response.Header("etag").value_or(""))};
}

Task<S3Result<S3ListPage>> S3Client::ListObjects(std::string prefix, std::string delimiter,
                                                 std::optional<std::string> token) {
  Call call;
  call.query = {{"list-type", "2"}, {"prefix", std::move(prefix)}};
  if (!delimiter.empty()) call.query.emplace_back("delimiter", std::move(delimiter));
  if (token) call.query.emplace_back("continuation-token", std::move(*token));
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  const XmlDoc doc = ParseXml(response.body);
  const xmlNode* root = Root(doc, "ListBucketResult");
  if (root == nullptr) co_return Malformed(response, "ListObjectsV2 answered no ListBucketResult");
  S3ListPage page;
  for (const xmlNode* item : Children(root, "Contents")) {
    const std::optional<uint64_t> size = ParseSize(ChildText(item, "Size"));
    if (!size) co_return Malformed(response, "a listed object has no valid Size");
    page.objects.push_back({ChildText(item, "Key"), *size, Unquote(ChildText(item, "ETag"))});
  }
  for (const xmlNode* item : Children(root, "CommonPrefixes")) {
    page.common_prefixes.push_back(ChildText(item, "Prefix"));
  }
  if (ChildText(root, "IsTruncated") == "true") {
    std::string next = ChildText(root, "NextContinuationToken");
    if (next.empty())
      co_return Malformed(response, "a truncated listing has no continuation token");
    page.next_token = std::move(next);
  }
  co_return page;
}

Task<S3Result<std::string>> S3Client::CreateMultipartUpload(std::string key) {
  Call call;
  call.method = "POST";
  call.key = std::move(key);
  call.query = {{"uploads", ""}};
  call.headers = {{"content-type", "application/octet-stream"}};
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  const XmlDoc doc = ParseXml(response.body);
  std::string id = ChildText(Root(doc, "InitiateMultipartUploadResult"), "UploadId");
  if (id.empty()) co_return Malformed(response, "CreateMultipartUpload answered no UploadId");
  co_return id;
}

Task<S3Result<S3Part>> S3Client::UploadPart(std::string key, std::string upload_id, int number,
                                            std::span<const char> body, PartDigest digest) {
  Call call;
  call.method = "PUT";
  call.key = std::move(key);
  call.query = {{"partNumber", std::to_string(number)}, {"uploadId", std::move(upload_id)}};
  call.headers = {{"content-md5", std::move(digest.md5_base64)}};
  call.body = body;
  call.payload_hash = std::move(digest.payload_hash);
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  std::string etag = Unquote(response.Header("etag").value_or(""));
  if (etag.empty()) co_return Malformed(response, "UploadPart answered no ETag");
  co_return S3Part{number, std::move(etag)};
}

Task<S3Result<std::string>> S3Client::CompleteMultipartUpload(std::string key,
                                                              std::string upload_id,
                                                              std::vector<S3Part> parts) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const S3Part& part : parts) {
    xml += "<Part><PartNumber>" + std::to_string(part.number) + "</PartNumber><ETag>\"" +
           XmlEscape(part.etag) + "\"</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Call call;
  call.method = "POST";
  call.key = std::move(key);
  call.query = {{"uploadId", std::move(upload_id)}};
  call.headers = {{"content-type", "application/xml"}};
  call.body = std::span<const char>(xml.data(), xml.size());
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  // AWS may answer 200 and then report the failure in the body.
  const XmlDoc doc = ParseXml(response.body);
  if (Root(doc, "Error") != nullptr) co_return ErrorOf(HttpResponse{500, {}, response.body, ""});
  const xmlNode* root = Root(doc, "CompleteMultipartUploadResult");
  if (root == nullptr) {
    co_return Malformed(response, "CompleteMultipartUpload answered no result");
  }
  co_return Unquote(ChildText(root, "ETag"));
}

Task<S3Result<void>> S3Client::AbortMultipartUpload(std::string key, std::string upload_id) {
  Call call;
  call.method = "DELETE";
  call.key = std::move(key);
  call.query = {{"uploadId", std::move(upload_id)}};
  const HttpResponse response = co_await Send(std::move(call));
  if (!Ok(response)) co_return ErrorOf(response);
  co_return {};
}

Task<S3Result<std::vector<S3Upload>>> S3Client::ListMultipartUploads(std::string prefix) {
  std::vector<S3Upload> uploads;
  std::optional<std::pair<std::string, std::string>> marker;
  for (;;) {
    Call call;
    call.query = {{"uploads", ""}, {"prefix", prefix}};
    if (marker) {
      call.query.emplace_back("key-marker", marker->first);
      call.query.emplace_back("upload-id-marker", marker->second);
    }
    const HttpResponse response = co_await Send(std::move(call));
    if (!Ok(response)) co_return ErrorOf(response);
    const XmlDoc doc = ParseXml(response.body);
    const xmlNode* root = Root(doc, "ListMultipartUploadsResult");
    if (root == nullptr) {
      co_return Malformed(response, "ListMultipartUploads answered no result");
    }
    for (const xmlNode* item : Children(root, "Upload")) {
      uploads.push_back(
          {ChildText(item, "Key"), ChildText(item, "UploadId"), ChildText(item, "Initiated")});
    }
    if (ChildText(root, "IsTruncated") != "true") break;
    std::pair<std::string, std::string> next{ChildText(root, "NextKeyMarker"),
                                             ChildText(root, "NextUploadIdMarker")};
    if (next.first.empty() || (marker && *marker == next)) {
      co_return Malformed(response, "a truncated upload listing does not move on");
    }
    marker = std::move(next);
  }
  co_return uploads;
}

}  // namespace finalsnap::detail
