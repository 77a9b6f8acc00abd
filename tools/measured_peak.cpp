#include "tools/measured_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/matmul.h"
#include "tools/gpu_timing.h"

namespace recforge {
namespace {

constexpr int kCpuSize = 2048, kCpuRepeats = 5;

#if RECFORGE_WITH_CUDA
constexpr int kCudaSize = 8192, kCudaWarmup = 2, kCudaRepeats = 10;

MeasuredPeaks measure_cuda(const Context& ctx, int n) {
  GpuTimer timer(ctx, kCudaWarmup, kCudaRepeats);
  MeasuredPeaks peaks;
  peaks.device = gpu_info(ctx).name;
  peaks.method = "cuBLAS " + std::to_string(n) + "^3 GEMM";
  peaks.bf16 = gemm_peak_tflops(ctx, timer, GemmPrecision::kBf16, n);
  peaks.tf32 = gemm_peak_tflops(ctx, timer, GemmPrecision::kTf32, n);
  peaks.fp32 = gemm_peak_tflops(ctx, timer, GemmPrecision::kFp32, n);
  return peaks;
}
#endif

// The first "model name" of /proc/cpuinfo, or "cpu".
std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
  }
  return "cpu";
}

// out[n, n] = a[n, n] · b[n, n]ᵀ through the CPU backend's matmul: 2n³ FLOPs a call.
MeasuredPeaks measure_cpu(const Context& ctx, int n) {
  const size_t elements = size_t(n) * n;
  std::vector<float> host(elements);
  for (size_t i = 0; i < elements; ++i) host[i] = float(i % 251) / 251.0f - 0.5f;
  Buffer<float> a(Device::kCpu, host), b(Device::kCpu, host), out(Device::kCpu, elements);
  std::vector<double> seconds;
  for (int i = 0; i < 1 + kCpuRepeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    matmul_forward(ctx, out.data(), a.data(), b.data(), static_cast<const float*>(nullptr), n, n,
                   n);
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) seconds.push_back(elapsed);
  }
  std::sort(seconds.begin(), seconds.end());
  MeasuredPeaks peaks;
  peaks.device = cpu_model_name();
  peaks.method = "BLAS " + std::to_string(n) + "^3 GEMM, " + std::to_string(omp_get_max_threads()) +
                 " threads";
  peaks.fp32 = 2.0 * n * double(n) * n / (seconds[seconds.size() / 2] * 1e12);
  return peaks;
}

}  // namespace

MeasuredPeaks measure_gemm_peaks(const Context& ctx, int n) {
#if RECFORGE_WITH_CUDA
  if (ctx.on_cuda()) return measure_cuda(ctx, n > 0 ? n : kCudaSize);
#endif
  return measure_cpu(ctx, n > 0 ? n : kCpuSize);
}

}  // namespace recforge
