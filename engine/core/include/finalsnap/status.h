// Status and Expected<T>: the one way the engine, the tools' helpers and localnode report a
// failure. Nothing throws for an expected failure, and nothing says "OK" with an empty string, a
// null out-parameter or a std::variant.
//
//   Status          a call that returns nothing: ok(), or an error with a message.
//   Expected<T>     a value, or the Status that stopped it.
//   Expected<T, E>  a value, or a typed error E for callers that act on more than a message
//                   (ApiError carries the HTTP status and the ElastiCache fault code; FleetError
//                   the file, line and key).
//   Expected<void, E>  nothing, or a typed error E: `return {};` is success.
//
//   Expected<SnapshotStore> store = SnapshotStore::Open(root);
//   if (!store.ok()) return store.error();          // a Status, passed on as is
//   Status s = store->Delete("nightly");
//
// The message names what failed and where ("zstd: Unknown frame descriptor at compressed offset
// 0"), so that a caller can show it as is.
#ifndef FINALSNAP_STATUS_H_
#define FINALSNAP_STATUS_H_

#include <optional>
#include <string>
#include <utility>
#include <variant>

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

// A value or the error that stopped it. Reading value() of a failed Expected (or error() of a
// successful one) is a programming error (std::bad_variant_access), so callers test ok() first.
template <typename T, typename E = Status>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: `return value;`
  Expected(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: `return error;`

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

// For calls that return nothing but fail with a typed error: `return {};` is success.
template <typename E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  Expected(E error) : error_(std::in_place, std::move(error)) {}  // NOLINT: `return error;`

  bool ok() const { return !error_.has_value(); }
  const E& error() const& { return error_.value(); }

 private:
  std::optional<E> error_;
};

}  // namespace finalsnap

#endif  // FINALSNAP_STATUS_H_
