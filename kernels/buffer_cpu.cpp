#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/buffer.h"

namespace recforge {

#if RECFORGE_WITH_CUDA
// Defined in buffer.cu.
void* cuda_alloc(size_t bytes);
void cuda_free(void* ptr);
void cuda_copy(void* dst, const void* src, size_t bytes);
void cuda_zero_async(const Context& ctx, void* ptr, size_t bytes);
void cuda_fill(void* ptr, int value, size_t bytes);
#else
namespace {
[[noreturn]] void no_cuda() {
  throw Error("device memory requested but recforge was built without CUDA");
}
void* cuda_alloc(size_t) { no_cuda(); }
void cuda_free(void*) {}
void cuda_copy(void*, const void*, size_t) { no_cuda(); }
void cuda_zero_async(const Context&, void*, size_t) { no_cuda(); }
void cuda_fill(void*, int, size_t) { no_cuda(); }
}  // namespace
#endif

namespace {
constexpr size_t kCpuAlignment = 64;  // one cache line, and a full AVX-512 register
}  // namespace

void* device_alloc(Device device, size_t bytes) {
  if (bytes == 0) return nullptr;
  if (device == Device::kCuda) return cuda_alloc(bytes);
  size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  void* ptr = std::aligned_alloc(kCpuAlignment, rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  return ptr;
}

void device_free(Device device, void* ptr) {
  if (ptr == nullptr) return;
  if (device == Device::kCuda) return cuda_free(ptr);
  std::free(ptr);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::kCuda || src_device == Device::kCuda) return cuda_copy(dst, src, bytes);
  std::memcpy(dst, src, bytes);
}

void zero_bytes(const Context& ctx, void* ptr, size_t bytes) {
  if (bytes == 0) return;
  if (ctx.on_cuda()) return cuda_zero_async(ctx, ptr, bytes);
  std::memset(ptr, 0, bytes);
}

void fill_bytes(Device device, void* ptr, int value, size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::kCuda) return cuda_fill(ptr, value, bytes);
  std::memset(ptr, value, bytes);
}

}  // namespace recforge
