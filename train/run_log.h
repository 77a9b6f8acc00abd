// A run's log: one JSON object per event appended to `metrics.jsonl` (flushed at once, so a crash
// loses nothing written), and a progress line on the console with throughput and ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace recforge {

class RunLog {
 public:
  explicit RunLog(const std::filesystem::path& metrics_file);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  void write(const nlohmann::json& event);

 private:
  std::FILE* file_ = nullptr;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

// Measures progress from a starting point: rate and remaining time.
class Progress {
 public:
  Progress(int64_t done, int64_t total);
  void update(int64_t done) { done_ = done; }
  int64_t total() const { return total_; }
  double elapsed_seconds() const;
  // Remaining seconds at the rate since construction (0 before any progress).
  double eta_seconds() const;

 private:
  std::chrono::steady_clock::time_point start_;
  int64_t first_, done_, total_;
};

}  // namespace recforge
