// The nccl backend: collectives over device memory on a communication stream of its own.
//
// Ordering, for each float collective called with the context's compute stream S and the
// communication stream K:
//   1. record event `queued` on S; K waits for it: the collective reads what S produced before
//      the call (the gradients of the backward pass);
//   2. the NCCL collective is queued on K;
//   3. record event `done` on K; S waits for it: work queued on S after the call (the optimizer)
//      sees the result.
// The host does not block. Host copies on the legacy default stream (Buffer::download) are ordered
// after S and K, both being blocking streams. The *_host collectives and barrier() stage through a
// device buffer and wait on the host for K, polling so that a peer that never arrives, or an NCCL
// error, ends the wait after `timeout` with the communicator aborted.
//
// Initialisation: rank 0 makes the unique id and shares it by MPI_Bcast when mpirun started the
// job, otherwise through options.share_from_rank0 (as hex text); a world of one shares nothing. The
// communicator is created non-blocking (ncclConfig_t::blocking = 0), so ncclCommInitRankConfig
// returns at once and the connection is polled until it completes or `timeout` passes. Any NCCL
// call on a non-blocking communicator may answer ncclInProgress: each is polled the same way.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <thread>

#include "kernels/buffer.h"
#include "kernels/cuda_common.cuh"
#include "train/dist/communicator_backends.h"
#include "train/dist/mpi_environment.h"

namespace recforge {
namespace {

using Clock = std::chrono::steady_clock;

std::string to_hex(const ncclUniqueId& id) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : id.internal) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 15];
  }
  return hex;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  throw Error(concat("share_from_rank0 returned a non-hex character '", c, "'"));
}

ncclUniqueId from_hex(const std::string& hex) {
  RECFORGE_CHECK(hex.size() == 2 * NCCL_UNIQUE_ID_BYTES, "share_from_rank0 returned ", hex.size(),
                 " characters, expected the ", 2 * NCCL_UNIQUE_ID_BYTES,
                 " hex digits of rank 0's NCCL id");
  ncclUniqueId id;
  for (int i = 0; i < NCCL_UNIQUE_ID_BYTES; ++i) {
    id.internal[i] = static_cast<char>(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
  }
  return id;
}

// Rank 0's unique id on every rank.
ncclUniqueId shared_unique_id(const CommunicatorOptions& options) {
  ncclUniqueId id{};
  if (options.rank == 0) {
    ncclResult_t result = ncclGetUniqueId(&id);
    RECFORGE_CHECK(result == ncclSuccess, "ncclGetUniqueId failed on ", describe_rank(0), ": ",
                   ncclGetErrorString(result));
  }
  if (options.world_size == 1) return id;
#if RECFORGE_WITH_MPI
  if (mpi::launched()) {
    mpi::initialize();
    mpi::require_world(options.rank, options.world_size);
    mpi::broadcast_bytes(&id, sizeof(id), 0);
    return id;
  }
#endif
  RECFORGE_CHECK(static_cast<bool>(options.share_from_rank0),
                 "the nccl backend needs rank 0's NCCL id on every rank: start the job with "
                 "mpirun or give CommunicatorOptions::share_from_rank0 (",
                 describe_rank(options.rank), ")");
  return from_hex(options.share_from_rank0(options.rank == 0 ? to_hex(id) : std::string()));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Context& ctx, const CommunicatorOptions& options)
      : device_(ctx.handles()->device),
        compute_(ctx.stream()),
        rank_(options.rank),
        world_size_(options.world_size),
        timeout_(options.timeout) {
    const ncclUniqueId id = shared_unique_id(options);
    CUDA_CHECK(cudaSetDevice(device_));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check(ncclCommInitRankConfig(&comm_, world_size_, id, rank_, &config), "ncclCommInitRank");
    CUDA_CHECK(cudaStreamCreate(&stream_));
    CUDA_CHECK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_) release_communicator();
    cudaEventDestroy(done_);
    cudaEventDestroy(queued_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  CommBackend backend() const override { return CommBackend::kNccl; }

  void all_reduce_sum(float* data, size_t count) override {
    begin_after_compute();
    check(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm(), stream_), "ncclAllReduce");
    end_before_compute();
  }

  void start_all_reduce_sum(float* data, size_t count) override {
    begin_after_compute();
    check(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm(), stream_), "ncclAllReduce");
  }

  void finish_all_reduces() override { end_before_compute(); }

  void reduce_scatter_sum(const float* input, float* output, size_t count_per_rank) override {
    begin_after_compute();
    check(ncclReduceScatter(input, output, count_per_rank, ncclFloat, ncclSum, comm(), stream_),
          "ncclReduceScatter");
    end_before_compute();
  }

  void all_gather(const float* input, float* output, size_t count_per_rank) override {
    begin_after_compute();
    check(ncclAllGather(input, output, count_per_rank, ncclFloat, comm(), stream_),
          "ncclAllGather");
    end_before_compute();
  }

  void broadcast(float* data, size_t count, int root) override {
    RECFORGE_CHECK(root >= 0 && root < world_size_, "broadcast root ", root,
                   " is not a rank of a world of ", world_size_);
    begin_after_compute();
    check(ncclBroadcast(data, data, count, ncclFloat, root, comm(), stream_), "ncclBroadcast");
    end_before_compute();
  }

  void all_reduce_sum_host(double* data, size_t count) override {
    if (count == 0) return;
    CUDA_CHECK(cudaSetDevice(device_));
    staging_.reserve(count);
    CUDA_CHECK(cudaMemcpyAsync(staging_.data(), data, count * sizeof(double),
                               cudaMemcpyHostToDevice, stream_));
    check(ncclAllReduce(staging_.data(), staging_.data(), count, ncclDouble, ncclSum, comm(),
                        stream_),
          "ncclAllReduce");
    wait_for_stream("all_reduce_sum_host");
    // Only now: a copy into pageable memory would block the host until the collective ends.
    CUDA_CHECK(cudaMemcpyAsync(data, staging_.data(), count * sizeof(double),
                               cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void barrier() override {
    CUDA_CHECK(cudaSetDevice(device_));
    staging_.reserve(1);
    CUDA_CHECK(cudaMemsetAsync(staging_.data(), 0, sizeof(double), stream_));
    check(ncclAllReduce(staging_.data(), staging_.data(), 1, ncclDouble, ncclSum, comm(), stream_),
          "ncclAllReduce");
    wait_for_stream("barrier");
  }

 private:
  ncclComm_t comm() const {
    RECFORGE_CHECK(comm_ != nullptr, "the NCCL communicator of ", describe_rank(rank_),
                   " was aborted after an earlier error");
    return comm_;
  }

  void begin_after_compute() {
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaEventRecord(queued_, compute_));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, queued_, 0));
  }

  void end_before_compute() {
    CUDA_CHECK(cudaEventRecord(done_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0));
  }

  // Throws, aborting the communicator, unless `result` (or, for ncclInProgress, the state it
  // settles into before the deadline) is ncclSuccess.
  void check(ncclResult_t result, const char* call) {
    const Clock::time_point deadline = Clock::now() + timeout_;
    while (result == ncclInProgress) {
      if (Clock::now() > deadline) fail(call, "timed out");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(comm_, &result);
    }
    if (result != ncclSuccess) fail(call, ncclGetErrorString(result));
  }

  // Blocks until the work queued on the communication stream has finished, giving up (and
  // aborting) on an NCCL error or after the timeout.
  void wait_for_stream(const char* op) {
    CUDA_CHECK(cudaEventRecord(done_, stream_));
    const Clock::time_point deadline = Clock::now() + timeout_;
    for (;;) {
      const cudaError_t status = cudaEventQuery(done_);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) CUDA_CHECK(status);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) fail(op, ncclGetErrorString(async));
      if (Clock::now() > deadline) fail(op, "timed out");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  [[noreturn]] void fail(const char* call, const char* reason) {
    std::string detail = comm_ ? ncclGetLastError(comm_) : "";
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    throw Error(concat(call, " ", reason, " on ", describe_rank(rank_), " after at most ",
                       timeout_.count(), " ms", detail.empty() ? "" : ": ", detail));
  }

  // Flushes the queued collectives (bounded by the timeout), then frees the communicator.
  void release_communicator() {
    const Clock::time_point deadline = Clock::now() + timeout_;
    ncclResult_t state = ncclCommFinalize(comm_);
    while (state == ncclInProgress && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(comm_, &state);
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
    comm_ = nullptr;
  }

  int device_;
  cudaStream_t compute_;
  int rank_, world_size_;
  std::chrono::milliseconds timeout_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t queued_ = nullptr, done_ = nullptr;
  ncclComm_t comm_ = nullptr;
  Buffer<double> staging_{Device::kCuda, 0};
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const Context& ctx,
                                                     const CommunicatorOptions& options) {
  return std::make_unique<NcclCommunicator>(ctx, options);
}

}  // namespace recforge
