// HttpRequestParser (http_request_parser.h): http-parser's callbacks and the request bounds.
#include "http_request_parser.h"

#include <climits>
#include <utility>

#include "finalsnap/text.h"

namespace finalsnap::detail {

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

namespace {

HttpRequestParser* From(http_parser* p) { return static_cast<HttpRequestParser*>(p->data); }

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

HttpRequestParser::HttpRequestParser(const HttpLimits& limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

const http_parser_settings& HttpRequestParser::Settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_message_begin = &HttpRequestParser::OnMessageBegin;
    s.on_url = &HttpRequestParser::OnUrl;
    s.on_header_field = &HttpRequestParser::OnHeaderField;
    s.on_header_value = &HttpRequestParser::OnHeaderValue;
    s.on_headers_complete = &HttpRequestParser::OnHeadersComplete;
    s.on_body = &HttpRequestParser::OnBody;
    s.on_message_complete = &HttpRequestParser::OnMessageComplete;
    return s;
  }();
  return settings;
}

size_t HttpRequestParser::Feed(std::string_view data) {
  // An empty buffer would tell http-parser that the connection has ended.
  if (data.empty() || refused() || ended_ || complete_) return 0;
  http_parser_pause(&parser_, 0);
  const size_t used = http_parser_execute(&parser_, &Settings(), data.data(), data.size());
  const auto error = static_cast<http_errno>(parser_.http_errno);
  const uint64_t at = offset_ + used;
  offset_ = at;
  in_request_bytes_ += used;
  if (refused()) return used;  // a bound, set by a callback
  if (error != HPE_OK && error != HPE_PAUSED) {
    Refuse(400, "MalformedHttpRequest",
           std::string("Malformed HTTP request: ") + http_errno_description(error) + " (at byte " +
               std::to_string(at) + " of the connection)");
  } else if (parser_.upgrade != 0) {
    // OnHeadersComplete refuses every upgrade it knows of; this catches any other http-parser
    // hands over as "the rest is another protocol".
    Refuse(400, "UpgradeNotSupported", "Protocol upgrades are not supported.");
  }
  return used;
}

std::optional<HttpRequest> HttpRequestParser::TakeRequest() {
  if (!complete_) return std::nullopt;
  complete_ = false;
  in_request_bytes_ = 0;
  expect_continue_ = false;
  HttpRequest request = std::move(current_);
  current_ = HttpRequest();
  return request;
}

void HttpRequestParser::Refuse(int status, std::string code, std::string message) {
  if (refused()) return;
  refusal_.status = status;
  refusal_.code = std::move(code);
  refusal_.message = std::move(message);
}

bool HttpRequestParser::TakeExpectContinue() {
  const bool expect = expect_continue_ && !complete_ && !refused();
  expect_continue_ = false;
  return expect;
}

int HttpRequestParser::Limit(int status, std::string code, std::string message) {
  Refuse(status, std::move(code), std::move(message));
  return 1;  // makes http_parser_execute stop with an error
}

int HttpRequestParser::OnMessageBegin(http_parser* p) {
  HttpRequestParser* r = From(p);
  r->current_ = HttpRequest();
  r->field_.clear();
  r->value_.clear();
  r->in_value_ = false;
  r->header_bytes_ = 0;
  r->expect_continue_ = false;
  return 0;
}

int HttpRequestParser::OnUrl(http_parser* p, const char* at, size_t len) {
  HttpRequestParser* r = From(p);
  if (r->current_.target.size() + len > r->limits_.max_url_bytes) {
    return r->Limit(414, "RequestURITooLong",
                    "The request-target is longer than " +
                        std::to_string(r->limits_.max_url_bytes) + " bytes.");
  }
  r->current_.target.append(at, len);
  return 0;
}

void HttpRequestParser::EndHeader() {
  if (!field_.empty()) current_.headers.emplace_back(std::move(field_), std::move(value_));
  field_.clear();
  value_.clear();
  in_value_ = false;
}

int HttpRequestParser::OnHeaderField(http_parser* p, const char* at, size_t len) {
  HttpRequestParser* r = From(p);
  if (r->in_value_) r->EndHeader();
  r->header_bytes_ += len;
  if (r->header_bytes_ > r->limits_.max_header_bytes) {
    return r->Limit(
        431, "RequestHeaderFieldsTooLarge",
        "The request's headers exceed " + std::to_string(r->limits_.max_header_bytes) + " bytes.");
  }
  if (r->field_.empty() && r->current_.headers.size() >= r->limits_.max_headers) {
    return r->Limit(
        431, "RequestHeaderFieldsTooLarge",
        "The request has more than " + std::to_string(r->limits_.max_headers) + " headers.");
  }
  r->field_.append(at, len);
  return 0;
}

int HttpRequestParser::OnHeaderValue(http_parser* p, const char* at, size_t len) {
  HttpRequestParser* r = From(p);
  r->in_value_ = true;
  r->header_bytes_ += len;
  if (r->header_bytes_ > r->limits_.max_header_bytes) {
    return r->Limit(
        431, "RequestHeaderFieldsTooLarge",
        "The request's headers exceed " + std::to_string(r->limits_.max_header_bytes) + " bytes.");
  }
  r->value_.append(at, len);
  return 0;
}

std::string HttpRequestParser::UpgradeAttempt() const {
  if (parser_.method == HTTP_CONNECT) return "CONNECT";
  bool connection_upgrade = false;
  for (const auto& [name, value] : current_.headers) {
    if (EqualsIgnoreCase(name, "upgrade")) return "Upgrade";
    if (EqualsIgnoreCase(name, "http2-settings")) return "HTTP2-Settings (h2c)";
    if (!EqualsIgnoreCase(name, "connection")) continue;
    std::string_view tokens = value;
    while (!tokens.empty()) {
      const size_t comma = tokens.find(',');
      if (EqualsIgnoreCase(TrimSpace(tokens.substr(0, comma)), "upgrade")) {
        connection_upgrade = true;
      }
      tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
    }
  }
  return connection_upgrade ? "Connection: upgrade" : "";
}

int HttpRequestParser::OnHeadersComplete(http_parser* p) {
  HttpRequestParser* r = From(p);
  r->EndHeader();
  // From on_headers_complete, 1 means "no body follows", not an error: refusals return -1.
  if (const std::string upgrade = r->UpgradeAttempt(); !upgrade.empty()) {
    // Refused here, before the request is complete, so that no action can run for it: this
    // server speaks HTTP/1.1 only (no WebSocket, no h2c).
    r->Limit(400, "UpgradeNotSupported",
             "Protocol upgrades are not supported (the request has " + upgrade +
                 "): send plain HTTP/1.1 requests.");
    return -1;
  }
  if (p->content_length != ULLONG_MAX && p->content_length > r->limits_.max_body_bytes) {
    r->Limit(
        413, "RequestEntityTooLarge",
        "The request body is larger than " + std::to_string(r->limits_.max_body_bytes) + " bytes.");
    return -1;
  }
  r->current_.method = http_method_str(static_cast<http_method>(p->method));
  const size_t question = r->current_.target.find('?');
  r->current_.path = r->current_.target.substr(0, question);
  r->current_.query = question == std::string::npos ? "" : r->current_.target.substr(question + 1);
  if (std::optional<std::string_view> expect = r->current_.Header("expect");
      expect && EqualsIgnoreCase(TrimSpace(*expect), "100-continue")) {
    r->expect_continue_ = true;
  }
  return 0;
}

int HttpRequestParser::OnBody(http_parser* p, const char* at, size_t len) {
  HttpRequestParser* r = From(p);
  const size_t max = r->limits_.max_body_bytes;
  if (r->current_.body.size() + len > max) {
    return r->Limit(413, "RequestEntityTooLarge",
                    "The request body is larger than " + std::to_string(max) + " bytes.");
  }
  r->current_.body.append(at, len);
  return 0;
}

int HttpRequestParser::OnMessageComplete(http_parser* p) {
  HttpRequestParser* r = From(p);
  r->current_.keep_alive = http_should_keep_alive(p) != 0;
  if (!r->current_.keep_alive) r->ended_ = true;
  r->complete_ = true;
  // Stop right after this request: the next one is parsed when there is room for it.
  http_parser_pause(p, 1);
  return 0;
}

}  // namespace finalsnap::detail
