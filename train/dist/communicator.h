// Collective communication for data-parallel training: every rank holds a full model replica and
// the ranks sum their gradients (all_reduce_sum), or shard them (reduce_scatter_sum, then
// all_gather of the updated shards), and start from rank 0's weights (broadcast).
//
// Backends:
//   none  one process; every collective is the identity (a copy where input and output differ).
//   mpi   host memory; MPI_Allreduce, MPI_Reduce_scatter_block, MPI_Allgather, MPI_Bcast over a
//         duplicate of MPI_COMM_WORLD. The process must be started by mpirun with the requested
//         world size; MPI is initialised on first use and finalised at exit.
//   nccl  device memory of a CUDA context; the collectives run on a communication stream of their
//         own, ordered after the work already queued on the context's stream and before the work
//         queued there afterwards (see nccl_communicator.cu). Which GPU a rank uses (its local
//         rank) is the caller's choice, made when it creates the context.
//   auto  nccl on a CUDA context with world_size > 1, mpi on the CPU with world_size > 1, else
//   none.
//
// Memory: the float collectives work on the context's memory (host for none and mpi, device for
// nccl); the *_host collectives work on host memory whatever the backend (metrics, counts).
// Layout: reduce_scatter_sum's input and all_gather's output are [world_size, count_per_rank], rank
// r's block at r * count_per_rank; output of reduce_scatter_sum[i] = Σ_ranks input[rank*count + i]
// for this rank's block.
//
// Determinism: for a fixed world size and message size, OpenMPI's tuned collectives pick one
// algorithm and so add the ranks' values in one fixed order: the sums are bitwise reproducible
// run to run (not across world sizes, nor necessarily between all_reduce_sum and
// reduce_scatter_sum + all_gather for more than two ranks). NCCL documents no such guarantee; its
// choice of algorithm and protocol can be pinned with NCCL_ALGO=Ring NCCL_PROTO=Simple.
//
// Errors are recforge::Error naming the operation, the rank and the host. A collective every
// rank does not reach blocks: MPI has no timeout (mpirun ends the job when a process dies), and
// NCCL's initialisation and host-side waits give up after `timeout`.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kernels/context.h"

#ifndef RECFORGE_WITH_MPI
#define RECFORGE_WITH_MPI 0
#endif
#ifndef RECFORGE_WITH_NCCL
#define RECFORGE_WITH_NCCL 0
#endif

namespace recforge {

inline constexpr bool kWithMpi = RECFORGE_WITH_MPI;
inline constexpr bool kWithNccl = RECFORGE_WITH_NCCL;

enum class CommBackend { kAuto, kNone, kMpi, kNccl };

// "auto", "none", "mpi" or "nccl"; parse_comm_backend throws recforge::Error for anything else.
const char* comm_backend_name(CommBackend backend);
CommBackend parse_comm_backend(std::string_view name);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual CommBackend backend() const = 0;  // kNone, kMpi or kNccl

  // In place on the context's memory: data [count] becomes the sum over ranks.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  // input [world_size * count_per_rank] → output [count_per_rank], the sum over ranks of this
  // rank's block of input.
  virtual void reduce_scatter_sum(const float* input, float* output, size_t count_per_rank) = 0;
  // input [count_per_rank] → output [world_size * count_per_rank], rank r's input as block r.
  virtual void all_gather(const float* input, float* output, size_t count_per_rank) = 0;
  // data [count] takes the values of rank `root`.
  virtual void broadcast(float* data, size_t count, int root) = 0;

  // Starts data [count] becoming the sum over ranks and returns without waiting (gradient
  // buckets during the backward); finish_all_reduces() waits for every one started. The data must
  // not be read or written in between. nccl: queued on the communication stream after the compute
  // stream's work so far, and the compute stream waits for them only at finish_all_reduces().
  virtual void start_all_reduce_sum(float* data, size_t count) = 0;
  virtual void finish_all_reduces() = 0;

  // Host memory, whatever the backend: data [count] becomes the sum over ranks.
  virtual void all_reduce_sum_host(double* data, size_t count) = 0;
  // Returns once every rank has called it (and, with nccl, after the collectives queued before).
  virtual void barrier() = 0;
};

struct CommunicatorOptions {
  CommBackend backend = CommBackend::kAuto;
  int rank = 0, world_size = 1;
  // How long NCCL may take to initialise or to finish a host-side wait before it is aborted.
  std::chrono::milliseconds timeout{300000};
  // Called on every rank with rank 0's value (other ranks pass ""); returns rank 0's value on every
  // rank. Carries the NCCL unique id when the processes were not started by mpirun.
  std::function<std::string(const std::string&)> share_from_rank0;
};

// Resolves options.backend (kAuto) for this context and world size: kNone, kMpi or kNccl.
CommBackend resolve_backend(const Context& ctx, const CommunicatorOptions& options);

// Ends this process with `exit_code` after printing `message` on stderr, and every other process
// of the job when mpirun started it (MPI_Abort): a rank that failed must not leave the others
// blocked in a collective, and MPI_Finalize at exit would wait for them. (--nproc, torchrun and
// srun end the other workers when one exits non-zero.)
[[noreturn]] void end_job(const std::string& message, int exit_code);

// The communicator of the resolved backend. Throws recforge::Error for an unknown backend, a rank
// outside [0, world_size), a backend this build or this context cannot run, or an MPI launch whose
// rank or size disagree with the options.
std::unique_ptr<Communicator> make_communicator(const Context& ctx,
                                                const CommunicatorOptions& options);

}  // namespace recforge
