#include "loop.h"

#include <cstdlib>

namespace finalsnap::detail {

// Both kinds of timer keep their state behind uv_timer_t::data, tagged so that the loop's
// teardown frees the one-shot ones it closes and leaves Timer's to Timer.
struct TimerBase {
  bool one_shot;
};

namespace {

struct OneShot : TimerBase {
  uv_timer_t timer;
  std::function<void()> fn;
};

void FreeOneShot(uv_handle_t* h) {
  delete static_cast<OneShot*>(static_cast<TimerBase*>(h->data));
}

}  // namespace

Loop::Loop() {
  if (uv_loop_init(&loop_) != 0) std::abort();
}

Loop::~Loop() {
  // Owners close their own handles before the loop goes; what is left are one-shot timers that
  // never fired (an operation that ended before its deadline).
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (uv_is_closing(h)) return;
        const auto* tag = static_cast<TimerBase*>(h->data);
        if (h->type == UV_TIMER && tag != nullptr && tag->one_shot) {
          uv_close(h, FreeOneShot);
        } else {
          uv_close(h, nullptr);
        }
      },
      nullptr);
  while (uv_run(&loop_, UV_RUN_DEFAULT) != 0) {
  }
  if (uv_loop_close(&loop_) != 0) std::abort();
}

void Loop::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  auto* shot = new OneShot;
  shot->one_shot = true;
  shot->fn = std::move(fn);
  uv_timer_init(&loop_, &shot->timer);
  shot->timer.data = static_cast<TimerBase*>(shot);
  uv_timer_start(
      &shot->timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<OneShot*>(static_cast<TimerBase*>(t->data));
        std::function<void()> f = std::move(s->fn);
        uv_close(reinterpret_cast<uv_handle_t*>(t), FreeOneShot);
        f();
      },
      static_cast<uint64_t>(delay.count()), 0);
}

struct Timer::State : TimerBase {
  uv_timer_t timer;
  std::function<void()> fn;
};

namespace {

Timer::State* StateOf(uv_timer_t* t) {
  return static_cast<Timer::State*>(static_cast<TimerBase*>(t->data));
}

}  // namespace

Timer::Timer(Loop& loop) : state_(new State) {
  state_->one_shot = false;
  uv_timer_init(loop.get(), &state_->timer);
  state_->timer.data = static_cast<TimerBase*>(state_);
}

Timer::~Timer() {
  uv_timer_stop(&state_->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->timer), [](uv_handle_t* h) {
    delete StateOf(reinterpret_cast<uv_timer_t*>(h));
  });
}

void Timer::Start(std::chrono::milliseconds delay, std::function<void()> fn) {
  state_->fn = std::move(fn);
  uv_timer_start(
      &state_->timer,
      [](uv_timer_t* t) {
        std::function<void()> f = StateOf(t)->fn;  // the callback may restart or destroy us
        f();
      },
      static_cast<uint64_t>(delay.count()), 0);
}

void Timer::Repeat(std::chrono::milliseconds period, std::function<void()> fn) {
  state_->fn = std::move(fn);
  const auto ms = static_cast<uint64_t>(period.count());
  uv_timer_start(
      &state_->timer,
      [](uv_timer_t* t) {
        std::function<void()> f = StateOf(t)->fn;
        f();
      },
      ms, ms);
}

void Timer::Stop() { uv_timer_stop(&state_->timer); }

struct CancelWatch::State {
  uv_async_t async;
  CancelToken token;
  uint64_t subscription = 0;
  std::function<void(const std::string&)> fn;
};

CancelWatch::CancelWatch(Loop& loop, CancelToken token,
                         std::function<void(const std::string& reason)> fn)
    : state_(new State) {
  state_->token = std::move(token);
  state_->fn = std::move(fn);
  uv_async_init(loop.get(), &state_->async, [](uv_async_t* a) {
    auto* s = static_cast<State*>(a->data);
    std::function<void(const std::string&)> f = std::move(s->fn);
    s->fn = nullptr;  // once
    if (f) f(s->token.reason());
  });
  state_->async.data = state_;
  uv_async_t* async = &state_->async;
  state_->subscription = state_->token.Subscribe([async] { uv_async_send(async); });
}

CancelWatch::~CancelWatch() {
  // After Unsubscribe no thread can still be inside uv_async_send on this handle.
  state_->token.Unsubscribe(state_->subscription);
  state_->fn = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->async),
           [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
}

}  // namespace finalsnap::detail
