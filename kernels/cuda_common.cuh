// Helpers shared by the CUDA kernels: error checks, launch geometry, the context's workspace,
// deterministic warp/block reductions and the row-major cuBLASLt GEMM (defined in matmul.cu).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/blas.h"
#include "kernels/check.h"
#include "kernels/context.h"
#include "kernels/math.h"

#define CUDA_CHECK(call)                                                  \
  do {                                                                    \
    cudaError_t status_ = (call);                                         \
    RECFORGE_CHECK(status_ == cudaSuccess, "CUDA error in ", #call, ": ", \
                   cudaGetErrorString(status_));                          \
  } while (false)

#define CUBLAS_CHECK(call)                                                                  \
  do {                                                                                      \
    cublasStatus_t status_ = (call);                                                        \
    RECFORGE_CHECK(status_ == CUBLAS_STATUS_SUCCESS, "cuBLAS error ", int(status_), " in ", \
                   #call);                                                                  \
  } while (false)

// Checks the last kernel launch.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace recforge {

struct CudaHandles {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  void* cublaslt_workspace = nullptr;  // for cuBLASLt's algorithms
  size_t cublaslt_workspace_bytes = 0;
  void* scratch = nullptr;  // for kernels' temporaries (grown on demand, stream-ordered use)
  size_t scratch_bytes = 0;
  int num_sms = 0;
};

namespace cuda {

inline cudaStream_t stream_of(const Context& ctx) { return ctx.stream(); }

// A scratch area of at least `bytes` bytes on ctx's device, valid until the next call. Growing it
// synchronizes the stream first, so earlier kernels never see their scratch freed.
void* scratch(const Context& ctx, size_t bytes);

inline unsigned int ceil_div(int64_t a, int64_t b) {
  return static_cast<unsigned int>((a + b - 1) / b);
}

// ---- Launch geometry ---------------------------------------------------------------------------
inline constexpr int kWarpSize = 32;
inline constexpr unsigned int kFullMask = 0xffffffffu;
inline constexpr int kElementwiseThreads = 256;

// Blocks for a grid-stride loop over n > 0 elements: one per kElementwiseThreads elements, capped
// at a few waves of the device so huge buffers reuse threads instead of launching millions of
// blocks.
inline unsigned int grid_stride_blocks(const Context& ctx, int64_t n) {
  int64_t cap = static_cast<int64_t>(ctx.handles()->num_sms) * 32;
  return static_cast<unsigned int>(std::min<int64_t>(ceil_div(n, kElementwiseThreads), cap));
}

// Index of this thread in a 1-D grid-stride loop and the loop's stride.
__device__ __forceinline__ int64_t grid_stride_begin() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride_step() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ---- Deterministic reductions ------------------------------------------------------------------
// Both reductions combine values along a fixed tree, so the same inputs give the same bits on every
// run. `combine` must be commutative (as +, max and online_softmax_merge are): then every lane of a
// butterfly ends with the same value.
__device__ __forceinline__ float shuffle_xor(float value, int mask) {
  return __shfl_xor_sync(kFullMask, value, mask);
}
__device__ __forceinline__ double shuffle_xor(double value, int mask) {
  return __shfl_xor_sync(kFullMask, value, mask);
}
__device__ __forceinline__ OnlineSoftmax shuffle_xor(OnlineSoftmax value, int mask) {
  return {shuffle_xor(value.max, mask), shuffle_xor(value.sum, mask)};
}

// Reduces over the `width` consecutive lanes (a power of two ≤ 32) that hold this lane's group;
// every lane of the group receives the result. All 32 lanes of the warp must call it.
template <int width = kWarpSize, typename T, typename Combine>
__device__ __forceinline__ T warp_reduce(T value, Combine combine) {
#pragma unroll
  for (int mask = width / 2; mask > 0; mask /= 2) value = combine(value, shuffle_xor(value, mask));
  return value;
}

struct Sum {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MergeSoftmax {
  __device__ __forceinline__ OnlineSoftmax operator()(OnlineSoftmax a, OnlineSoftmax b) const {
    return online_softmax_merge(a, b);
  }
};

// Reduces over the whole block (blockDim.x a multiple of 32, at most 1024): each warp reduces its
// lanes, then every thread folds the per-warp results in warp order. Every thread receives the
// result. All threads of the block must call it; it may be called repeatedly in one kernel.
template <typename T, typename Combine>
__device__ T block_reduce(T value, Combine combine) {
  __shared__ T warp_results[kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  value = warp_reduce(value, combine);
  __syncthreads();  // a previous call's readers are done with warp_results
  if (lane == 0) warp_results[warp] = value;
  __syncthreads();
  T result = warp_results[0];
  for (int w = 1; w < num_warps; ++w) result = combine(result, warp_results[w]);
  return result;
}

// ---- GEMM through cuBLASLt (matmul.cu) ---------------------------------------------------------
using Transpose = cpu::Transpose;  // the same flag as the CPU backend's BLAS wrapper

// cuBLASLt's name of a storage type.
template <typename T>
constexpr cudaDataType_t cuda_data_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "GEMMs store float or bf16");
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

// The element types of one GEMM: A and B share `inputs`; C, D and the bias share `output`.
struct GemmTypes {
  cudaDataType_t inputs, output;
};

// Row-major, like cpu::gemm in kernels/blas.h, queued on ctx's stream, products accumulated in
// fp32 (no TF32; bf16 inputs multiply exactly into the fp32 accumulator):
//   C[M, N] = alpha · op(A) · op(B) + beta · C  (+ bias[N] added to every row when bias is
//   non-null)
// op(A) is [M, K] (A stored [K, M] when transposed), op(B) is [K, N]; lda, ldb, ldc are row
// strides in elements. With beta = 0, C is not read. M, N, K > 0.
void gemm(const Context& ctx, GemmTypes types, Transpose trans_a, Transpose trans_b, int M, int N,
          int K, float alpha, const void* A, int lda, const void* B, int ldb, float beta, void* C,
          int ldc, const void* bias);

// The same on typed pointers: (Out, In) ∈ {(float, float), (float, bf16), (bf16, bf16)}; the bias
// has C's type and does not take part in deducing it.
template <typename Out, typename In>
void gemm(const Context& ctx, Transpose trans_a, Transpose trans_b, int M, int N, int K,
          float alpha, const In* A, int lda, const In* B, int ldb, float beta, Out* C, int ldc,
          const std::type_identity_t<Out>* bias = nullptr) {
  static_assert(std::is_same_v<Out, In> || std::is_same_v<Out, float>,
                "a GEMM writes fp32 or its inputs' type");
  gemm(ctx, GemmTypes{cuda_data_type<In>(), cuda_data_type<Out>()}, trans_a, trans_b, M, N, K,
       alpha, A, lda, B, ldb, beta, C, ldc, bias);
}
// The same with alpha = 1.
template <typename Out, typename In>
void gemm(const Context& ctx, Transpose trans_a, Transpose trans_b, int M, int N, int K,
          const In* A, int lda, const In* B, int ldb, float beta, Out* C, int ldc,
          const std::type_identity_t<Out>* bias = nullptr) {
  gemm(ctx, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, bias);
}

}  // namespace cuda
}  // namespace recforge
