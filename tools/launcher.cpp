// The --nproc launcher (tools/launcher.h): start the workers, then wait for signals and exits with
// sigtimedwait on the blocked SIGINT, SIGTERM and SIGCHLD, reaping with waitpid(WNOHANG).
#include "tools/launcher.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "kernels/check.h"

extern char** environ;

namespace recforge {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kPollInterval = std::chrono::milliseconds(100);

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int wait_status = 0;  // from waitpid once it exited
};

// Blocks SIGINT, SIGTERM and SIGCHLD (to be taken by sigtimedwait) and makes sure SIGCHLD is not
// ignored (children would then be reaped by the kernel, out of waitpid's sight); restores both.
class SignalScope {
 public:
  SignalScope() {
    sigemptyset(&watched_);
    for (int s : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&watched_, s);
    sigprocmask(SIG_BLOCK, &watched_, &original_mask_);
    struct sigaction default_action = {};
    default_action.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &default_action, &original_sigchld_);
  }
  ~SignalScope() {
    sigaction(SIGCHLD, &original_sigchld_, nullptr);
    sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

  const sigset_t& watched() const { return watched_; }
  const sigset_t& original_mask() const { return original_mask_; }

 private:
  sigset_t watched_, original_mask_;
  struct sigaction original_sigchld_;
};

// A TCP port that was free a moment ago: the kernel's pick for port 0.
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  RECFORGE_CHECK(fd >= 0, "cannot create a socket to find a free port: ", std::strerror(errno));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t size = sizeof(address);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  close(fd);
  RECFORGE_CHECK(ok, "cannot find a free port for MASTER_PORT: ", std::strerror(errno));
  return ntohs(address.sin_port);
}

// The launcher's environment with the launch variables of one worker replacing any it had.
std::vector<std::string> worker_environment(int rank, int nproc, const std::string& port) {
  const std::vector<std::pair<std::string, std::string>> launch = {
      {"RANK", std::to_string(rank)},       {"WORLD_SIZE", std::to_string(nproc)},
      {"LOCAL_RANK", std::to_string(rank)}, {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", "127.0.0.1"},         {"MASTER_PORT", port}};
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text = *entry;
    std::string key = text.substr(0, text.find('='));
    bool replaced =
        std::any_of(launch.begin(), launch.end(), [&](const auto& kv) { return kv.first == key; });
    if (!replaced) env.push_back(std::move(text));
  }
  for (const auto& [key, value] : launch) env.push_back(key + "=" + value);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child between fork and exec (async-signal-safe calls only): own process group, SIGTERM
// when the launcher dies, the launcher's original signal mask; on exec failure, errno goes to
// `error_pipe` (closed on a successful exec).
[[noreturn]] void become_worker(char* const* argv, char* const* envp, pid_t launcher,
                                const sigset_t& mask, int error_pipe) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != launcher) _exit(143);  // the launcher died before prctl took effect
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  execvpe(argv[0], argv, envp);
  int error = errno;
  ssize_t ignored = write(error_pipe, &error, sizeof(error));
  (void)ignored;
  _exit(127);
}

// Starts one worker; throws Error when the program cannot be executed.
pid_t start_worker(int rank, int nproc, const std::vector<std::string>& argv,
                   const std::string& port, const sigset_t& original_mask) {
  std::vector<std::string> args = argv, env = worker_environment(rank, nproc, port);
  std::vector<char*> c_args = c_strings(args), c_env = c_strings(env);
  int error_pipe[2];
  RECFORGE_CHECK(pipe2(error_pipe, O_CLOEXEC) == 0, "pipe: ", std::strerror(errno));
  const pid_t launcher = getpid();
  const pid_t pid = fork();
  if (pid == 0) become_worker(c_args.data(), c_env.data(), launcher, original_mask, error_pipe[1]);
  close(error_pipe[1]);
  int exec_error = 0;
  ssize_t got = pid < 0 ? 0 : read(error_pipe[0], &exec_error, sizeof(exec_error));
  close(error_pipe[0]);
  if (pid < 0) throw Error(concat("cannot start worker ", rank, ": fork: ", std::strerror(errno)));
  setpgid(pid, pid);  // also here, so signals reach the group whichever runs first
  if (got == static_cast<ssize_t>(sizeof(exec_error))) {
    waitpid(pid, nullptr, 0);
    throw Error(
        concat("cannot start worker ", rank, ": ", argv[0], ": ", std::strerror(exec_error)));
  }
  return pid;
}

void signal_running(const std::vector<Worker>& workers, int signal) {
  for (const Worker& w : workers) {
    if (w.running && kill(-w.pid, signal) != 0) kill(w.pid, signal);
  }
}

bool any_running(const std::vector<Worker>& workers) {
  return std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.running; });
}

int exit_code(int wait_status) {
  return WIFSIGNALED(wait_status) ? 128 + WTERMSIG(wait_status) : WEXITSTATUS(wait_status);
}

std::string failure_reason(int wait_status) {
  return WIFSIGNALED(wait_status) ? concat("signal ", WTERMSIG(wait_status))
                                  : concat("exit status ", WEXITSTATUS(wait_status));
}

// What the supervision loop knows: the first failure, the stop signals received, and when the
// workers still running after a failure get SIGKILL.
struct Supervision {
  std::optional<int> failure_code;
  int stop_signals = 0;
  Clock::time_point kill_at = Clock::time_point::max();  // max: no SIGKILL scheduled
};

void forward_stop_signal(std::vector<Worker>& workers, Supervision& state, int signal) {
  ++state.stop_signals;
  signal_running(workers, state.stop_signals == 1 ? signal : SIGKILL);
}

void on_worker_exit(std::vector<Worker>& workers, Supervision& state, Worker& worker,
                    std::chrono::milliseconds grace) {
  if (exit_code(worker.wait_status) == 0 || state.failure_code || state.stop_signals > 0) return;
  state.failure_code = exit_code(worker.wait_status);
  bool others = any_running(workers);
  std::fprintf(stderr, "worker %d failed (%s)%s\n", worker.rank,
               failure_reason(worker.wait_status).c_str(), others ? ": stopping the others" : "");
  std::fflush(stderr);
  if (!others) return;
  signal_running(workers, SIGTERM);
  state.kill_at = Clock::now() + grace;
}

void reap(std::vector<Worker>& workers, Supervision& state, std::chrono::milliseconds grace) {
  for (Worker& w : workers) {
    if (w.running && waitpid(w.pid, &w.wait_status, WNOHANG) == w.pid) {
      w.running = false;
      on_worker_exit(workers, state, w, grace);
    }
  }
}

// Until the next poll, or the scheduled SIGKILL if that comes first.
timespec wait_time(const Supervision& state) {
  auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(kPollInterval);
  if (state.kill_at != Clock::time_point::max()) {
    wait = std::clamp<std::chrono::nanoseconds>(state.kill_at - Clock::now(), 0ns, wait);
  }
  return {static_cast<time_t>(wait.count() / 1'000'000'000),
          static_cast<long>(wait.count() % 1'000'000'000)};
}

int supervise(std::vector<Worker>& workers, const sigset_t& watched,
              std::chrono::milliseconds grace) {
  Supervision state;
  while (any_running(workers)) {
    timespec wait = wait_time(state);
    int signal = sigtimedwait(&watched, nullptr, &wait);
    if (signal == SIGINT || signal == SIGTERM) forward_stop_signal(workers, state, signal);
    reap(workers, state, grace);
    if (Clock::now() >= state.kill_at) {
      signal_running(workers, SIGKILL);
      state.kill_at = Clock::time_point::max();
    }
  }
  if (state.failure_code) return *state.failure_code;
  for (const Worker& w : workers) {
    if (int code = exit_code(w.wait_status); code != 0) return code;
  }
  return 0;
}

// Stops and reaps the workers already started (when a later one could not be).
void stop_started(std::vector<Worker>& workers) {
  signal_running(workers, SIGKILL);
  for (Worker& w : workers) {
    if (w.running) waitpid(w.pid, nullptr, 0);
  }
}

}  // namespace

int run_workers(int nproc, const std::vector<std::string>& argv, std::chrono::milliseconds grace) {
  RECFORGE_CHECK(nproc >= 1, "--nproc must be at least 1, got ", nproc);
  RECFORGE_CHECK(!argv.empty(), "run_workers needs a command to run");
  const char* given_port = std::getenv("MASTER_PORT");
  const std::string port = given_port != nullptr && *given_port != '\0'
                               ? std::string(given_port)
                               : std::to_string(free_port());
  SignalScope signals;
  std::vector<Worker> workers;
  try {
    for (int rank = 0; rank < nproc; ++rank) {
      pid_t pid = start_worker(rank, nproc, argv, port, signals.original_mask());
      workers.push_back({rank, pid, true, 0});
    }
  } catch (const Error&) {
    stop_started(workers);
    throw;
  }
  return supervise(workers, signals.watched(), grace);
}

std::vector<std::string> without_option(const std::vector<std::string>& argv,
                                        const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == name) {
      ++i;  // and its value
    } else if (argv[i].rfind(name + "=", 0) != 0) {
      out.push_back(argv[i]);
    }
  }
  return out;
}

}  // namespace recforge
