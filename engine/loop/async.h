// Task<T>: the C++20 coroutine type the engine's operations are written in, and the few
// awaitables they use (a timer). Everything runs on the one libuv loop of an operation: a
// coroutine suspends on an awaitable whose libuv or hiredis callback later resumes it, so an
// operation reads top to bottom (connect, pause, capture, prove, shut down) instead of as a web of
// callbacks.
//
//   Task<int> Child(Loop& loop) { co_await Sleep(loop, 10ms); co_return 7; }
//   Task<int> Parent(Loop& loop) { int v = co_await Child(loop); co_return v + 1; }
//   int result = RunToCompletion(loop, Parent(loop));
//
// Tasks start lazily and run when awaited (or by RunToCompletion). Exceptions do not cross
// coroutine boundaries: errors are values (Status, result structs), as everywhere in the engine.
#ifndef FINALSNAP_ENGINE_ASYNC_H_
#define FINALSNAP_ENGINE_ASYNC_H_

#include <uv.h>

#include <chrono>
#include <coroutine>
#include <cstdlib>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "loop.h"

namespace finalsnap::detail {

template <typename T>
class [[nodiscard]] Task {
 public:
  struct promise_type {
    std::optional<T> value;
    std::coroutine_handle<> continuation;

    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct Resumer {
        bool await_ready() noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          const std::coroutine_handle<> next = h.promise().continuation;
          return next ? next : std::noop_coroutine();
        }
        void await_resume() noexcept {}
      };
      return Resumer{};
    }
    void return_value(T v) { value.emplace(std::move(v)); }
    void unhandled_exception() noexcept { std::terminate(); }
  };

  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    handle_.promise().continuation = awaiting;
    return handle_;
  }
  T await_resume() { return std::move(*handle_.promise().value); }

  // For RunToCompletion and WhenAll: start without an awaiting coroutine.
  void Start() { handle_.resume(); }
  // The coroutine to transfer to when this task finishes (WhenAll's last watcher uses it).
  void SetContinuation(std::coroutine_handle<> h) { handle_.promise().continuation = h; }
  bool done() const { return handle_.done(); }
  T TakeResult() { return std::move(*handle_.promise().value); }

 private:
  explicit Task(std::coroutine_handle<promise_type> h) : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

// Runs the loop until `task` has finished, and returns its value. The loop must not be running.
template <typename T>
T RunToCompletion(Loop& loop, Task<T> task) {
  task.Start();
  while (!task.done()) {
    if (uv_run(loop.get(), UV_RUN_ONCE) == 0 && !task.done()) {
      // Nothing left that could resume the task: a bug, not an operational failure.
      std::abort();
    }
  }
  return task.TakeResult();
}

// Suspends the calling coroutine for `delay` on the loop.
class Sleep {
 public:
  Sleep(Loop& loop, std::chrono::milliseconds delay) : loop_(loop), delay_(delay) {}
  bool await_ready() const noexcept { return delay_.count() <= 0; }
  void await_suspend(std::coroutine_handle<> h) {
    loop_.After(delay_, [h] { h.resume(); });
  }
  void await_resume() const noexcept {}

 private:
  Loop& loop_;
  std::chrono::milliseconds delay_;
};

// Runs several tasks concurrently on the loop and resumes when all have finished; the results
// are in the order of the tasks.
template <typename T>
class WhenAll {
 public:
  explicit WhenAll(std::vector<Task<T>> tasks) : tasks_(std::move(tasks)) {}
  bool await_ready() const noexcept { return tasks_.empty(); }
  void await_suspend(std::coroutine_handle<> h) {
    awaiting_ = h;
    wrappers_.reserve(tasks_.size());
    remaining_ = tasks_.size();
    for (size_t i = 0; i < tasks_.size(); ++i) wrappers_.push_back(Watch(i));
    // Started only once all are in place: a watcher may finish (and read wrappers_) at once.
    for (Task<Unit>& w : wrappers_) w.Start();
  }
  std::vector<T> await_resume() {
    std::vector<T> out;
    out.reserve(tasks_.size());
    for (Task<T>& t : tasks_) out.push_back(t.TakeResult());
    return out;
  }

 private:
  struct Unit {};
  // Awaits one task, then counts it down. The last one hands control to the awaiting coroutine
  // from its final suspend point, so that coroutine may destroy this WhenAll (and the watcher)
  // safely.
  Task<Unit> Watch(size_t i) {
    // Awaiting a Task moves its result out; keep it in place for await_resume instead.
    AwaitInPlace awaiter{tasks_[i]};
    co_await awaiter;
    if (--remaining_ == 0) wrappers_[i].SetContinuation(awaiting_);
    co_return Unit{};
  }
  struct AwaitInPlace {
    Task<T>& task;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) noexcept {
      return task.await_suspend(h);
    }
    void await_resume() const noexcept {}
  };

  std::vector<Task<T>> tasks_;
  std::vector<Task<Unit>> wrappers_;
  size_t remaining_ = 0;
  std::coroutine_handle<> awaiting_;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_ASYNC_H_
