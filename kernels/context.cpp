#include "kernels/context.h"

#include <omp.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "kernels/blas.h"

namespace recforge {

#if RECFORGE_WITH_CUDA
// Defined in context.cu.
uint64_t cuda_free_memory_bytes();
std::shared_ptr<CudaHandles> create_cuda_handles(int device_index);
CUstream_st* cuda_stream(const CudaHandles& handles);
void cuda_synchronize(const CudaHandles& handles);
int cuda_device_count_or_zero();
#endif

std::string device_name(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

const char* device_choice_name(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::kCpu:
      return "cpu";
    case DeviceChoice::kCuda:
      return "cuda";
    case DeviceChoice::kAuto:
      return "auto";
  }
  return "?";
}

Device resolve_device(DeviceChoice choice) {
  if (choice == DeviceChoice::kAuto) {
    return cuda_device_count() > 0 ? Device::kCuda : Device::kCpu;
  }
  return choice == DeviceChoice::kCuda ? Device::kCuda : Device::kCpu;
}

Device parse_device(const std::string& name) {
  for (DeviceChoice choice : {DeviceChoice::kCpu, DeviceChoice::kCuda, DeviceChoice::kAuto}) {
    if (name == device_choice_name(choice)) return resolve_device(choice);
  }
  RECFORGE_CHECK(false, "unknown device '", name, "': expected cpu, cuda or auto");
}

uint64_t available_memory_bytes(Device device) {
#if RECFORGE_WITH_CUDA
  if (device == Device::kCuda) return cuda_free_memory_bytes();
#endif
  RECFORGE_CHECK(device == Device::kCpu,
                 "device cuda requested but recforge was built without CUDA");
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kilobytes = 0;
  while (meminfo >> key >> kilobytes) {
    if (key == "MemAvailable:") return kilobytes * 1024;
    meminfo.ignore(64, '\n');
  }
  return static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
}

int cuda_device_count() {
#if RECFORGE_WITH_CUDA
  return cuda_device_count_or_zero();
#else
  return 0;
#endif
}

Context Context::cpu(int num_threads) {
  if (num_threads > 0) omp_set_num_threads(num_threads);
  // BLAS runs single-threaded inside the CPU kernels' own OpenMP regions, never beside them.
  blas_use_single_thread();
  return Context(Device::kCpu);
}

Context Context::cuda(int device_index) {
#if RECFORGE_WITH_CUDA
  RECFORGE_CHECK(cuda_device_count() > device_index, "CUDA device ", device_index,
                 " requested but ", cuda_device_count(), " device(s) are present");
  Context ctx(Device::kCuda);
  ctx.handles_ = create_cuda_handles(device_index);
  return ctx;
#else
  (void)device_index;
  RECFORGE_CHECK(false, "device cuda requested but recforge was built without CUDA");
#endif
}

Context Context::create(Device device) {
  return device == Device::kCuda ? Context::cuda() : Context::cpu();
}

CUstream_st* Context::stream() const {
#if RECFORGE_WITH_CUDA
  if (handles_) return cuda_stream(*handles_);
#endif
  return nullptr;
}

void Context::synchronize() const {
#if RECFORGE_WITH_CUDA
  if (handles_) cuda_synchronize(*handles_);
#endif
}

}  // namespace recforge
