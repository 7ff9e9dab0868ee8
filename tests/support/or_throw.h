// OrThrow: how the tests use localnode (the local-server kit they share with `finalsnap demo`).
// localnode reports a failure as a value; in a test a failure is the end of it, so the support
// layer turns it into std::runtime_error with localnode's message (the server log's tail
// included), which fails the test with that message.
#ifndef FINALSNAP_TESTS_SUPPORT_OR_THROW_H_
#define FINALSNAP_TESTS_SUPPORT_OR_THROW_H_

#include <stdexcept>
#include <utility>

#include "finalsnap/status.h"

namespace finalsnap::testing {

template <typename T>
T OrThrow(Expected<T> result) {
  if (!result.ok()) throw std::runtime_error(result.error().message());
  return std::move(result).value();
}

inline void OrThrow(const Status& result) {
  if (!result.ok()) throw std::runtime_error(result.message());
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_OR_THROW_H_
