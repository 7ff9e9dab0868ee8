// Loop: owns one uv_loop_t and gives the engine's code two primitives on it, a one-shot timer
// (After) and a deferred call (Post). Everything of an operation runs on this one thread.
//
// Closing: the destructor closes every handle still open, runs the loop until their close
// callbacks have run, and requires uv_loop_close() == 0, so no handle outlives the loop.
#ifndef FINALSNAP_ENGINE_LOOP_H_
#define FINALSNAP_ENGINE_LOOP_H_

#include <uv.h>

#include <chrono>
#include <functional>
#include <string>

#include "finalsnap/cancel.h"

namespace finalsnap::detail {

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }

  // Calls `fn` once after `delay` (a cancellable handle is TimerHandle below).
  void After(std::chrono::milliseconds delay, std::function<void()> fn);
  // Calls `fn` on the next loop turn: for work that must not run inside a library callback.
  void Post(std::function<void()> fn) { After(std::chrono::milliseconds(0), std::move(fn)); }

 private:
  uv_loop_t loop_;
};

// A restartable timer owned by one object; its callback never runs after Stop() or destruction.
struct TimerBase;

class Timer {
 public:
  explicit Timer(Loop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void Start(std::chrono::milliseconds delay, std::function<void()> fn);
  void Repeat(std::chrono::milliseconds period, std::function<void()> fn);
  void Stop();

  struct State;

 private:
  State* state_;  // freed in its close callback
};

// Calls `fn` with the token's reason on the loop's thread, once, when `token` is cancelled from
// any thread (a uv_async_t the token's subscriber wakes). The callback never runs after
// destruction; the handle's state is freed in its close callback.
class CancelWatch {
 public:
  CancelWatch(Loop& loop, CancelToken token, std::function<void(const std::string& reason)> fn);
  ~CancelWatch();
  CancelWatch(const CancelWatch&) = delete;
  CancelWatch& operator=(const CancelWatch&) = delete;

  struct State;

 private:
  State* state_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_LOOP_H_
