// HttpRequestParser: the bytes of one HTTP/1.1 connection in, requests out, within the bounds of
// HttpLimits; Debian's http-parser (libhttp-parser) underneath. It does no I/O: HttpServer
// (http_server.h) owns one per connection, and the fuzz target tests/fuzz/http_request_fuzz.cc
// feeds it bytes in arbitrary pieces.
//
//   HttpRequestParser parser(limits);
//   size_t used = parser.Feed(bytes);        // stops right after each complete request
//   if (parser.refused()) answer parser.refusal() and close;   // sticky
//   while (std::optional<HttpRequest> r = parser.TakeRequest()) ...
//   parser.mid_request();                    // part of a request has arrived
//
// Feed stops after each complete request (the rest of the bytes are the caller's to keep and feed
// later), so a client that pipelines thousands of requests in one packet costs one parsed request
// at a time, not thousands. After a request that ends the connection (Connection: close,
// HTTP/1.0) ended() is true and nothing more is parsed. A refusal (a bound exceeded, a malformed
// request, a protocol upgrade) is final and names the status and error code to answer with; its
// message counts bytes from the start of the connection, so the same bytes give the same refusal
// however they were cut into pieces.
#ifndef FINALSNAP_ENGINE_HTTP_REQUEST_PARSER_H_
#define FINALSNAP_ENGINE_HTTP_REQUEST_PARSER_H_

#include <http_parser.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sigv4.h"

namespace finalsnap::detail {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // the raw request-target, "/?Action=..."
  std::string path;    // the target up to '?'
  std::string query;   // the raw text after '?', or empty
  HeaderList headers;  // in arrival order, names as sent
  std::string body;
  std::string remote;  // the peer, "127.0.0.1:51234" (set by the server)
  bool keep_alive = true;

  // The first header of that name (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// Everything a peer may send or hold is bounded. The defaults suit an admin API: a handful of
// operators and scripts, requests of a few hundred bytes, answers of a few kilobytes.
struct HttpLimits {
  // One request (HttpRequestParser).
  size_t max_url_bytes = 8 * 1024;
  size_t max_header_bytes = 16 * 1024;  // field names and values together
  size_t max_headers = 64;
  size_t max_body_bytes = 1024 * 1024;
  // One connection (HttpServer).
  size_t max_pipelined = 8;  // complete requests read ahead of the one being answered
  // Answers written but not yet taken by the peer: the socket's send buffer is set to this
  // (the kernel doubles it), and no further request is answered while a write waits for room.
  size_t max_output_bytes = 64 * 1024;
  // From a request's first byte (a stray CRLF counts) to its last; reads do not extend it.
  std::chrono::milliseconds request_timeout{30'000};
  // An answer that the peer does not take within this closes the connection (with a reset).
  std::chrono::milliseconds write_timeout{30'000};
  // Keep-alive with nothing in flight and no byte of a next request, from the last answer.
  std::chrono::milliseconds idle_timeout{60'000};
  // The server (HttpServer): connections in all, per client address, and not yet authenticated
  // (no request of theirs has carried a valid signature). See HttpServer::MakeRoom for what
  // happens when one is reached.
  size_t max_connections = 256;
  size_t max_connections_per_address = 32;
  size_t max_unauthenticated = 128;
};

class HttpRequestParser {
 public:
  struct Refusal {
    int status = 0;    // 400, 408, 413, 414, 431
    std::string code;  // "MalformedHttpRequest", "UpgradeNotSupported", ...
    std::string message;
  };

  explicit HttpRequestParser(const HttpLimits& limits);
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  // Parses from `data` until a request is complete, the bytes run out or the request is refused;
  // returns how many bytes were used. Returns 0 (and parses nothing) once refused() or ended(),
  // or while a complete request waits in TakeRequest().
  size_t Feed(std::string_view data);
  // The complete request, once (nullopt if none).
  std::optional<HttpRequest> TakeRequest();
  bool has_request() const { return complete_; }

  bool refused() const { return refusal_.status != 0; }
  const Refusal& refusal() const { return refusal_; }
  // Refuses from outside (the server's request deadline): the same sticky state.
  void Refuse(int status, std::string code, std::string message);
  // The last request ended the connection: nothing after it is parsed.
  bool ended() const { return ended_; }
  // Some bytes of a next request have been parsed (a stray CRLF counts).
  bool mid_request() const { return in_request_bytes_ > 0 && !complete_; }
  // The request being parsed asked for "100 Continue" before its body; true once per request.
  bool TakeExpectContinue();
  // Bytes used since the start of the connection.
  uint64_t offset() const { return offset_; }

 private:
  static int OnMessageBegin(http_parser* p);
  static int OnUrl(http_parser* p, const char* at, size_t len);
  static int OnHeaderField(http_parser* p, const char* at, size_t len);
  static int OnHeaderValue(http_parser* p, const char* at, size_t len);
  static int OnHeadersComplete(http_parser* p);
  static int OnBody(http_parser* p, const char* at, size_t len);
  static int OnMessageComplete(http_parser* p);
  static const http_parser_settings& Settings();
  void EndHeader();
  int Limit(int status, std::string code, std::string message);
  // The reason to refuse a protocol upgrade (Upgrade, Connection: upgrade, h2c, CONNECT), or
  // empty.
  std::string UpgradeAttempt() const;

  const HttpLimits limits_;
  http_parser parser_{};
  HttpRequest current_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  size_t header_bytes_ = 0;
  uint64_t in_request_bytes_ = 0;
  bool complete_ = false;
  bool ended_ = false;
  bool expect_continue_ = false;
  uint64_t offset_ = 0;
  Refusal refusal_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_HTTP_REQUEST_PARSER_H_
