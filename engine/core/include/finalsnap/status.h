// Status: the result of an engine operation that either succeeded or failed with a message.
//
// The message names what failed and where ("zstd: Unknown frame descriptor at compressed offset
// 0"), so that a caller can show it as is.
#ifndef FINALSNAP_STATUS_H_
#define FINALSNAP_STATUS_H_

#include <string>
#include <utility>

namespace finalsnap {

class [[nodiscard]] Status {
 public:
  // A default-constructed Status is a success, so that `Status s;` reads as "nothing failed yet".
  Status() = default;

  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(false, std::move(message)); }

  bool ok() const { return ok_; }
  // Empty when ok().
  const std::string& message() const { return message_; }

 private:
  Status(bool ok, std::string message) : ok_(ok), message_(std::move(message)) {}

  bool ok_ = true;
  std::string message_;
};

}  // namespace finalsnap

#endif  // FINALSNAP_STATUS_H_
