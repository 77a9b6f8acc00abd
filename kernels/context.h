// The execution context every kernel entry point takes: which device runs it, on which stream, with
// which library handles. Kernels dispatch on `ctx.device`; the model, trainer and tests are the
// same code on both backends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/check.h"

#ifndef RECFORGE_WITH_CUDA
#define RECFORGE_WITH_CUDA 0
#endif

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so headers stay CUDA-free.

namespace recforge {

inline constexpr bool kWithCuda = RECFORGE_WITH_CUDA;

enum class Device { kCpu, kCuda };
// A requested device: one of the two, or kAuto (CUDA when a GPU is present, the CPU otherwise).
enum class DeviceChoice { kCpu, kCuda, kAuto };

std::string device_name(Device device);
// "cpu", "cuda" or "auto".
const char* device_choice_name(DeviceChoice choice);
Device resolve_device(DeviceChoice choice);
// Parses "cpu", "cuda" or "auto" and resolves it.
Device parse_device(const std::string& name);

// Number of usable CUDA devices; 0 when built without CUDA or when no driver/GPU is present.
int cuda_device_count();

// Bytes a new allocation may take: the host's MemAvailable (/proc/meminfo) for the CPU, the free
// memory of the current device for CUDA.
uint64_t available_memory_bytes(Device device);

struct CudaHandles;  // cuBLASLt handle and workspace, defined in context.cu.

class Context {
 public:
  // A CPU context. `num_threads` <= 0 keeps the OpenMP default.
  static Context cpu(int num_threads = 0);
  // A CUDA context on `device_index` with its own stream and cuBLASLt handle.
  static Context cuda(int device_index = 0);
  static Context create(Device device);

  Device device() const { return device_; }
  bool on_cuda() const { return device_ == Device::kCuda; }
  CUstream_st* stream() const;
  CudaHandles* handles() const { return handles_.get(); }
  // Blocks until all work queued on this context's stream has finished (no-op on the CPU).
  void synchronize() const;

 private:
  explicit Context(Device device) : device_(device) {}
  Device device_;
  std::shared_ptr<CudaHandles> handles_;
};

// Throws unless `ctx` runs on the CPU; used by entry points that exist only there (float64).
inline void require_cpu(const Context& ctx, const char* op) {
  RECFORGE_CHECK(!ctx.on_cuda(), op, ": this element type runs on the CPU backend only");
}

}  // namespace recforge
