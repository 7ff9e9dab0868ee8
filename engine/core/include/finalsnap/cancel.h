// CancelToken: how the caller of an operation (or of Serve) asks it to stop, from any thread.
//
// The engine never installs signal handlers. A program maps whatever it likes to a token: the
// finalsnap CLI cancels on SIGINT, SIGTERM and SIGHUP (a dropped SSH session), `serve` cancels
// the tokens of its running operations when it is asked to stop, and an agent embedding the
// engine cancels on its own terms. A cancelled operation stops its captures and refuses at its
// next step: writes resume, the nodes' config is put back and the partial snapshot removed, as
// for any refusal (fault "Interrupted", with the reason given here).
//
//   CancelToken token;
//   OperationOptions options;
//   options.cancel = token;           // a copy shares the same state
//   std::thread t([&] { CreateSnapshot(fleet, "c1", "nightly", options); });
//   token.Cancel("stopped by the agent");
//
// Copies of a token share one state; a default-constructed token is simply never cancelled.
#ifndef FINALSNAP_CANCEL_H_
#define FINALSNAP_CANCEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace finalsnap {

class CancelToken {
 public:
  CancelToken();

  // Cancels, with a reason for the refusal ("interrupted (SIGINT)"); the first reason wins and
  // later calls do nothing. Thread-safe, but not async-signal-safe: from a signal, hand the
  // signal to a thread first (the CLI waits for signals with sigwait on a thread of its own).
  void Cancel(std::string reason);
  bool cancelled() const;
  // Empty until cancelled.
  std::string reason() const;

  // Calls `fn` once when the token is cancelled, on the cancelling thread (at once, on this
  // thread, when it already is). `fn` must be quick and thread-safe, such as a uv_async_send.
  // Returns an id for Unsubscribe.
  uint64_t Subscribe(std::function<void()> fn);
  // Once this returns, the callback is neither running nor going to run.
  void Unsubscribe(uint64_t id);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace finalsnap

#endif  // FINALSNAP_CANCEL_H_
