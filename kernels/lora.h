// Low-rank adapted dense layer (LoRA, Hu et al. 2021) over a packed batch of N rows:
//
//   out[N, OC] = inp[N, C] · W[OC, C]ᵀ + b[OC] + s · u · B[OC, r]ᵀ,   u[N, r] = drop(inp) · A[r,
//   C]ᵀ
//
// s is the adapter's scale (alpha / r, or alpha / √r with rsLoRA; the caller passes it), drop() the
// counter-based inverted dropout of kernels/dropout.h on the adapter's input only (element i of
// inp is element n·C + c of the mask stream). The low-rank term is accumulated into the base
// GEMM's output (a second GEMM with beta = 1): no [N, OC] temporary. u is saved for the backward.
//
// Backward, with W and b frozen (no dW, no db; the caller adds matmul_backward for them when the
// base trains):
//   dB[OC, r] += s · doutᵀ · u
//   du[N, r]   = s · dout · B                      (scratch)
//   dA[r, C]  += duᵀ · drop(inp)                   (the mask regenerated from the same params)
//   dinp[N, C] = dout · W + drop'(du · A)          (overwritten; drop' applies the same mask and
//                                                   1 / (1 − p) scale)
//
// `dropped` is an [N, C] scratch holding drop(inp) (and, in the backward, du · A before its mask);
// it is only touched when dropout.p > 0 and may be null otherwise. With B = 0 the output is the
// base matmul_forward's, bit for bit.
//
// The CPU backend splits rows (and, for the weight gradients, their output rows / columns) across
// threads with a single-threaded BLAS per slice, so reductions have a fixed order; the CUDA
// backend runs cuBLASLt GEMMs (fp32) and one elementwise kernel for the masked dinp term.
#pragma once

#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"
#include "kernels/dropout.h"

namespace recforge {

// The adapter of one layer: A [r, C], B [OC, r] on the kernel's device.
template <typename T>
struct LoraWeights {
  const T* a = nullptr;
  const T* b = nullptr;
  int rank = 0;
  float scale = 0.0f;     // s
  DropoutParams dropout;  // on the adapter's input; p = 0 for none
};

namespace cpu {
template <typename T>
void lora_forward(T* out, T* u, T* dropped, const T* inp, const T* weight, const T* bias,
                  const LoraWeights<T>& lora, int N, int C, int OC);
template <typename T>
void lora_backward(T* dinp, T* dlora_a, T* dlora_b, T* du, T* dropped, const T* dout, const T* inp,
                   const T* u, const T* weight, const LoraWeights<T>& lora, int N, int C, int OC);
}  // namespace cpu

namespace cuda {
void lora_forward(const Context& ctx, float* out, float* u, float* dropped, const float* inp,
                  const float* weight, const float* bias, const LoraWeights<float>& lora, int N,
                  int C, int OC);
void lora_backward(const Context& ctx, float* dinp, float* dlora_a, float* dlora_b, float* du,
                   float* dropped, const float* dout, const float* inp, const float* u,
                   const float* weight, const LoraWeights<float>& lora, int N, int C, int OC);
}  // namespace cuda

template <typename T>
void validate_lora(const char* op, const LoraWeights<T>& lora, const T* dropped, int N, int C,
                   int OC) {
  RECFORGE_CHECK(N >= 0 && C > 0 && OC > 0 && lora.rank > 0, op, ": bad shape N=", N, " C=", C,
                 " OC=", OC, " r=", lora.rank);
  RECFORGE_CHECK(lora.a != nullptr && lora.b != nullptr, op, ": the adapter's A and B are null");
  validate_dropout(lora.dropout);
  RECFORGE_CHECK(lora.dropout.p == 0.0f || dropped != nullptr, op,
                 ": adapter dropout needs the [N, C] `dropped` scratch");
}

// out [N, OC] (overwritten), u [N, r] (overwritten), dropped [N, C] scratch.
template <typename T>
void lora_forward(const Context& ctx, T* out, T* u, T* dropped, const T* inp, const T* weight,
                  const T* bias, const LoraWeights<T>& lora, int N, int C, int OC) {
  validate_lora("lora_forward", lora, dropped, N, C, OC);
  dispatch<std::is_same_v<T, float>>(
      ctx, "lora_forward",
      [&](const auto& on) {
        cuda::lora_forward(on, out, u, dropped, inp, weight, bias, lora, N, C, OC);
      },
      [&] { cpu::lora_forward(out, u, dropped, inp, weight, bias, lora, N, C, OC); });
}

// dinp [N, C] (overwritten), dlora_a [r, C] and dlora_b [OC, r] (accumulated), du [N, r] and
// dropped [N, C] scratch; dout [N, OC], u [N, r] from the forward.
template <typename T>
void lora_backward(const Context& ctx, T* dinp, T* dlora_a, T* dlora_b, T* du, T* dropped,
                   const T* dout, const T* inp, const T* u, const T* weight,
                   const LoraWeights<T>& lora, int N, int C, int OC) {
  validate_lora("lora_backward", lora, dropped, N, C, OC);
  RECFORGE_CHECK(dinp && dlora_a && dlora_b && du,
                 "lora_backward: dinp, dA, dB and du are required");
  dispatch<std::is_same_v<T, float>>(
      ctx, "lora_backward",
      [&](const auto& on) {
        cuda::lora_backward(on, dinp, dlora_a, dlora_b, du, dropped, dout, inp, u, weight, lora, N,
                            C, OC);
      },
      [&] {
        cpu::lora_backward(dinp, dlora_a, dlora_b, du, dropped, dout, inp, u, weight, lora, N, C,
                           OC);
      });
}

}  // namespace recforge
