// Token plus position embedding on the GPU.
//
// Forward: a gather. Block (n, y) copies channels [y·threads, (y+1)·threads) of row n; consecutive
// threads read consecutive channels of the two table rows, so every access is coalesced.
// Backward: deterministic scatter through the host-built ScatterIndex (kernels/embedding.h). Block
// (g, y) owns table row keys[g], channels [y·threads, (y+1)·threads): each thread starts from the
// table value and adds the gradient rows rows[starts[g] .. starts[g+1]) in ascending order, exactly
// the CPU backend's order. Each table element has one owner, so no atomics are needed and the
// result is bitwise reproducible.

#include <algorithm>

#include "kernels/cuda_common.cuh"
#include "kernels/embedding.h"

namespace recforge::cuda {
namespace {

// Threads per block along the channels: C rounded up to whole warps, at most 256.
int channel_threads(int C) {
  return std::min(256, static_cast<int>(ceil_div(C, kWarpSize)) * kWarpSize);
}

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens,
                                         const int32_t* positions, const float* wte,
                                         const float* wpe, int C) {
  const int n = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const float* token_row = wte + static_cast<int64_t>(tokens[n]) * C;
  const float* position_row = wpe + static_cast<int64_t>(positions[n]) * C;
  out[static_cast<int64_t>(n) * C + c] = token_row[c] + position_row[c];
}

// table[keys[g], c] += Σ_{r in group g, ascending} dout[rows[r], c]
__global__ void scatter_add_rows_kernel(float* table, const float* dout, ScatterIndex index,
                                        int C) {
  const int g = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float* element = table + static_cast<int64_t>(index.keys[g]) * C + c;
  float sum = *element;
  for (int r = index.starts[g]; r < index.starts[g + 1]; ++r) {
    sum += dout[static_cast<int64_t>(index.rows[r]) * C + c];
  }
  *element = sum;
}

void scatter_add_rows(const Context& ctx, float* table, const float* dout,
                      const ScatterIndex& index, int C) {
  if (table == nullptr || index.num_groups == 0) return;
  const int threads = channel_threads(C);
  scatter_add_rows_kernel<<<dim3(index.num_groups, ceil_div(C, threads)), threads, 0,
                            stream_of(ctx)>>>(table, dout, index, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void embedding_forward(const Context& ctx, float* out, const int32_t* tokens,
                       const int32_t* positions, const float* wte, const float* wpe, int N, int C) {
  if (N == 0) return;
  const int threads = channel_threads(C);
  embedding_forward_kernel<<<dim3(N, ceil_div(C, threads)), threads, 0, stream_of(ctx)>>>(
      out, tokens, positions, wte, wpe, C);
  CUDA_CHECK_LAUNCH();
}

void embedding_backward(const Context& ctx, float* dwte, float* dwpe, const float* dout,
                        const ScatterIndex& token_index, const ScatterIndex& position_index,
                        int C) {
  scatter_add_rows(ctx, dwte, dout, token_index, C);
  scatter_add_rows(ctx, dwpe, dout, position_index, C);
}

}  // namespace recforge::cuda
