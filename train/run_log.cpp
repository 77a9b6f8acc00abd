#include "train/run_log.h"

#include <cerrno>
#include <cstring>

#include "kernels/check.h"

namespace recforge {

RunLog::RunLog(const std::filesystem::path& metrics_file)
    : file_(std::fopen(metrics_file.c_str(), "a")) {
  if (!file_) {
    throw Error("cannot open " + metrics_file.string() + " for appending: " + std::strerror(errno));
  }
}

RunLog::~RunLog() { std::fclose(file_); }

void RunLog::write(const nlohmann::json& event) {
  const std::string line = event.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
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
