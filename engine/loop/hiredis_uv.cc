#include "hiredis_uv.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace finalsnap::detail {
namespace {

struct Events {
  redisAsyncContext* context;
  uv_poll_t handle;
  int events;
};

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* e = static_cast<Events*>(handle->data);
  if (e->context == nullptr) return;
  if (status != 0) {
    // A failed connect or a reset: let hiredis find the error on the socket and report it.
    if (e->events & UV_WRITABLE) {
      redisAsyncHandleWrite(e->context);
    } else {
      redisAsyncHandleRead(e->context);
    }
    return;
  }
  if (events & UV_READABLE) redisAsyncHandleRead(e->context);
  // Reading may have freed the context (a disconnect); Cleanup clears `context` then.
  if (e->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->context);
}

void Update(Events* e) {
  if (e->events) {
    uv_poll_start(&e->handle, e->events, OnPoll);
  } else {
    uv_poll_stop(&e->handle);
  }
}

void AddRead(void* privdata) {
  auto* e = static_cast<Events*>(privdata);
  e->events |= UV_READABLE;
  Update(e);
}

void DelRead(void* privdata) {
  auto* e = static_cast<Events*>(privdata);
  e->events &= ~UV_READABLE;
  Update(e);
}

void AddWrite(void* privdata) {
  auto* e = static_cast<Events*>(privdata);
  e->events |= UV_WRITABLE;
  Update(e);
}

void DelWrite(void* privdata) {
  auto* e = static_cast<Events*>(privdata);
  e->events &= ~UV_WRITABLE;
  Update(e);
}

void Cleanup(void* privdata) {
  auto* e = static_cast<Events*>(privdata);
  e->context = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&e->handle),
           [](uv_handle_t* h) { delete static_cast<Events*>(h->data); });
}

}  // namespace

int AttachToLoop(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return REDIS_ERR;
  auto* e = new Events{ac, {}, 0};
  if (uv_poll_init(loop, &e->handle, ac->c.fd) != 0) {
    delete e;
    return REDIS_ERR;
  }
  e->handle.data = e;
  ac->ev.addRead = AddRead;
  ac->ev.delRead = DelRead;
  ac->ev.addWrite = AddWrite;
  ac->ev.delWrite = DelWrite;
  ac->ev.cleanup = Cleanup;
  ac->ev.data = e;
  return REDIS_OK;
}

}  // namespace finalsnap::detail
