// RunCommand: fork/exec with pipes for the child's output, drained with poll() under a deadline.
#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "localnode/files.h"

extern char** environ;

namespace finalsnap::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Owns one file descriptor; closing twice is harmless.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string ErrnoText(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// execve() does no $PATH search, and searching after fork() is not async-signal-safe, so the
// program is resolved here, in the parent. A path is left to execve(), which says what is wrong.
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::optional<std::string> found = localnode::FindProgram(name);
  if (!found) throw std::runtime_error("RunCommand: program '" + name + "' not found in $PATH");
  return *found;
}

// The parent's environment with the overrides applied, as "NAME=value" strings.
std::vector<std::string> BuildEnvironment(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [key, value] : overrides) overridden = overridden || key == name;
    if (!overridden) env.emplace_back(entry);
  }
  for (const auto& [key, value] : overrides) {
    if (value.has_value()) env.push_back(key + "=" + *value);
  }
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Reads what is available on `fd` into `out`; returns false at end of file.
bool Drain(int fd, std::string& out) {
  std::array<char, 65536> buf;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out.append(buf.data(), static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;  // A read error ends the stream as far as we are concerned.
  }
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void RecordStatus(int status, ProcessResult& result) {
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
    result.exit_code = 128 + result.term_signal;
  }
}

}  // namespace

std::string ProcessResult::Describe() const {
  std::string out = "command: " + command + "\nexit code: " + std::to_string(exit_code);
  if (term_signal != 0) out += " (signal " + std::to_string(term_signal) + ")";
  if (timed_out) out += " (timed out and killed)";
  out += "\n--- stdout ---\n" + stdout_text + "\n--- stderr ---\n" + stderr_text;
  return out;
}

ProcessResult RunCommand(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) throw std::invalid_argument("RunCommand: empty argv");
  if (static_cast<int>(options.stdin_file.has_value()) +
          static_cast<int>(options.stdin_data.has_value()) + static_cast<int>(options.terminal) >
      1) {
    throw std::invalid_argument("RunCommand: give stdin_file, stdin_data or terminal, not two");
  }
  ProcessResult result;
  for (const std::string& arg : argv) {
    if (!result.command.empty()) result.command += ' ';
    result.command += arg;
  }

  // Everything the child needs is prepared before fork(): between fork() and exec() the child
  // may only make async-signal-safe calls, because another thread may hold the malloc lock.
  std::string program = ResolveProgram(argv[0]);
  std::vector<std::string> args = argv;
  std::vector<char*> c_args = CStrings(args);
  std::vector<std::string> env = BuildEnvironment(options.env);
  std::vector<char*> c_env = CStrings(env);

  Fd stdin_read, stdin_write;
  Fd terminal;  // the pseudo-terminal's master side, when options.terminal
  if (options.terminal) {
    terminal.Reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (terminal.get() < 0 || ::grantpt(terminal.get()) != 0 ||
        ::unlockpt(terminal.get()) != 0) {
      throw std::runtime_error(ErrnoText("RunCommand: posix_openpt", errno));
    }
    const char* name = ::ptsname(terminal.get());
    if (name == nullptr) throw std::runtime_error(ErrnoText("RunCommand: ptsname", errno));
    stdin_read.Reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (stdin_read.get() < 0) throw std::runtime_error(ErrnoText("RunCommand: open pty", errno));
  } else if (options.stdin_data.has_value()) {
    // A socket pair rather than a pipe: send() with MSG_NOSIGNAL cannot raise SIGPIPE in the
    // test process when the child exits without reading all its input.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::runtime_error(ErrnoText("RunCommand: socketpair", errno));
    }
    stdin_read.Reset(sv[0]);
    stdin_write.Reset(sv[1]);
  } else {
    const std::string path = options.stdin_file.value_or("/dev/null");
    stdin_read.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (stdin_read.get() < 0) {
      throw std::runtime_error(ErrnoText("RunCommand: cannot open stdin file " + path, errno));
    }
  }
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error(ErrnoText("pipe2", errno));
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  Fd err_read, err_write;
  if (!options.terminal) {
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error(ErrnoText("pipe2", errno));
    err_read.Reset(err_pipe[0]);
    err_write.Reset(err_pipe[1]);
  }
  // The child reports a failed exec() through this pipe; a successful exec() closes it (CLOEXEC).
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw std::runtime_error(ErrnoText("pipe2", errno));
  Fd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);

  const char* working_dir = options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(ErrnoText("RunCommand: fork", errno));
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setpgid(0, 0);
    ::dup2(stdin_read.get(), STDIN_FILENO);
    ::dup2(out_write.get(), STDOUT_FILENO);
    ::dup2(options.terminal ? stdin_read.get() : err_write.get(), STDERR_FILENO);
    int err = 0;
    if (working_dir != nullptr && ::chdir(working_dir) != 0) {
      err = errno;
    } else {
      ::execve(program.c_str(), c_args.data(), c_env.data());
      err = errno;
    }
    ssize_t ignored = ::write(exec_write.get(), &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  // Also set the group from the parent, so a kill(-pid) right after fork() cannot miss.
  ::setpgid(pid, pid);
  stdin_read.Close();
  out_write.Close();
  err_write.Close();
  exec_write.Close();

  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_read.get(), &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(exec_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    throw std::runtime_error(ErrnoText("RunCommand: cannot run '" + program + "'", exec_errno));
  }
  if (options.on_started) options.on_started(static_cast<int>(pid));

  const auto deadline = Clock::now() + options.timeout;
  SetNonBlocking(out_read.get());
  if (options.terminal) {
    // The terminal is read like a stderr pipe; the child's exit ends it (EIO, or end of file).
    // `terminal` stays open as the side the answer is typed into.
    err_read.Reset(::dup(terminal.get()));
  }
  SetNonBlocking(err_read.get());
  bool answered = false;
  std::string_view pending_input;
  if (options.stdin_data.has_value()) {
    pending_input = *options.stdin_data;
    SetNonBlocking(stdin_write.get());
    if (pending_input.empty()) stdin_write.Close();
  }

  while (out_read.get() >= 0 || err_read.get() >= 0 || stdin_write.get() >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    auto add = [&](const Fd& fd, short events) {
      if (fd.get() >= 0) fds[count++] = pollfd{fd.get(), events, 0};
    };
    add(out_read, POLLIN);
    add(err_read, POLLIN);
    add(stdin_write, POLLOUT);
    int ready = ::poll(fds.data(), count, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(ErrnoText("RunCommand: poll", errno));
    }
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == out_read.get()) {
        if (!Drain(out_read.get(), result.stdout_text)) out_read.Close();
      } else if (fds[i].fd == err_read.get()) {
        if (!Drain(err_read.get(), result.stderr_text)) err_read.Close();
        if (terminal.get() >= 0 && !answered &&
            result.stderr_text.find("[y/N]") != std::string::npos) {
          // A line typed at the prompt, or Ctrl-D (end of input in canonical mode).
          const std::string typed =
              options.terminal_answer ? *options.terminal_answer + "\n" : std::string("\x04");
          answered = ::write(terminal.get(), typed.data(), typed.size()) ==
                     static_cast<ssize_t>(typed.size());
        }
      } else if (fds[i].fd == stdin_write.get()) {
        ssize_t sent =
            ::send(stdin_write.get(), pending_input.data(), pending_input.size(), MSG_NOSIGNAL);
        if (sent > 0) pending_input.remove_prefix(static_cast<size_t>(sent));
        // EPIPE: the child closed its input early; that is its business, not an error here.
        if (pending_input.empty() || (sent < 0 && errno != EAGAIN && errno != EINTR)) {
          stdin_write.Close();
        }
      }
    }
  }

  // The output is closed; wait for the exit itself, still under the deadline.
  int status = 0;
  while (!result.timed_out) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      RecordStatus(status, result);
      return result;
    }
    if (done < 0 && errno != EINTR) throw std::runtime_error(ErrnoText("waitpid", errno));
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RecordStatus(status, result);
  return result;
}

}  // namespace finalsnap::testing
