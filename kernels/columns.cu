// Column blocks on the GPU: one grid-stride loop over the N · width elements of the packed array;
// each thread finds its element's block by walking the (at most kMaxColumnParts) widths and copies
// one element, so consecutive threads touch consecutive elements of the packed rows.

#include "kernels/columns.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

// The parts as a plain kernel argument.
template <typename T>
struct DeviceParts {
  T* data[kMaxColumnParts];
  int widths[kMaxColumnParts];
  int count;
};

template <typename T>
DeviceParts<T> device_parts(const ColumnParts<T>& parts) {
  DeviceParts<T> out{};
  for (int k = 0; k < parts.count; ++k) {
    out.data[k] = parts.data[k];
    out.widths[k] = parts.widths[k];
  }
  out.count = parts.count;
  return out;
}

// Element (n, c) of the packed [N, width] rows is element (n, c − start_k) of part k, the block
// whose columns [start_k, start_k + widths[k]) hold c. Returns k and sets *column = c − start_k.
template <typename T>
__device__ __forceinline__ int find_part(const DeviceParts<T>& parts, int c, int* column) {
  int k = 0;
  while (k + 1 < parts.count && c >= parts.widths[k]) c -= parts.widths[k++];
  *column = c;
  return k;
}

__global__ void concat_columns_kernel(float* out, DeviceParts<const float> parts, int width,
                                      int64_t total) {
  for (int64_t i = grid_stride_begin(); i < total; i += grid_stride_step()) {
    const int64_t n = i / width;
    int column;
    const int k = find_part(parts, static_cast<int>(i % width), &column);
    out[i] = parts.data[k][n * parts.widths[k] + column];
  }
}

__global__ void split_columns_kernel(DeviceParts<float> parts, const float* in, int width,
                                     int64_t total) {
  for (int64_t i = grid_stride_begin(); i < total; i += grid_stride_step()) {
    const int64_t n = i / width;
    int column;
    const int k = find_part(parts, static_cast<int>(i % width), &column);
    parts.data[k][n * parts.widths[k] + column] = in[i];
  }
}

}  // namespace

void concat_columns(const Context& ctx, float* out, const ColumnParts<const float>& parts, int N) {
  const int width = parts.total_width();
  const int64_t total = static_cast<int64_t>(N) * width;
  if (total == 0) return;
  concat_columns_kernel<<<grid_stride_blocks(ctx, total), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, device_parts(parts), width, total);
  CUDA_CHECK_LAUNCH();
}

void split_columns(const Context& ctx, const ColumnParts<float>& parts, const float* in, int N) {
  const int width = parts.total_width();
  const int64_t total = static_cast<int64_t>(N) * width;
  if (total == 0) return;
  split_columns_kernel<<<grid_stride_blocks(ctx, total), kElementwiseThreads, 0, stream_of(ctx)>>>(
      device_parts(parts), in, width, total);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
