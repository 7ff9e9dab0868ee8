// RunCommand: runs an external program to completion (redis-check-rdb, zstd, lz4, the finalsnap
// CLI, ...) and captures its exit code, stdout and stderr, under a deadline.
//
//   ProcessResult r = RunCommand({"/usr/bin/redis-check-rdb", path});
//   EXPECT_EQ(r.exit_code, 0) << r.Describe();
//
// The child gets its own process group, so a timeout kills the program and anything it started.
// Standard input is /dev/null unless a file or a string is given, or `terminal` makes standard
// input and standard error a pseudo-terminal, as a person at a shell has them.
#ifndef FINALSNAP_TESTS_SUPPORT_PROCESS_H_
#define FINALSNAP_TESTS_SUPPORT_PROCESS_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace finalsnap::testing {

struct RunOptions {
  // Standard input: at most one of these; neither means /dev/null.
  std::optional<std::string> stdin_file;  // a path opened for reading
  std::optional<std::string> stdin_data;  // bytes written to a pipe, then closed
  // Standard input and standard error on a new pseudo-terminal (stdout stays a pipe, as in
  // `finalsnap ... | jq`). What the child writes to the terminal is stderr_text (with the
  // terminal's "\r\n" line ends). When it shows a "[y/N]" question, `terminal_answer` and a
  // newline are typed, or, without one, end of input (Ctrl-D).
  bool terminal = false;
  std::optional<std::string> terminal_answer;
  // Called in the parent, on the calling thread, once the child has started: a test that must
  // signal the child while RunCommand waits for it keeps the pid (from another thread).
  std::function<void(int pid)> on_started;
  // The child is killed (SIGKILL to its process group) when the deadline passes.
  std::chrono::milliseconds timeout{60'000};
  // Environment variables set (or, with std::nullopt, removed) on top of the parent's.
  std::vector<std::pair<std::string, std::optional<std::string>>> env;
  // The child's working directory; empty means the parent's.
  std::string working_dir;
};

struct ProcessResult {
  // The exit status for a normal exit, 128 + signal number when killed by a signal (as a shell
  // reports it), so "!= 0" is always "did not succeed".
  int exit_code = -1;
  int term_signal = 0;     // the signal that ended the child, or 0
  bool timed_out = false;  // the deadline passed and the child was killed
  std::string command;     // argv joined with spaces, for messages
  std::string stdout_text;
  std::string stderr_text;

  // A multi-line account for assertion messages: command, exit code, stdout and stderr.
  std::string Describe() const;
};

// Runs argv[0] (a path, or a name looked up in $PATH) with the arguments argv[1..]. Throws
// std::runtime_error if the program cannot be started (for example it does not exist); any
// outcome after a successful start, timeouts included, is reported in the result.
ProcessResult RunCommand(const std::vector<std::string>& argv, const RunOptions& options = {});

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_PROCESS_H_
