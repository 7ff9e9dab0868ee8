// libFuzzer target for the API server's request parser (engine/api/http_request_parser.h): the
// code that turns a connection's bytes into requests, driven as HttpServer drives it (bytes kept
// in a pending buffer, the parser fed from it and stopped after each request).
//
// Input layout:  [mode] [seed] [bytes ...]
//   mode % 3        the chunking of the second feeding: 0 whole, 1 one byte at a time, 2
//                   pseudo-random pieces from a small LCG seeded from `seed` (chunker.h)
//   mode / 3 % 2    the limits: 0 the server's defaults, 1 tiny ones (a 40-byte target, 96 header
//                   bytes, 4 headers, a 64-byte body), so that every bound is reached
//   mode / 6 % 2    1: take each request only when the next read arrives (a server whose queue
//                   is full), so that Feed is called while a request waits
//
// Crashes and undefined behaviour are found by the sanitizers. Wrong answers are found by
// invariants that hold for every input; a violated one prints what it was and traps:
//   - Feed never uses more bytes than it is given; it uses none only when a request waits, the
//     parser has refused or the connection has ended, and then it uses none until that changes;
//   - refusals are sticky, with a status of 400, 408, 413, 414 or 431 and a non-empty code and
//     message; after a refusal or the end of the connection no request comes out;
//   - every request is within the limits (target, header count and bytes, body), its path and
//     query make up its target, its method is non-empty, and it carries no protocol upgrade
//     (Upgrade, HTTP2-Settings, Connection: upgrade, CONNECT): those never reach the handler;
//   - without a refusal or an end, every byte is used (offset() equals the input);
//   - the chunking does not matter: whole and chunked feeding give the same requests (method,
//     target, path, query, headers, body, keep-alive), the same end and mid_request(), and a
//     refusal either way or neither; a malformed request the same refusal (code, message with
//     its offset) and offset. (A bound is found where http-parser hands over the data, at the end
//     of each piece, so a request both too long and malformed may meet either first.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chunker.h"
#include "finalsnap/text.h"
#include "http_request_parser.h"

namespace {

using finalsnap::EqualsIgnoreCase;
using finalsnap::detail::HttpLimits;
using finalsnap::detail::HttpRequest;
using finalsnap::detail::HttpRequestParser;
using finalsnap::fuzz::Chunker;
using finalsnap::fuzz::Chunking;
using finalsnap::fuzz::ChunkingName;

#define FUZZ_CHECK(cond, what)                                                                   \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "http_request_fuzz: invariant violated (%s): %s [%s]\n", what, #cond, \
                   mode_name);                                                                   \
      __builtin_trap();                                                                          \
    }                                                                                            \
  } while (0)

struct Outcome {
  std::vector<HttpRequest> requests;
  int status = 0;
  std::string code;
  std::string message;
  bool ended = false;
  uint64_t offset = 0;
  bool mid_request = false;
};

bool SameRequest(const HttpRequest& a, const HttpRequest& b) {
  return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
         a.headers == b.headers && a.body == b.body && a.keep_alive == b.keep_alive;
}

bool HasUpgrade(const HttpRequest& r) {
  if (r.method == "CONNECT") return true;
  for (const auto& [name, value] : r.headers) {
    if (EqualsIgnoreCase(name, "upgrade") || EqualsIgnoreCase(name, "http2-settings")) return true;
    if (EqualsIgnoreCase(name, "connection") &&
        finalsnap::Lower(value).find("upgrade") != std::string::npos) {
      // A token "upgrade" among others; a value merely containing the word (say "x-upgrade")
      // is not one, so look at the tokens.
      std::string_view tokens = value;
      while (!tokens.empty()) {
        const size_t comma = tokens.find(',');
        std::string_view token = tokens.substr(0, comma);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
          token.remove_prefix(1);
        }
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
          token.remove_suffix(1);
        }
        if (EqualsIgnoreCase(token, "upgrade")) return true;
        tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
      }
    }
  }
  return false;
}

void CheckRequest(const HttpRequest& r, const HttpLimits& limits, const char* mode_name) {
  FUZZ_CHECK(!r.method.empty(), "a request has a method");
  FUZZ_CHECK(r.target.size() <= limits.max_url_bytes, "the target is within the limit");
  FUZZ_CHECK(r.headers.size() <= limits.max_headers, "the header count is within the limit");
  size_t header_bytes = 0;
  for (const auto& [name, value] : r.headers) header_bytes += name.size() + value.size();
  FUZZ_CHECK(header_bytes <= limits.max_header_bytes, "the header bytes are within the limit");
  FUZZ_CHECK(r.body.size() <= limits.max_body_bytes, "the body is within the limit");
  const std::string rebuilt =
      r.query.empty() && r.target.find('?') == std::string::npos ? r.path : r.path + "?" + r.query;
  FUZZ_CHECK(rebuilt == r.target, "path and query make up the target");
  FUZZ_CHECK(!HasUpgrade(r), "no protocol upgrade reaches the handler");
}

Outcome Run(const HttpLimits& limits, std::string_view input, Chunking chunking, uint8_t seed,
            bool lazy_take) {
  const char* mode_name = ChunkingName(chunking);
  HttpRequestParser parser(limits);
  Outcome out;
  std::string pending;
  Chunker chunker(chunking, seed, input.size());
  size_t fed = 0;
  auto take = [&] {
    while (std::optional<HttpRequest> r = parser.TakeRequest()) {
      CheckRequest(*r, limits, mode_name);
      FUZZ_CHECK(!parser.has_request(), "a request is taken once");
      out.requests.push_back(std::move(*r));
    }
  };
  // As HttpServer::Connection::Parse does, but for the queue (taken at once, or lazily).
  auto parse = [&] {
    for (size_t guard = 0;; ++guard) {
      FUZZ_CHECK(guard <= input.size() + 2, "parsing makes progress");
      if (!lazy_take) take();
      if (parser.refused() || parser.ended()) {
        FUZZ_CHECK(parser.Feed(pending.empty() ? std::string_view("x") : pending) == 0,
                   "nothing is parsed after a refusal or the end");
        pending.clear();
        return;
      }
      if (parser.has_request()) {
        FUZZ_CHECK(parser.Feed(pending.empty() ? std::string_view("x") : pending) == 0,
                   "nothing is parsed while a request waits");
        return;
      }
      if (pending.empty()) return;
      const size_t used = parser.Feed(pending);
      FUZZ_CHECK(used <= pending.size(), "Feed uses no more than it is given");
      FUZZ_CHECK(used > 0 || parser.has_request() || parser.refused() || parser.ended(),
                 "Feed uses bytes unless it has stopped");
      pending.erase(0, used);
      if (parser.refused()) {
        const int status = parser.refusal().status;
        FUZZ_CHECK(status == 400 || status == 413 || status == 414 || status == 431,
                   "a refusal's status");
        FUZZ_CHECK(!parser.refusal().code.empty() && !parser.refusal().message.empty(),
                   "a refusal names its code and says why");
        FUZZ_CHECK(!parser.has_request(), "a refused request does not come out");
      }
      (void)parser.TakeExpectContinue();
    }
  };
  while (fed < input.size()) {
    const size_t n = chunker.Next(input.size() - fed);
    if (lazy_take) take();
    pending.append(input.substr(fed, n));
    fed += n;
    parse();
  }
  // The end of the input: what a server does as its queue drains.
  for (size_t guard = 0; guard <= input.size() + 2 && (parser.has_request() || !pending.empty());
       ++guard) {
    take();
    parse();
  }
  take();
  if (parser.refused()) {
    out.status = parser.refusal().status;
    out.code = parser.refusal().code;
    out.message = parser.refusal().message;
    // Sticky: more bytes change nothing.
    FUZZ_CHECK(parser.Feed("GET / HTTP/1.1\r\n\r\n") == 0, "a refusal is sticky");
    FUZZ_CHECK(parser.refusal().status == out.status && parser.refusal().message == out.message,
               "the first refusal is kept");
    parser.Refuse(408, "RequestTimeout", "late");
    FUZZ_CHECK(parser.refusal().status == out.status, "a later refusal does not replace it");
  }
  out.ended = parser.ended();
  out.offset = parser.offset();
  out.mid_request = parser.mid_request();
  FUZZ_CHECK(out.offset <= input.size(), "the offset is within the input");
  if (!parser.refused() && !parser.ended()) {
    FUZZ_CHECK(out.offset == input.size(), "every byte is used");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const uint8_t seed = data[1];
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  HttpLimits limits;
  if ((mode / 3) % 2 == 1) {
    limits.max_url_bytes = 40;
    limits.max_header_bytes = 96;
    limits.max_headers = 4;
    limits.max_body_bytes = 64;
  }
  const bool lazy_take = (mode / 6) % 2 == 1;
  const auto chunking = static_cast<Chunking>(mode % 3);
  const Outcome whole = Run(limits, input, Chunking::kWhole, seed, false);
  const Outcome chunked = Run(limits, input, chunking, seed, lazy_take);
  const char* mode_name = ChunkingName(chunking);
  FUZZ_CHECK(whole.requests.size() == chunked.requests.size(), "the same number of requests");
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    FUZZ_CHECK(SameRequest(whole.requests[i], chunked.requests[i]), "the same requests");
  }
  // A bound (a target, headers or body too long) is found where http-parser hands over the
  // data, which is at the end of a piece for one that goes on, while a syntax error is found at
  // its byte: the same request can meet the bound first in pieces and the syntax error first
  // whole. Either way it is refused; syntax errors alone are compared exactly, with their offset.
  FUZZ_CHECK((whole.status == 0) == (chunked.status == 0), "refused either way or neither");
  if (whole.status == chunked.status && (whole.status == 0 || whole.status == 400)) {
    FUZZ_CHECK(whole.code == chunked.code && whole.message == chunked.message, "the same refusal");
    FUZZ_CHECK(whole.offset == chunked.offset, "the same offset");
  }
  FUZZ_CHECK(whole.ended == chunked.ended, "the same end");
  if (whole.status == 0) {
    FUZZ_CHECK(whole.mid_request == chunked.mid_request, "the same partial request");
  }
  return 0;
}
