// Rendezvous through a file on a shared filesystem. Layout of the file:
//   "recforge-rendezvous 1 world_size <N> bytes <L>\n" followed by the L payload bytes.
// Rank 0 writes it under a temporary name and renames it, so a reader sees all of it or nothing;
// each other rank acknowledges by creating `<file>.rank<R>`; rank 0 waits for every
// acknowledgement, then removes the file and the acknowledgements (also when it fails).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "kernels/check.h"
#include "train/dist/rendezvous.h"
#include "train/dist/rendezvous_transport.h"

namespace recforge::rendezvous {
namespace {

namespace fs = std::filesystem;

constexpr auto kPollPause = std::chrono::milliseconds(50);
constexpr char kFormat[] = "recforge-rendezvous 1 world_size %d bytes %zu\n";

fs::path acknowledgement(const fs::path& file, int rank) {
  return file.string() + concat(".rank", rank);
}

void pause_until_next_poll(const Deadline& deadline) {
  std::this_thread::sleep_for(std::min<Clock::duration>(kPollPause, deadline.at - Clock::now()));
}

void write_atomically(const LaunchInfo& info, const fs::path& file, const std::string& contents) {
  const fs::path temporary = file.string() + concat(".tmp-", info.host, "-", getpid());
  {
    std::ofstream out(temporary, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) {
      fail(info, concat("cannot write the rendezvous file ", temporary.string(), ": ",
                        std::strerror(errno)));
    }
  }
  std::error_code error;
  fs::rename(temporary, file, error);
  if (error) {
    fs::remove(temporary, error);
    fail(info, concat("cannot create the rendezvous file ", file.string(), ": ", error.message()));
  }
}

// Rank 0's files, removed when it returns or fails.
struct PublishedFiles {
  const LaunchInfo& info;
  const fs::path& file;
  ~PublishedFiles() {
    std::error_code ignored;
    fs::remove(file, ignored);
    for (int r = 1; r < info.world_size; ++r) fs::remove(acknowledgement(file, r), ignored);
  }
};

std::vector<int> unacknowledged_ranks(const LaunchInfo& info, const fs::path& file) {
  std::vector<int> missing;
  std::error_code ignored;
  for (int r = 1; r < info.world_size; ++r) {
    if (!fs::exists(acknowledgement(file, r), ignored)) missing.push_back(r);
  }
  return missing;
}

std::string publish(const LaunchInfo& info, const std::string& payload, const fs::path& file,
                    const Deadline& deadline) {
  std::error_code ignored;
  if (fs::exists(file, ignored)) {
    fail(info, concat("the rendezvous file ", file.string(),
                      " already exists (left by an earlier run?): remove it or set "
                      "RECFORGE_RENDEZVOUS_FILE to a new path"));
  }
  PublishedFiles published{info, file};
  for (int r = 1; r < info.world_size; ++r) fs::remove(acknowledgement(file, r), ignored);
  char header[96];
  std::snprintf(header, sizeof(header), kFormat, info.world_size, payload.size());
  write_atomically(info, file, header + payload);
  for (;;) {
    std::vector<int> missing = unacknowledged_ranks(info, file);
    if (missing.empty()) return payload;
    if (deadline.passed()) {
      std::string ranks;
      for (int r : missing) ranks += concat(ranks.empty() ? "" : ", ", r);
      fail(info,
           concat("rank(s) ", ranks, " of ", info.world_size, " did not read the rendezvous file ",
                  file.string(), " within ", deadline.shown()));
    }
    pause_until_next_poll(deadline);
  }
}

std::optional<std::string> read_whole(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string parse_payload(const LaunchInfo& info, const fs::path& file,
                          const std::string& contents) {
  int world_size = 0;
  size_t bytes = 0;
  size_t newline = contents.find('\n');
  if (newline == std::string::npos ||
      std::sscanf(contents.substr(0, newline + 1).c_str(), kFormat, &world_size, &bytes) != 2 ||
      bytes > kMaxRendezvousPayload || contents.size() - newline - 1 != bytes) {
    fail(info, concat("the rendezvous file ", file.string(), " is not one recforge wrote"));
  }
  if (world_size != info.world_size) {
    fail(info,
         concat("the rendezvous file ", file.string(), " is for world size ", world_size,
                " but this launch has ", info.world_size, " (left by an earlier run? remove it)"));
  }
  return contents.substr(newline + 1);
}

std::string receive(const LaunchInfo& info, const fs::path& file, const Deadline& deadline) {
  std::optional<std::string> contents;
  while (!(contents = read_whole(file))) {
    if (deadline.passed()) {
      fail(info, concat("the rendezvous file ", file.string(), " did not appear within ",
                        deadline.shown(), " (rank 0 writes it)"));
    }
    pause_until_next_poll(deadline);
  }
  std::string payload = parse_payload(info, file, *contents);
  const fs::path acknowledged = acknowledgement(file, info.rank);
  if (!std::ofstream(acknowledged)) {
    fail(info, concat("cannot write the acknowledgement ", acknowledged.string(), ": ",
                      std::strerror(errno)));
  }
  return payload;
}

}  // namespace

std::string share_over_file(const LaunchInfo& info, const std::string& payload,
                            const fs::path& file, const Deadline& deadline) {
  if (info.rank == 0) return publish(info, payload, file, deadline);
  return receive(info, file, deadline);
}

}  // namespace recforge::rendezvous
