// What a run keeps in its directory besides checkpoints: an exclusive lock, so that two trainings
// never write one directory; the log, one JSON object per event appended to `metrics.jsonl`
// (flushed at once, so a crash loses nothing written); and the console's progress with throughput
// and ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace recforge {

// An exclusive lock on a run directory: flock on `<run>/.lock`, held until the object goes or the
// process ends, however it ends, so a lock is never stale: a file left by a dead process is taken
// over. The file names its holder (pid, host, start time, command line) for the message that
// refuses a second process.
class RunLock {
 public:
  // Throws recforge::Error naming the holder when another process holds the lock.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

class RunLog {
 public:
  explicit RunLog(const std::filesystem::path& metrics_file);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  // Throws recforge::Error naming the file when the line cannot be written whole (a full disk,
  // a file size limit).
  void write(const nlohmann::json& event);

 private:
  std::filesystem::path path_;
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
