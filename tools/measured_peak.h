// The device's measured GEMM ceilings, the denominator of MFU, taken in the benchmark's own process
// just before it times anything. On CUDA: square cuBLAS GEMMs in bf16, tf32 and fp32 (fp32
// accumulation; `gemm_peak_tflops` of tools/gpu_timing.h, the code `bench kernels` uses). On the
// CPU: the fp32 GEMM of the CPU backend (kernels/matmul.h, BLAS on every thread of the context),
// the median of host-clock repeats.
#pragma once

#include <string>

#include "kernels/context.h"
#include "model/config.h"

namespace recforge {

struct MeasuredPeaks {
  std::string device;  // the GPU's name, or the CPU's model name from /proc/cpuinfo
  std::string method;  // how they were measured, e.g. "cuBLAS 8192^3 GEMM"
  double fp32 = 0;     // TFLOP/s; 0 where not measured (the CPU measures fp32 only)
  double tf32 = 0;
  double bf16 = 0;

  // MFU's denominator: the device's fastest measured GEMM (bf16 on CUDA, fp32 on the CPU),
  // whatever precision the benchmarked run computes in.
  double reference() const { return bf16 > 0 ? bf16 : fp32; }
  const char* reference_precision() const { return bf16 > 0 ? "bf16" : "fp32"; }
  // The ceiling of the GEMMs a run of `precision` issues (fp32 runs use no TF32); 0 if unmeasured.
  double of(Precision precision) const { return precision == Precision::kBf16 ? bf16 : fp32; }
};

// Measures ctx's device with n×n×n GEMMs (n <= 0: 8192 on CUDA, 2048 on the CPU).
MeasuredPeaks measure_gemm_peaks(const Context& ctx, int n);

}  // namespace recforge
