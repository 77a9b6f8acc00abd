// This process's place in data-parallel training: the block of every micro-batch it trains, the
// collectives, and whether it writes the run directory (rank 0 only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "train/dist/communicator.h"

namespace recforge {

// The part of every micro-batch this process trains: a contiguous block of its examples (rank r
// of W takes [n·r/W, n·(r+1)/W), empty when n < W and r draws none). Losses are normalised by the
// counts of the whole micro-batches, so the ranks' gradients add up to the one-process gradient.
struct DataShard {
  int rank = 0;
  int world_size = 1;

  size_t begin(size_t n) const { return n * rank / world_size; }
  std::span<const uint32_t> of(std::span<const uint32_t> micro) const {
    const size_t first = begin(micro.size()), last = micro.size() * (rank + 1) / world_size;
    return micro.subspan(first, last - first);
  }
};

struct Distributed {
  DataShard shard;
  Communicator* comm = nullptr;  // null: one process

  bool writes_files() const { return shard.rank == 0; }
  bool parallel() const { return shard.world_size > 1; }
  // values become their sum over the ranks (host memory).
  void sum(std::vector<double>& values) const {
    if (parallel()) comm->all_reduce_sum_host(values.data(), values.size());
  }
};

}  // namespace recforge
