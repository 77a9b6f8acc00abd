// Row gather and scatter on the GPU: one grid-stride loop over the R·C elements moved (a row's
// elements are consecutive threads, so reads and writes coalesce); the scatter first zeroes the
// whole output on the stream.

#include "kernels/cuda_common.cuh"
#include "kernels/rows.h"

namespace recforge::cuda {
namespace {

// out[i, c] = in[rows[i], c].
template <typename T>
__global__ void gather_rows_kernel(T* out, const T* in, const int32_t* rows, int64_t n, int C) {
  for (int64_t k = grid_stride_begin(); k < n; k += grid_stride_step()) {
    const int64_t i = k / C, c = k % C;
    out[k] = in[static_cast<int64_t>(rows[i]) * C + c];
  }
}

// out[rows[i], c] = in[i, c].
template <typename T>
__global__ void scatter_rows_kernel(T* out, const T* in, const int32_t* rows, int64_t n, int C) {
  for (int64_t k = grid_stride_begin(); k < n; k += grid_stride_step()) {
    const int64_t i = k / C, c = k % C;
    out[static_cast<int64_t>(rows[i]) * C + c] = in[k];
  }
}

}  // namespace

template <typename T>
void gather_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int C) {
  const int64_t n = static_cast<int64_t>(R) * C;
  if (n == 0) return;
  gather_rows_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, in, rows, n, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void scatter_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int N,
                  int C) {
  CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(N) * C * sizeof(T), stream_of(ctx)));
  const int64_t n = static_cast<int64_t>(R) * C;
  if (n == 0) return;
  scatter_rows_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, in, rows, n, C);
  CUDA_CHECK_LAUNCH();
}

template void gather_rows<float>(const Context&, float*, const float*, const int32_t*, int, int);
template void gather_rows<int32_t>(const Context&, int32_t*, const int32_t*, const int32_t*, int,
                                   int);
template void scatter_rows<float>(const Context&, float*, const float*, const int32_t*, int, int,
                                  int);
template void scatter_rows<int32_t>(const Context&, int32_t*, const int32_t*, const int32_t*, int,
                                    int, int);

}  // namespace recforge::cuda
