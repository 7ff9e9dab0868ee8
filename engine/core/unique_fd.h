// UniqueFd: closes a file descriptor on every path out of a scope (engine-private).
#ifndef FINALSNAP_ENGINE_UNIQUE_FD_H_
#define FINALSNAP_ENGINE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace finalsnap::detail {

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_UNIQUE_FD_H_
