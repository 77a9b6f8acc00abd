// Rendezvous: rank 0 hands a small payload (at most 4 KiB, e.g. NCCL's unique id) to every rank of
// a launch, without MPI. Two transports, chosen by the environment:
//
//   file  RECFORGE_RENDEZVOUS_FILE=path on a filesystem every rank sees. Rank 0 writes the file
//         atomically (a temporary name, then rename) and waits for each rank's acknowledgement
//         `<path>.rank<R>`; the others poll for the file, read it and acknowledge. Rank 0 then
//         removes the file and the acknowledgements. A file that already exists when rank 0
//         starts (left by a crashed run) is an error.
//   tcp   otherwise, MASTER_ADDR:MASTER_PORT. Rank 0 listens on MASTER_PORT (every interface),
//         accepts the world_size - 1 other ranks and answers each with the payload; the others
//         connect to MASTER_ADDR, retrying until the deadline.
//
// Wire format (tcp, integers as 4-byte big-endian):
//   hello   (rank r -> 0)  "RFRDVZ01", rank, world_size, host length, host bytes
//   answer  (0 -> rank r)  "RFRDVZ01", status (0 = payload, 1 = refused), length, bytes
// Rank 0 refuses (and fails itself) a rank out of range, a rank seen twice or a different world
// size, so a mixed-up launch stops on every side with the reason.
//
// Every wait is bounded by `timeout` for the whole call; each error names this rank and host,
// the address or file, and what was waited for, e.g.
//   "rank 1 on host x: no answer from rank 0 at 127.0.0.1:29500 after 30 s".
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "train/dist/launch.h"

namespace recforge {

constexpr size_t kMaxRendezvousPayload = 4096;

// Returns rank 0's `payload` on every rank (rank 0 returns its own; the other ranks' `payload`
// is ignored). A single process (world_size 1) returns at once without any transport. Throws
// Error on a timeout, a bad setting or a refused rank.
std::string rendezvous_share(const LaunchInfo& info, const std::string& payload,
                             std::chrono::milliseconds timeout,
                             const Environment& env = std::getenv);

}  // namespace recforge
