#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/cuda_common.cuh"
#include "tools/gpu_timing.h"

namespace recforge {

GpuInfo gpu_info(const Context& ctx) {
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx.handles()->device));
  return {prop.name, static_cast<size_t>(prop.l2CacheSize)};
}

struct GpuTimer::State {
  const Context* ctx;
  int warmup;
  int repeats;
  Buffer<char> flush;
};

GpuTimer::GpuTimer(const Context& ctx, int warmup, int repeats)
    : state_(new State{&ctx, warmup, repeats,
                       Buffer<char>(ctx.device(), 2 * gpu_info(ctx).l2_bytes)}) {}

GpuTimer::~GpuTimer() = default;

double GpuTimer::median_ms(const std::function<void()>& op) const {
  cudaStream_t stream = state_->ctx->stream();
  for (int i = 0; i < state_->warmup; ++i) op();
  std::vector<cudaEvent_t> events(2 * state_->repeats);
  for (cudaEvent_t& event : events) CUDA_CHECK(cudaEventCreate(&event));
  for (int i = 0; i < state_->repeats; ++i) {
    CUDA_CHECK(cudaMemsetAsync(state_->flush.data(), i & 0xff, state_->flush.bytes(), stream));
    CUDA_CHECK(cudaEventRecord(events[2 * i], stream));
    op();
    CUDA_CHECK(cudaEventRecord(events[2 * i + 1], stream));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaGetLastError());
  std::vector<double> times(state_->repeats);
  for (int i = 0; i < state_->repeats; ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, events[2 * i], events[2 * i + 1]));
    times[i] = ms;
  }
  for (cudaEvent_t event : events) CUDA_CHECK(cudaEventDestroy(event));
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

const char* precision_name(GemmPrecision precision) {
  switch (precision) {
    case GemmPrecision::kFp32:
      return "fp32";
    case GemmPrecision::kTf32:
      return "tf32";
    case GemmPrecision::kBf16:
      return "bf16";
  }
  return "?";
}

namespace {

// A 64-bit hash (splitmix finalizer); element i of a fill draws from mix64(seed·φ + i).
__device__ uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

__global__ void fill_uniform_kernel(float* data, size_t n, float lo, float hi, uint64_t seed) {
  size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  float u = (mix64(seed * 0x9e3779b97f4a7c15ull + i) >> 40) * (1.0f / 16777216.0f);
  data[i] = lo + (hi - lo) * u;
}

__global__ void fill_indices_kernel(int32_t* data, size_t n, int32_t bound, uint64_t seed) {
  size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
  if (i < n) data[i] = static_cast<int32_t>(mix64(seed * 0x9e3779b97f4a7c15ull + i) % bound);
}

__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* inp, size_t n) {
  size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(inp[i]);
}

constexpr int kFillBlock = 256;

}  // namespace

void fill_uniform(const Context& ctx, float* data, size_t n, float lo, float hi, uint64_t seed) {
  if (n == 0) return;
  fill_uniform_kernel<<<cuda::ceil_div(n, kFillBlock), kFillBlock, 0, ctx.stream()>>>(data, n, lo,
                                                                                      hi, seed);
  CUDA_CHECK_LAUNCH();
}

void fill_indices(const Context& ctx, int32_t* data, size_t n, int32_t bound, uint64_t seed) {
  if (n == 0) return;
  fill_indices_kernel<<<cuda::ceil_div(n, kFillBlock), kFillBlock, 0, ctx.stream()>>>(data, n,
                                                                                      bound, seed);
  CUDA_CHECK_LAUNCH();
}

size_t free_device_bytes(const Context& ctx) {
  ctx.synchronize();
  size_t free = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

// C[n, n] = A[n, n] · B[n, n] (column-major, no transposes): 2n³ FLOPs per call.
double gemm_peak_tflops(const Context& ctx, const GpuTimer& timer, GemmPrecision precision, int n) {
  size_t elements = size_t(n) * n;
  Buffer<float> a(ctx.device(), elements), b(ctx.device(), elements), c(ctx.device(), elements);
  fill_uniform(ctx, a.data(), elements, -1, 1, 1);
  fill_uniform(ctx, b.data(), elements, -1, 1, 2);
  Buffer<__nv_bfloat16> a16, b16, c16;
  const void* pa = a.data();
  const void* pb = b.data();
  void* pc = c.data();
  cudaDataType type = CUDA_R_32F;
  if (precision == GemmPrecision::kBf16) {
    a16 = Buffer<__nv_bfloat16>(ctx.device(), elements);
    b16 = Buffer<__nv_bfloat16>(ctx.device(), elements);
    c16 = Buffer<__nv_bfloat16>(ctx.device(), elements);
    unsigned int grid = cuda::ceil_div(elements, kFillBlock);
    to_bf16_kernel<<<grid, kFillBlock, 0, ctx.stream()>>>(a16.data(), a.data(), elements);
    to_bf16_kernel<<<grid, kFillBlock, 0, ctx.stream()>>>(b16.data(), b.data(), elements);
    CUDA_CHECK_LAUNCH();
    pa = a16.data();
    pb = b16.data();
    pc = c16.data();
    type = CUDA_R_16BF;
  }
  cublasComputeType_t compute =
      precision == GemmPrecision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  CUBLAS_CHECK(cublasSetStream(handle, ctx.stream()));
  const float alpha = 1.0f, beta = 0.0f;
  double ms = timer.median_ms([&] {
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, pa, type, n, pb,
                              type, n, &beta, pc, type, n, compute, CUBLAS_GEMM_DEFAULT));
  });
  CUBLAS_CHECK(cublasDestroy(handle));
  return 2.0 * n * double(n) * n / (ms * 1e9);
}

double copy_peak_gbps(const Context& ctx, const GpuTimer& timer, size_t bytes) {
  Buffer<char> src(ctx.device(), bytes), dst(ctx.device(), bytes);
  fill_uniform(ctx, reinterpret_cast<float*>(src.data()), bytes / sizeof(float), -1, 1, 3);
  double ms = timer.median_ms([&] {
    CUDA_CHECK(
        cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, ctx.stream()));
  });
  return 2.0 * bytes / (ms * 1e6);
}

}  // namespace recforge
