#include "kernels/buffer.h"
#include "kernels/cuda_common.cuh"

namespace recforge {

void* cuda_alloc(size_t bytes) {
  void* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}

void cuda_free(void* ptr) { cudaFree(ptr); }

void cuda_copy(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

void cuda_zero_async(const Context& ctx, void* ptr, size_t bytes) {
  CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, cuda::stream_of(ctx)));
}

void cuda_fill(void* ptr, int value, size_t bytes) { CUDA_CHECK(cudaMemset(ptr, value, bytes)); }

}  // namespace recforge
