// Attaches a hiredis async context to a libuv loop: the engine's own copy of hiredis's libuv
// adapter. Debian 12's hiredis 0.14.1 adapter drops poll errors (`if (status != 0) return;`), so
// a refused connect never reaches hiredis and looks like a timeout; here an error wakes hiredis
// up to read the socket's error, as the adapter in hiredis 1.x does.
#ifndef FINALSNAP_ENGINE_HIREDIS_UV_H_
#define FINALSNAP_ENGINE_HIREDIS_UV_H_

#include <uv.h>

struct redisAsyncContext;

namespace finalsnap::detail {

// Returns 0 on success, non-zero if the context could not be attached.
int AttachToLoop(redisAsyncContext* ac, uv_loop_t* loop);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_HIREDIS_UV_H_
