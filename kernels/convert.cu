// fp32 ↔ bf16 conversion on the GPU: one grid-stride loop per direction over vectors of 8
// elements (16 bytes of bf16 as one uint4, 32 bytes of float as two float4), so every load and
// store is a 16-byte transaction. The per-element math is float_to_bf16 / bf16_to_float from
// kernels/bf16.h, shared with the CPU backend, so both give the same bits.
//
// The vector path needs both pointers 16-byte aligned; views that are not (a bf16 slice starting
// at an odd element, say) take the same loop with zero vectors, i.e. element by element. The
// n mod 8 elements after the last vector are converted one by one by the first threads.

#include "kernels/convert.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

constexpr int kVectorWidth = 8;  // elements per 16-byte bf16 vector

// Two bf16 in one 32-bit word, the lower-addressed element in the low half (little-endian).
__device__ __forceinline__ uint32_t pack(bf16 low, bf16 high) {
  return static_cast<uint32_t>(low.bits) | (static_cast<uint32_t>(high.bits) << 16);
}
__device__ __forceinline__ float low_half(uint32_t word) {
  return bf16_to_float(bf16{static_cast<uint16_t>(word & 0xFFFFu)});
}
__device__ __forceinline__ float high_half(uint32_t word) {
  return bf16_to_float(bf16{static_cast<uint16_t>(word >> 16)});
}

// dst[n] = float_to_bf16(src[n]): vectors × 8 elements as vectors, then the rest one by one.
__global__ void narrow_kernel(bf16* dst, const float* src, int64_t n, int64_t vectors) {
  const auto* src4 = reinterpret_cast<const float4*>(src);
  auto* dst8 = reinterpret_cast<uint4*>(dst);
  for (int64_t v = grid_stride_begin(); v < vectors; v += grid_stride_step()) {
    const float4 a = src4[2 * v], b = src4[2 * v + 1];
    dst8[v] = make_uint4(
        pack(float_to_bf16(a.x), float_to_bf16(a.y)), pack(float_to_bf16(a.z), float_to_bf16(a.w)),
        pack(float_to_bf16(b.x), float_to_bf16(b.y)), pack(float_to_bf16(b.z), float_to_bf16(b.w)));
  }
  for (int64_t i = vectors * kVectorWidth + grid_stride_begin(); i < n; i += grid_stride_step()) {
    dst[i] = float_to_bf16(src[i]);
  }
}

// dst[n] = bf16_to_float(src[n]), split like narrow_kernel.
__global__ void widen_kernel(float* dst, const bf16* src, int64_t n, int64_t vectors) {
  const auto* src8 = reinterpret_cast<const uint4*>(src);
  auto* dst4 = reinterpret_cast<float4*>(dst);
  for (int64_t v = grid_stride_begin(); v < vectors; v += grid_stride_step()) {
    const uint4 words = src8[v];
    dst4[2 * v] =
        make_float4(low_half(words.x), high_half(words.x), low_half(words.y), high_half(words.y));
    dst4[2 * v + 1] =
        make_float4(low_half(words.z), high_half(words.z), low_half(words.w), high_half(words.w));
  }
  for (int64_t i = vectors * kVectorWidth + grid_stride_begin(); i < n; i += grid_stride_step()) {
    dst[i] = bf16_to_float(src[i]);
  }
}

bool aligned_16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// The number of whole 8-element vectors to convert as vectors (0 when a pointer is unaligned).
int64_t vector_count(const void* dst, const void* src, int64_t n) {
  return aligned_16(dst) && aligned_16(src) ? n / kVectorWidth : 0;
}

}  // namespace

void convert(const Context& ctx, bf16* dst, const float* src, int64_t n) {
  if (n == 0) return;
  const int64_t vectors = vector_count(dst, src, n);
  narrow_kernel<<<grid_stride_blocks(ctx, vectors > 0 ? vectors : n), kElementwiseThreads, 0,
                  stream_of(ctx)>>>(dst, src, n, vectors);
  CUDA_CHECK_LAUNCH();
}

void convert(const Context& ctx, float* dst, const bf16* src, int64_t n) {
  if (n == 0) return;
  const int64_t vectors = vector_count(dst, src, n);
  widen_kernel<<<grid_stride_blocks(ctx, vectors > 0 ? vectors : n), kElementwiseThreads, 0,
                 stream_of(ctx)>>>(dst, src, n, vectors);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
