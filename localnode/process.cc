// SpawnChild and ProbePort (process.h).
#include "localnode/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace finalsnap::localnode {

int ProbePort(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  int result = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    result = ntohs(addr.sin_port);
  }
  ::close(fd);
  return result;
}

Expected<pid_t> SpawnChild(const std::vector<std::string>& argv_in, const std::string& output_path,
                           const std::vector<std::string>& env) {
  // Prepared before fork(): the child may only make async-signal-safe calls.
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& extra : env)
      replaced = replaced || extra.substr(0, extra.find('=')) == name;
    if (!replaced) environment.push_back(entry);
  }
  for (const std::string& extra : env) environment.push_back(extra);
  std::vector<char*> envp;
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int out_fd = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];
  if (out_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    if (out_fd >= 0) ::close(out_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Status::Error("cannot set up the child's files: " + std::string(std::strerror(err)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(out_fd);
    ::close(null_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    return Status::Error("fork failed: " + std::string(std::strerror(err)));
  }
  if (pid == 0) {
    // Its own process group: a Ctrl-C at the terminal is for the parent, which stops the child
    // itself. A parent that crashes must not leave children behind: the kernel kills this child
    // when the thread that forked it exits.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    const int err = errno;
    const ssize_t ignored = ::write(exec_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  // The child reports a failed exec() through the pipe; a successful exec() closes it (CLOEXEC).
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == sizeof(exec_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return Status::Error("cannot execute '" + argv_in.front() + "': " + std::strerror(exec_errno));
  }
  return pid;
}

}  // namespace finalsnap::localnode
