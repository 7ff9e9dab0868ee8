// Named failpoints, for the fault-matrix tests only: a point in the engine where the process can
// be made to die (or stop) on purpose, so that a test kills it at an exact phase boundary
// instead of after a guessed delay.
//
//   FINALSNAP_FAILPOINT=<name>[:<action>]     test-only; never set it in production
//
// <action> is `kill` (the default: SIGKILL to itself, as a crash or the OOM killer would) or
// `stop` (SIGSTOP: the process halts there, and the test sends the signal of its choice). A
// point whose name is not the one set does nothing; with the variable unset, a point costs one
// branch. The names are listed where they are placed (engine/ops/operation.cc) and in README.md.
#ifndef FINALSNAP_ENGINE_FAILPOINT_H_
#define FINALSNAP_ENGINE_FAILPOINT_H_

#include <string_view>

namespace finalsnap::detail {

void Failpoint(std::string_view name);

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_FAILPOINT_H_
