// `recforge train --nproc N`: a torchrun-like launcher for one host.
//
// run_workers starts N copies of `argv` (argv[0] is looked up in PATH), each in its own process
// group, with
//   RANK = LOCAL_RANK = 0 .. N-1, WORLD_SIZE = LOCAL_WORLD_SIZE = N,
//   MASTER_ADDR = 127.0.0.1, MASTER_PORT = the caller's, or else a free port (bound to port 0)
// added to the environment (train/dist/launch.h and train/dist/rendezvous.h read them). It then
// supervises:
//   - SIGINT or SIGTERM to the launcher is forwarded to every running worker (a second one sends
//     SIGKILL); the return value is then the first non-zero worker status by rank, or 0;
//   - the first worker that exits non-zero or by a signal is reported on stderr as
//     "worker <rank> failed (exit status s): stopping the others" ("(signal s)" when killed),
//     the others get SIGTERM and, after `grace`, SIGKILL; its status is returned (128 + signal
//     for a signal, the shell's convention);
//   - 0 when every worker exits 0.
// Workers die with the launcher (PR_SET_PDEATHSIG sends them SIGTERM). Call it from a
// single-threaded process: it blocks SIGINT, SIGTERM and SIGCHLD while it waits (restored on
// return). A worker that cannot be started (exec fails) stops the others and throws Error.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace recforge {

constexpr std::chrono::milliseconds kDefaultStopGrace = std::chrono::seconds(10);

int run_workers(int nproc, const std::vector<std::string>& argv,
                std::chrono::milliseconds grace = kDefaultStopGrace);

// `argv` without the option `name` and its value, in either spelling: "name VALUE" or
// "name=VALUE" (the workers' command line is the launcher's without --nproc).
std::vector<std::string> without_option(const std::vector<std::string>& argv,
                                        const std::string& name);

}  // namespace recforge
