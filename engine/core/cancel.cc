// CancelToken (finalsnap/cancel.h): one mutex guards the reason and the subscribers, and is
// held while the callbacks run, which is what lets Unsubscribe promise that none is running.
#include "finalsnap/cancel.h"

#include <map>
#include <mutex>
#include <utility>

namespace finalsnap {

struct CancelToken::State {
  mutable std::mutex mu;
  bool cancelled = false;
  std::string reason;
  uint64_t next_id = 1;
  std::map<uint64_t, std::function<void()>> subscribers;
};

CancelToken::CancelToken() : state_(std::make_shared<State>()) {}

void CancelToken::Cancel(std::string reason) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->cancelled) return;
  state_->cancelled = true;
  state_->reason = std::move(reason);
  for (auto& [id, fn] : state_->subscribers) fn();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->cancelled;
}

std::string CancelToken::reason() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->reason;
}

uint64_t CancelToken::Subscribe(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(state_->mu);
  const uint64_t id = state_->next_id++;
  if (state_->cancelled) {
    fn();
  } else {
    state_->subscribers.emplace(id, std::move(fn));
  }
  return id;
}

void CancelToken::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->subscribers.erase(id);
}

}  // namespace finalsnap
