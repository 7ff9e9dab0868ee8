#include "signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

namespace finalsnap::cli {

void CancelOnSignals(CancelToken token) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int signum : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, signum);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Detached: it waits until the process exits, which ends it.
  std::thread([set, token]() mutable {
    for (;;) {
      int signum = 0;
      if (sigwait(&set, &signum) != 0) continue;
      const char* name = signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "SIGHUP";
      if (!token.cancelled()) {
        token.Cancel(std::string(name) + " received");
        continue;
      }
      // The terminal may be gone (SIGHUP): a failed write is of no consequence.
      const std::string line = std::string("finalsnap: ") + name +
                               " received; still putting the nodes back, please wait\n";
      ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
      (void)ignored;
    }
  }).detach();
}

}  // namespace finalsnap::cli
