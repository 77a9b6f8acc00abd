// The two transports behind rendezvous_share (train/dist/rendezvous.h) and what they share: the
// deadline of the whole call and the error prefix naming this rank and host.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "train/dist/launch.h"

namespace recforge::rendezvous {

using Clock = std::chrono::steady_clock;

// The time allowed (for messages) and the instant it runs out.
struct Deadline {
  std::chrono::milliseconds timeout;
  Clock::time_point at;
  bool passed() const { return Clock::now() >= at; }
  // "30 s", "0.3 s".
  std::string shown() const;
};

// Throws Error("rank R on host H: " + message).
[[noreturn]] void fail(const LaunchInfo& info, const std::string& message);

// MASTER_ADDR:MASTER_PORT. `address` is unused on rank 0, which listens on every interface.
std::string share_over_tcp(const LaunchInfo& info, const std::string& payload,
                           const std::string& address, int port, const Deadline& deadline);

std::string share_over_file(const LaunchInfo& info, const std::string& payload,
                            const std::filesystem::path& file, const Deadline& deadline);

}  // namespace recforge::rendezvous
