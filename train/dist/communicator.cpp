#include "train/dist/communicator.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "kernels/buffer.h"
#include "train/dist/communicator_backends.h"
#include "train/dist/mpi_environment.h"

namespace recforge {
namespace {

// One process: each collective's result is its own input.
class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(Device device) : device_(device) {}

  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  CommBackend backend() const override { return CommBackend::kNone; }

  void all_reduce_sum(float*, size_t) override {}
  void reduce_scatter_sum(const float* input, float* output, size_t count_per_rank) override {
    copy(output, input, count_per_rank);
  }
  void all_gather(const float* input, float* output, size_t count_per_rank) override {
    copy(output, input, count_per_rank);
  }
  void broadcast(float*, size_t, int root) override {
    RECFORGE_CHECK(root == 0, "broadcast root ", root, " is not a rank of a world of 1");
  }
  void start_all_reduce_sum(float*, size_t) override {}
  void finish_all_reduces() override {}
  void all_reduce_sum_host(double*, size_t) override {}
  void barrier() override {}

 private:
  void copy(float* output, const float* input, size_t count) const {
    if (output != input) copy_bytes(output, device_, input, device_, count * sizeof(float));
  }
  Device device_;
};

}  // namespace

std::string describe_rank(int rank) {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return concat("rank ", rank, " (host ", host[0] ? host : "unknown", ")");
}

const char* comm_backend_name(CommBackend backend) {
  switch (backend) {
    case CommBackend::kAuto:
      return "auto";
    case CommBackend::kNone:
      return "none";
    case CommBackend::kMpi:
      return "mpi";
    case CommBackend::kNccl:
      return "nccl";
  }
  return "?";
}

CommBackend parse_comm_backend(std::string_view name) {
  for (CommBackend backend :
       {CommBackend::kAuto, CommBackend::kNone, CommBackend::kMpi, CommBackend::kNccl}) {
    if (name == comm_backend_name(backend)) return backend;
  }
  throw Error(
      concat("unknown communication backend '", name, "': expected auto, none, mpi or nccl"));
}

void end_job(const std::string& message, int exit_code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
#if RECFORGE_WITH_MPI
  mpi::abort_if_initialized(exit_code);
#endif
  std::_Exit(exit_code);
}

CommBackend resolve_backend(const Context& ctx, const CommunicatorOptions& options) {
  if (options.backend != CommBackend::kAuto) return options.backend;
  if (options.world_size == 1) return CommBackend::kNone;
  return ctx.on_cuda() ? CommBackend::kNccl : CommBackend::kMpi;
}

std::unique_ptr<Communicator> make_communicator(const Context& ctx,
                                                const CommunicatorOptions& options) {
  const CommBackend backend = resolve_backend(ctx, options);
  RECFORGE_CHECK(options.world_size >= 1, "world size must be at least 1, got ",
                 options.world_size);
  RECFORGE_CHECK(options.rank >= 0 && options.rank < options.world_size, "rank ", options.rank,
                 " is outside a world of ", options.world_size);
  if (backend == CommBackend::kNone) {
    RECFORGE_CHECK(options.world_size == 1, "the none backend runs one process but WORLD_SIZE is ",
                   options.world_size, ": use the mpi or nccl backend (or auto)");
    return std::make_unique<SingleProcessCommunicator>(ctx.device());
  }
  if (backend == CommBackend::kMpi) {
#if RECFORGE_WITH_MPI
    return make_mpi_communicator(ctx, options);
#else
    RECFORGE_CHECK(false, "the mpi backend was requested but recforge was built without MPI ",
                   "(install libopenmpi-dev and reconfigure)");
#endif
  }
#if RECFORGE_WITH_NCCL
  RECFORGE_CHECK(ctx.on_cuda(), "the nccl backend needs a CUDA context (run.device: cuda)");
  return make_nccl_communicator(ctx, options);
#else
  RECFORGE_CHECK(false, "the nccl backend was requested but recforge was built without ",
                 kWithCuda ? "NCCL (libnccl was not found in the CUDA toolkit)" : "CUDA");
#endif
}

}  // namespace recforge
