// The request path of `finalsnap serve` (finalsnap/api.h) in front of the actions
// (api_service.h):
//
//   HttpServer (loop thread) ── AuthenticateRequest: SigV4 over the raw request, then the
//        │                      form and query parameters; a refusal is answered here and
//        │                      nothing else runs
//        ▼
//   worker thread ── ApiService::Handle, on one of two pools: the action table says whether the
//        │           action may wait on nodes, and those get threads apart from the others
//        ▼
//   loop thread ── the reply, and one log line per request
//
// Serve (api_server.cc) runs it all on one libuv loop and owns the shutdown sequence.
#ifndef FINALSNAP_ENGINE_API_SERVER_H_
#define FINALSNAP_ENGINE_API_SERVER_H_

#include <chrono>
#include <utility>

#include "api_service.h"
#include "finalsnap/status.h"
#include "http_server.h"
#include "query_api.h"
#include "sigv4.h"

namespace finalsnap::detail {

// Checks the signature (sigv4.h) and then gathers the parameters: the query string's and, for a
// form-encoded body, the body's. Returns the parameters and who signed, or the error to answer
// with. Nothing but this function looks at an unauthenticated request.
Expected<std::pair<QueryParams, Caller>, ApiError> AuthenticateRequest(
    const HttpRequest& request, const SecretLookup& secrets,
    std::chrono::system_clock::time_point now);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_API_SERVER_H_
