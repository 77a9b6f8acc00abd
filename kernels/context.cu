#include "kernels/cuda_common.cuh"

namespace recforge {

namespace {
constexpr size_t kCublasLtWorkspaceBytes = 32u << 20;  // Hopper's cuBLASLt kernels like 32 MiB

void destroy_handles(CudaHandles* handles) {
  cudaSetDevice(handles->device);
  if (handles->stream) cudaStreamSynchronize(handles->stream);
  cudaFree(handles->scratch);
  cudaFree(handles->cublaslt_workspace);
  if (handles->cublaslt) cublasLtDestroy(handles->cublaslt);
  if (handles->stream) cudaStreamDestroy(handles->stream);
  delete handles;
}
}  // namespace

int cuda_device_count_or_zero() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error and report none
    return 0;
  }
  return count;
}

uint64_t cuda_free_memory_bytes() {
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

std::shared_ptr<CudaHandles> create_cuda_handles(int device_index) {
  std::shared_ptr<CudaHandles> handles(new CudaHandles, destroy_handles);
  handles->device = device_index;
  CUDA_CHECK(cudaSetDevice(device_index));
  // A blocking stream: host copies on the legacy default stream (Buffer::upload and download)
  // are ordered after the kernels queued here.
  CUDA_CHECK(cudaStreamCreate(&handles->stream));
  CUBLAS_CHECK(cublasLtCreate(&handles->cublaslt));
  CUDA_CHECK(cudaMalloc(&handles->cublaslt_workspace, kCublasLtWorkspaceBytes));
  handles->cublaslt_workspace_bytes = kCublasLtWorkspaceBytes;
  CUDA_CHECK(
      cudaDeviceGetAttribute(&handles->num_sms, cudaDevAttrMultiProcessorCount, device_index));
  return handles;
}

CUstream_st* cuda_stream(const CudaHandles& handles) { return handles.stream; }

void cuda_synchronize(const CudaHandles& handles) {
  CUDA_CHECK(cudaStreamSynchronize(handles.stream));
}

namespace cuda {
void* scratch(const Context& ctx, size_t bytes) {
  CudaHandles* handles = ctx.handles();
  if (bytes > handles->scratch_bytes) {
    CUDA_CHECK(cudaStreamSynchronize(handles->stream));
    CUDA_CHECK(cudaFree(handles->scratch));
    handles->scratch = nullptr;  // stays consistent if the allocation below throws
    handles->scratch_bytes = 0;
    CUDA_CHECK(cudaMalloc(&handles->scratch, bytes));
    handles->scratch_bytes = bytes;
  }
  return handles->scratch;
}
}  // namespace cuda

}  // namespace recforge
