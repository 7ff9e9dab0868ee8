// Error and Result<T>: how everything in localnode reports a failure. localnode never throws,
// prints or exits; a failure comes back as an Error whose message says what failed and why (with
// the tail of the server's log where there is one), for the caller to show as it sees fit: the
// CLI's demo turns it into its error line, the test support turns it into an exception.
//
//   Result<Context> c = Connect("127.0.0.1", port, std::chrono::seconds(1));
//   if (!c.ok()) return c.error();
//   Result<Reply> pong = Command(c->get(), {"PING"});
#ifndef FINALSNAP_LOCALNODE_RESULT_H_
#define FINALSNAP_LOCALNODE_RESULT_H_

#include <string>
#include <utility>
#include <variant>

namespace finalsnap::localnode {

struct Error {
  std::string message;
};

// A value or the Error that stopped it. Reading value() of a failed Result is a programming
// error (std::bad_variant_access), so callers test ok() first.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit, as `return value;` reads
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit, as `return Error{...};`

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// For calls that return nothing: `return {};` is success.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit, as above

  bool ok() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_RESULT_H_
