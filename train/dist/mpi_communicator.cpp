// The mpi backend: collectives over host memory on a duplicate of MPI_COMM_WORLD (so the library's
// traffic never matches messages of the application's own MPI calls). MPI counts are ints: the
// in-place collectives split larger arrays into chunks, the block collectives refuse them.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "train/dist/communicator_backends.h"
#include "train/dist/mpi_environment.h"

namespace recforge {
namespace {

constexpr size_t kMaxChunk = INT_MAX;

int block_count(size_t count, const char* op) {
  RECFORGE_CHECK(count <= kMaxChunk, op, " of ", count,
                 " elements per rank exceeds MPI's int count");
  return static_cast<int>(count);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int rank, int world_size) : rank_(rank), world_size_(world_size) {
    mpi::check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    mpi::check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  CommBackend backend() const override { return CommBackend::kMpi; }

  void all_reduce_sum(float* data, size_t count) override {
    all_reduce_in_place(data, count, MPI_FLOAT);
  }

  void reduce_scatter_sum(const float* input, float* output, size_t count_per_rank) override {
    const int count = block_count(count_per_rank, "reduce_scatter_sum");
    mpi::check(MPI_Reduce_scatter_block(input, output, count, MPI_FLOAT, MPI_SUM, comm_),
               "MPI_Reduce_scatter_block");
  }

  void all_gather(const float* input, float* output, size_t count_per_rank) override {
    const int count = block_count(count_per_rank, "all_gather");
    mpi::check(MPI_Allgather(input, count, MPI_FLOAT, output, count, MPI_FLOAT, comm_),
               "MPI_Allgather");
  }

  void broadcast(float* data, size_t count, int root) override {
    RECFORGE_CHECK(root >= 0 && root < world_size_, "broadcast root ", root,
                   " is not a rank of a world of ", world_size_);
    for (size_t at = 0; at < count; at += kMaxChunk) {
      const int chunk = static_cast<int>(std::min(kMaxChunk, count - at));
      mpi::check(MPI_Bcast(data + at, chunk, MPI_FLOAT, root, comm_), "MPI_Bcast");
    }
  }

  void all_reduce_sum_host(double* data, size_t count) override {
    all_reduce_in_place(data, count, MPI_DOUBLE);
  }

  void barrier() override { mpi::check(MPI_Barrier(comm_), "MPI_Barrier"); }

  void start_all_reduce_sum(float* data, size_t count) override {
    for (size_t at = 0; at < count; at += kMaxChunk) {
      const int chunk = static_cast<int>(std::min(kMaxChunk, count - at));
      MPI_Request request;
      mpi::check(
          MPI_Iallreduce(MPI_IN_PLACE, data + at, chunk, MPI_FLOAT, MPI_SUM, comm_, &request),
          "MPI_Iallreduce");
      pending_.push_back(request);
    }
  }

  void finish_all_reduces() override {
    std::vector<MPI_Request> requests;
    requests.swap(pending_);
    mpi::check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
               "MPI_Waitall");
  }

 private:
  template <typename T>
  void all_reduce_in_place(T* data, size_t count, MPI_Datatype type) {
    for (size_t at = 0; at < count; at += kMaxChunk) {
      const int chunk = static_cast<int>(std::min(kMaxChunk, count - at));
      mpi::check(MPI_Allreduce(MPI_IN_PLACE, data + at, chunk, type, MPI_SUM, comm_),
                 "MPI_Allreduce");
    }
  }

  int rank_, world_size_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<MPI_Request> pending_;  // started all-reduces
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const Context& ctx,
                                                    const CommunicatorOptions& options) {
  RECFORGE_CHECK(!ctx.on_cuda(), "the mpi backend reduces host memory: use the nccl backend ",
                 "(or auto) with a CUDA context");
  mpi::initialize();
  mpi::require_world(options.rank, options.world_size);
  return std::make_unique<MpiCommunicator>(options.rank, options.world_size);
}

}  // namespace recforge
