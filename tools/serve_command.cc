// `finalsnap serve`: finalsnap::Serve behind a command line. This file only parses --listen,
// prints where the server listens and writes the server's log lines to stderr; everything else
// (HTTP, SigV4, the actions, the operation threads, shutdown) is in engine/api/.
#include "serve_command.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "cli_common.h"
#include "finalsnap/api.h"
#include "finalsnap/fleet.h"

namespace finalsnap::cli {
namespace {

// "host:port" as ParseEndpoint reads it, plus port 0 for "any free port" (tests, and anyone
// who lets the server pick and reads the port from stdout).
Expected<Endpoint> ParseListen(const std::string& text) {
  Expected<Endpoint> parsed = ParseEndpoint(text);
  if (parsed.ok()) return parsed;
  if (text.size() > 2 && text.compare(text.size() - 2, 2, ":0") == 0) {
    Expected<Endpoint> any = ParseEndpoint(text.substr(0, text.size() - 1) + "1");
    if (any.ok()) {
      any->port = 0;
      return any;
    }
  }
  return parsed;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string Now() {
  const auto now = std::chrono::system_clock::now();
  const time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

CommandResult RunServe(const std::string& listen, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;  // Serve() itself recovers abandoned operations, as events

  ServeOptions options;
  if (!listen.empty()) {
    Expected<Endpoint> parsed = ParseListen(listen);
    if (!parsed.ok()) {
      return CommandResult::Fail("InvalidParameterValue",
                                 "--listen " + listen + ": " + parsed.error().message());
    }
    options.listen = *parsed;
  }
  options.stop = globals.cancel;  // SIGINT, SIGTERM and SIGHUP stop the server cleanly (exit 0)
  options.log = [](std::string_view line) { std::cerr << Now() << " " << line << std::endl; };
  options.on_listening = [](const Endpoint& bound, const std::function<void()>&) {
    if (!IsLoopback(bound.host)) {
      std::cerr << Now() << " warning: listening on " << bound.ToString()
                << ", which is not a loopback address; requests are signed but not encrypted"
                << std::endl;
    }
    Json doc;
    doc["Listening"] = EndpointShape(bound.ToString());
    doc["Url"] = "http://" + bound.ToString() + "/";
    // One line, flushed: scripts and tests read the port from it.
    std::cout << doc.dump() << std::endl;
  };
  if (Status s = Serve(fleet, options); !s.ok()) {
    return CommandResult::Fail("InvalidParameterValue", s.message());
  }
  return CommandResult::Ok();
}

}  // namespace

Command RegisterServeCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Serve the ElastiCache Query API (the aws CLI with --endpoint-url drives it) until SIGINT, "
      "SIGTERM or SIGHUP; running operations reach a safe point before it exits.");
  // Owned by the closure, which outlives parsing: CLI11 writes the value here.
  auto listen = std::make_shared<std::string>();
  sub->add_option("--listen", *listen,
                  "HOST:PORT to listen on (default [api] listen, 127.0.0.1:8080; port 0 picks a "
                  "free one)");
  Command command{sub, "Serve", [listen, &globals] { return RunServe(*listen, globals); }};
  command.cancellable = true;
  return command;
}

}  // namespace finalsnap::cli
