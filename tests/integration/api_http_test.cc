// The API server's HTTP layer (engine/api/http_server.h behind finalsnap::Serve), spoken to over
// raw loopback sockets: keep-alive and pipelining, Connection: close and HTTP/1.0, the bounds
// on what a peer may send (header count and size, request-target, body), malformed requests,
// methods and paths the API does not serve, and a clean stop. The requests are unsigned, so
// every one that parses gets the Query protocol's MissingAuthenticationToken: a complete HTTP
// answer from the layer under test, and proof that nothing unsigned gets further.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "finalsnap/api.h"
#include "finalsnap/fleet.h"
#include "support/http_peer.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

using std::chrono::milliseconds;
using testing::Peer;

int HttpStatus(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

bool HasHeader(const std::string& response, const std::string& line) {
  return response.find("\r\n" + line + "\r\n") != std::string::npos;
}

const std::string kBody = "Action=DescribeSnapshots&Version=2015-02-02";
const std::string kRequest =
    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: " +
    std::to_string(kBody.size()) + "\r\n\r\n" + kBody;

class ApiHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::setenv("FINALSNAP_API_HTTP_TEST_SECRET", "s3cret-of-16-bytes", 1), 0);
    const std::string toml =
        "[api]\nstate = \"state\"\n\n[[api.credentials]]\naccess_key_id = \"AKIDHTTP\"\n"
        "secret_access_key_env = \"FINALSNAP_API_HTTP_TEST_SECRET\"\n";
    auto parsed = ParseFleet(toml, dir_.path() / "finalsnap.toml");
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    fleet_ = *parsed;
    ServeOptions options;
    options.listen = Endpoint{"127.0.0.1", 0};
    std::promise<std::pair<int, std::function<void()>>> ready;
    auto listening = ready.get_future();
    options.on_listening = [&ready](const Endpoint& bound, std::function<void()> stop) {
      ready.set_value({bound.port, std::move(stop)});
    };
    server_ = std::thread([this, options] { result_ = Serve(fleet_, options); });
    ASSERT_EQ(listening.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto [port, stop] = listening.get();
    port_ = port;
    stop_ = std::move(stop);
  }

  void TearDown() override {
    if (stop_) stop_();
    if (server_.joinable()) server_.join();
    EXPECT_TRUE(result_.ok()) << result_.message();
    ::unsetenv("FINALSNAP_API_HTTP_TEST_SECRET");
  }

  finalsnap::testing::TempDir dir_{"finalsnap-api-http"};
  Fleet fleet_;
  std::thread server_;
  Status result_;
  int port_ = 0;
  std::function<void()> stop_;
};

TEST_F(ApiHttpTest, KeepAliveAndPipelinedRequestsAnsweredInOrder) {
  Peer c(port_);
  ASSERT_TRUE(c.connected());
  // Two requests in one write, then a third on the same connection.
  c.Send(kRequest + kRequest);
  for (int i = 0; i < 2; ++i) {
    const std::string r = c.ReadResponse();
    EXPECT_EQ(HttpStatus(r), 403) << r;
    EXPECT_TRUE(HasHeader(r, "Connection: keep-alive")) << r;
    EXPECT_TRUE(HasHeader(r, "Content-Type: text/xml")) << r;
    EXPECT_NE(r.find("<Code>MissingAuthenticationToken</Code>"), std::string::npos) << r;
    EXPECT_NE(r.find("x-amzn-RequestId: "), std::string::npos) << r;
  }
  c.Send(kRequest);
  EXPECT_EQ(HttpStatus(c.ReadResponse()), 403);
  // A chunked body is read too.
  c.Send(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: "
      "application/x-www-form-urlencoded\r\n\r\n6\r\nAction\r\n0\r\n\r\n");
  EXPECT_EQ(HttpStatus(c.ReadResponse()), 403);
  // Connection: close is honoured after the answer.
  c.Send("GET /?Action=DescribeEvents HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const std::string last = c.ReadResponse();
  EXPECT_EQ(HttpStatus(last), 403) << last;
  EXPECT_TRUE(HasHeader(last, "Connection: close")) << last;
  EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
}

TEST_F(ApiHttpTest, Http10ClosesAfterOneAnswer) {
  Peer c(port_);
  c.Send("GET /?Action=DescribeEvents HTTP/1.0\r\n\r\n");
  EXPECT_EQ(HttpStatus(c.ReadResponse()), 403);
  EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
}

TEST_F(ApiHttpTest, BoundsWhatAPeerMaySend) {
  {  // Too many headers.
    Peer c(port_);
    std::string request = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 100; ++i) request += "X-H" + std::to_string(i) + ": v\r\n";
    c.Send(request + "\r\n");
    const std::string r = c.ReadResponse();
    EXPECT_EQ(HttpStatus(r), 431) << r;
    EXPECT_NE(r.find("<Code>RequestHeaderFieldsTooLarge</Code>"), std::string::npos) << r;
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  {  // Headers too large in bytes.
    Peer c(port_);
    c.Send("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
    EXPECT_EQ(HttpStatus(c.ReadResponse()), 431);
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  {  // A body announced larger than the limit is refused before it is sent.
    Peer c(port_);
    c.Send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n");
    const std::string r = c.ReadResponse();
    EXPECT_EQ(HttpStatus(r), 413) << r;
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  {  // A chunked body that grows past the limit.
    Peer c(port_);
    std::string request = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(65536, 'a');
    for (int i = 0; i < 20; ++i) request += "10000\r\n" + chunk + "\r\n";
    c.Send(request);
    EXPECT_EQ(HttpStatus(c.ReadResponse()), 413);
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  {  // A request-target over the limit.
    Peer c(port_);
    c.Send("GET /?" + std::string(10000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(HttpStatus(c.ReadResponse()), 414);
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  {  // Not HTTP.
    Peer c(port_);
    c.Send("HELLO THERE\r\n\r\n");
    const std::string r = c.ReadResponse();
    EXPECT_EQ(HttpStatus(r), 400) << r;
    EXPECT_NE(r.find("<Code>MalformedHttpRequest</Code>"), std::string::npos) << r;
    EXPECT_TRUE(c.ClosedWithin(milliseconds(10'000)));
  }
  // The server still answers after all that.
  Peer c(port_);
  c.Send(kRequest);
  EXPECT_EQ(HttpStatus(c.ReadResponse()), 403);
}

TEST_F(ApiHttpTest, OnlyPostAndGetOnTheRoot) {
  Peer c(port_);
  c.Send("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string r = c.ReadResponse();
  EXPECT_EQ(HttpStatus(r), 405) << r;
  c.Send("GET /admin?Action=DescribeEvents HTTP/1.1\r\nHost: h\r\n\r\n");
  r = c.ReadResponse();
  EXPECT_EQ(HttpStatus(r), 404) << r;
  c.Send("GET /./?Action=DescribeEvents HTTP/1.1\r\nHost: h\r\n\r\n");  // normalizes to /
  EXPECT_EQ(HttpStatus(c.ReadResponse()), 403);
}

TEST_F(ApiHttpTest, StopClosesIdleConnectionsAndReturns) {
  Peer idle(port_);
  ASSERT_TRUE(idle.connected());
  idle.Send(kRequest);
  EXPECT_EQ(HttpStatus(idle.ReadResponse()), 403);
  stop_();
  EXPECT_TRUE(idle.ClosedWithin(milliseconds(10'000)));
  server_.join();
  EXPECT_TRUE(result_.ok()) << result_.message();
  // Nothing listens any more.
  Peer late(port_);
  EXPECT_FALSE(late.connected());
}

TEST(ApiServeTest, RefusesToStartWithoutUsableCredentials) {
  finalsnap::testing::TempDir dir("finalsnap-api-serve");
  auto parsed = ParseFleet("[api]\nstate = \"state\"\n", dir.path() / "finalsnap.toml");
  ASSERT_TRUE(parsed.ok());
  ServeOptions options;
  options.listen = Endpoint{"127.0.0.1", 0};
  Status s = Serve(*parsed, options);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no [[api.credentials]]"), std::string::npos) << s.message();

  parsed = ParseFleet(
      "[api]\nstate = \"state\"\n[[api.credentials]]\naccess_key_id = \"K\"\n"
      "secret_access_key_env = \"FINALSNAP_API_UNSET_SECRET\"\n",
      dir.path() / "finalsnap.toml");
  ASSERT_TRUE(parsed.ok());
  ::unsetenv("FINALSNAP_API_UNSET_SECRET");
  s = Serve(*parsed, options);
  EXPECT_FALSE(s.ok());
  // The key is named, not its value (a secret pasted into the wrong key must not leak).
  EXPECT_NE(s.message().find("secret_access_key_env"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("FINALSNAP_API_UNSET_SECRET"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace finalsnap
