// Who am I in a multi-process run: the rank, world size and local rank of this process, from the
// `--rank/--world-size/--local-rank` flags or from the variables a launcher sets.
//
// Order (the first source with any of its variables set wins, and must then be complete):
//   flags     --rank, --world-size, --local-rank
//   torchrun  RANK, WORLD_SIZE, LOCAL_RANK (also `recforge train --nproc N`)
//   openmpi   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK (mpirun)
//   slurm     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (srun)
//   none      a single process: rank 0 of 1
// An empty variable counts as unset. Each value must be a whole decimal number with
// 0 <= rank < world_size and 0 <= local_rank < world_size; anything else is an Error that names
// the variables (or flags) and their values.
#pragma once

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace recforge {

struct LaunchFlags {
  std::optional<int> rank, world_size, local_rank;
};

struct LaunchInfo {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string source = "none";  // flags | torchrun | openmpi | slurm | none
  std::string host;             // this machine's name (gethostname), for messages
};

// getenv-like: the variable's value, or nullptr when unset. Injectable so tests need no setenv.
using Environment = std::function<const char*(const char*)>;

LaunchInfo detect_launch(const LaunchFlags& flags, const Environment& env = std::getenv);

// "rank 1/2 (local 1) on host x, from torchrun"; "single process on host x" for source none.
std::string describe(const LaunchInfo& info);

// This machine's name, or "unknown-host".
std::string host_name();

}  // namespace recforge
