// CancelOnSignals: the one place finalsnap turns process signals into cancellation. The engine
// installs no handlers of its own (finalsnap/cancel.h); the commands that run operations pass
// GlobalOptions::cancel to them, and main calls this for those commands only, so that the
// others keep the default behaviour (Ctrl-C ends a describe at once).
#ifndef FINALSNAP_TOOLS_SIGNALS_H_
#define FINALSNAP_TOOLS_SIGNALS_H_

#include "finalsnap/cancel.h"

namespace finalsnap::cli {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every thread started after
// it (call it before any), and waits for them with sigwait on a thread of its own: the first
// one cancels `token` ("SIGHUP received"), so the operation stops, unpauses and puts its nodes
// back, and the command exits 130; a later one only says that the clean-up is still running.
// SIGPIPE is ignored, so that writing to a closed pipe (an ssh session gone) cannot kill the
// process in the middle of that clean-up.
void CancelOnSignals(CancelToken token);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_SIGNALS_H_
