// Measurement primitives for `recforge bench kernels` (CUDA only; defined in gpu_timing.cu):
// CUDA-event timing with an L2 flush before every repetition, the device's measured ceilings
// (a large cuBLAS GEMM, a large device-to-device copy), random fills and free-memory queries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kernels/context.h"

namespace recforge {

struct GpuInfo {
  std::string name;
  size_t l2_bytes = 0;
};
GpuInfo gpu_info(const Context& ctx);

// Times `op` on ctx's stream: `warmup` untimed calls, then `repeats` calls each bracketed by a pair
// of CUDA events, each preceded by writing a buffer twice the L2 size so no input stays cached.
// Returns the median in milliseconds.
class GpuTimer {
 public:
  GpuTimer(const Context& ctx, int warmup, int repeats);
  ~GpuTimer();
  double median_ms(const std::function<void()>& op) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

enum class GemmPrecision { kFp32, kTf32, kBf16 };
const char* precision_name(GemmPrecision precision);
// TFLOP/s of a square n×n×n cublasGemmEx in `precision` (fp32 accumulation) on random inputs.
double gemm_peak_tflops(const Context& ctx, const GpuTimer& timer, GemmPrecision precision,
                        int n = 8192);
// GB/s (bytes read + bytes written) of a device-to-device copy of `bytes`.
double copy_peak_gbps(const Context& ctx, const GpuTimer& timer, size_t bytes = size_t{1} << 30);

// Fills n floats with uniform values in [lo, hi) from `seed` (never all zero when lo < hi).
void fill_uniform(const Context& ctx, float* data, size_t n, float lo, float hi, uint64_t seed);
// Fills n ints with uniform values in [0, bound).
void fill_indices(const Context& ctx, int32_t* data, size_t n, int32_t bound, uint64_t seed);
// Free device memory in bytes on ctx's device, after the stream is idle.
size_t free_device_bytes(const Context& ctx);

}  // namespace recforge
