// A raw HTTP peer for the API tests: a loopback TCP client, from a chosen source address,
// that sends bytes as they are (malformed, trickled, pipelined) and reads whole responses, every
// wait bounded by a deadline. No HTTP library: the point is to send what a library would not.
//
//   Peer peer(port);
//   peer.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//   const std::string response = peer.ReadResponse();
//   EXPECT_TRUE(peer.ClosedWithin(std::chrono::seconds(10)));
#ifndef FINALSNAP_TESTS_SUPPORT_HTTP_PEER_H_
#define FINALSNAP_TESTS_SUPPORT_HTTP_PEER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>

namespace finalsnap::testing {

// A loopback client socket: blocking connect from a chosen source address, then non-blocking
// I/O with deadlines.
class Peer {
 public:
  // `source` is the local address ("127.0.0.2"); `receive_buffer` > 0 sets SO_RCVBUF first.
  Peer(int port, const std::string& source = "127.0.0.1", int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    sockaddr_in bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    local_port_ = ntohs(bound.sin_port);
  }
  ~Peer() { ::close(fd_); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  int local_port() const { return local_port_; }
  bool closed() const { return eof_; }
  const std::string& received() const { return buffer_; }

  // Sends what the socket takes now; returns the bytes sent (-1 once the server has closed).
  ssize_t SendSome(std::string_view bytes) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    return n < 0 ? 0 : n;
  }
  // Sends all of it within `deadline`.
  bool Send(std::string_view bytes,
            std::chrono::milliseconds deadline = std::chrono::milliseconds(5000)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!bytes.empty()) {
      const ssize_t n = SendSome(bytes);
      if (n < 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
      if (bytes.empty()) break;
      pollfd p{fd_, POLLOUT, 0};
      if (std::chrono::steady_clock::now() > until || ::poll(&p, 1, 50) < 0) return false;
    }
    return true;
  }

  // Reads what has arrived (waiting up to `wait`); false once the server has closed or reset.
  bool Drain(std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return !eof_;
    for (;;) {
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof_ = true;
      return !eof_;
    }
  }

  // One whole response (headers and Content-Length body), or "" at the deadline or EOF.
  std::string ReadResponse(std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      const size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t cl = buffer_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(buffer_.substr(cl + 16));
        if (buffer_.size() >= end + 4 + length) {
          std::string response = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return response;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || eof_) return "";
      Drain(std::min(left, std::chrono::milliseconds(50)));
    }
  }

  // True once the server has closed the connection, within `deadline`.
  bool ClosedWithin(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (Drain(std::chrono::milliseconds(20))) {
      if (std::chrono::steady_clock::now() > until) return false;
    }
    return true;
  }

 private:
  int fd_ = -1;
  int local_port_ = 0;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_HTTP_PEER_H_
