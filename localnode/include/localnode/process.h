// Child processes for local servers: spawned in their own process group, killed by the kernel
// when the thread that spawned them exits (PR_SET_PDEATHSIG), with their output in a file. Used
// for redis-server and redis-sentinel (server.h) and for the tests' Ceph daemons.
#ifndef FINALSNAP_LOCALNODE_PROCESS_H_
#define FINALSNAP_LOCALNODE_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "finalsnap/status.h"

namespace finalsnap::localnode {

// Starts argv[0] (an absolute path) with argv[1..], standard input /dev/null and standard output
// and error appended to `output_path` (created 0600), the parent's environment plus `env`
// (NAME=value entries, which replace the parent's of the same name). Returns the child's pid once
// exec() succeeded, or an error naming what failed (an exec() error included). Reap the child
// with waitpid().
Expected<pid_t> SpawnChild(const std::vector<std::string>& argv, const std::string& output_path,
                           const std::vector<std::string>& env = {});

// Binds `port` on 127.0.0.1 (0 = any free one) and returns the bound port, or 0 on failure. The
// socket is closed again: the port is only probably free when a server binds it, so callers
// retry on "Address already in use".
int ProbePort(int port);

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_PROCESS_H_
