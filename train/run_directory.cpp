#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "kernels/check.h"

namespace recforge {
namespace {

// "pid 1234 on host h since 2026-12-03 11:00:00 UTC: recforge train c.yaml --resume".
std::string holder_description() {
  char host[HOST_NAME_MAX + 1] = {};
  gethostname(host, sizeof host - 1);
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  std::string command((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  for (char& c : command) c = c == '\0' ? ' ' : c;
  while (!command.empty() && command.back() == ' ') command.pop_back();
  return concat("pid ", getpid(), " on host ", host, " since ", when, ": ", command);
}

std::string read_holder(int fd) {
  std::string text(4096, '\0');
  const ssize_t got = pread(fd, text.data(), text.size(), 0);
  text.resize(got > 0 ? static_cast<size_t>(got) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.empty() ? "a process that has not written its name yet" : text;
}

}  // namespace

RunLock::RunLock(const std::filesystem::path& run_dir) {
  const std::filesystem::path path = run_dir / ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(concat("cannot open ", path.string(), ": ", std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const std::string holder = read_holder(fd_);
    ::close(fd_);
    throw Error(concat("run directory ", run_dir.string(), " is in use by another training (",
                       holder, "): wait for it to end or stop it, or give this run another ",
                       "run.output_dir"));
  }
  std::ofstream(path, std::ios::trunc) << holder_description() << '\n';  // for messages only
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

RunLog::RunLog(const std::filesystem::path& metrics_file)
    : path_(metrics_file), file_(std::fopen(metrics_file.c_str(), "a")) {
  if (!file_) {
    throw Error("cannot open " + metrics_file.string() + " for appending: " + std::strerror(errno));
  }
}

RunLog::~RunLog() { std::fclose(file_); }

void RunLog::write(const nlohmann::json& event) {
  const std::string line = event.dump() + "\n";
  const bool written = std::fwrite(line.data(), 1, line.size(), file_) == line.size();
  if (!written || std::fflush(file_) != 0) {
    throw Error(concat("cannot append to ", path_.string(), ": ", std::strerror(errno)));
  }
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  }
  return text;
}

Progress::Progress(int64_t done, int64_t total)
    : start_(std::chrono::steady_clock::now()), first_(done), done_(done), total_(total) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::eta_seconds() const {
  if (done_ <= first_) return 0.0;
  return elapsed_seconds() / static_cast<double>(done_ - first_) *
         static_cast<double>(total_ - done_);
}

}  // namespace recforge
