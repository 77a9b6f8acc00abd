// Dense layer over a packed batch: out[N, OC] = inp[N, C] · weight[OC, C]ᵀ + bias[OC].
// The CPU backend splits the rows across threads and runs a single-threaded BLAS GEMM per slice;
// the CUDA backend calls cuBLASLt (bias fused as an epilogue).
//
// Storage types (bf16 mixed precision): every product accumulates in fp32. The operands are all one
// type T (float, double) or bf16 (`In`); a bf16 layer writes its output as float or bf16 (`Out`,
// the bias has the output's type) and its input gradient as float or bf16 (`Dinp`), while the
// weight and bias gradients stay fp32 and accumulate. On the CPU the bf16 operands are widened to
// float, the fp32 path runs, and bf16 outputs are rounded once.
#pragma once

#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

// (Out, In) ∈ {(T, T), (float, bf16), (bf16, bf16)}.
template <typename Out, typename In>
inline constexpr bool kMatmulForwardTypes = std::is_same_v<Out, In> ||
                                            (std::is_same_v<Out, float> &&
                                             std::is_same_v<In, bf16>);
// (Dinp, T, In) ∈ {(T, T, T), (float, float, bf16), (bf16, float, bf16)} with T float or double.
template <typename Dinp, typename T, typename In>
inline constexpr bool kMatmulBackwardTypes =
    (std::is_same_v<Dinp, T> && std::is_same_v<In, T> && !std::is_same_v<T, bf16>) ||
    (std::is_same_v<T, float> && std::is_same_v<In, bf16> &&
     (std::is_same_v<Dinp, float> || std::is_same_v<Dinp, bf16>));

namespace cpu {
// bias may be null.
template <typename Out, typename In>
void matmul_forward(Out* out, const In* inp, const In* weight, const Out* bias, int N, int C,
                    int OC);
// dinp[N, C] = dout · weight (overwritten); dweight[OC, C] += doutᵀ · inp; dbias[OC] += Σ_n dout.
// Any of dinp, dweight, dbias may be null to skip it (a frozen weight computes no dweight).
template <typename Dinp, typename T, typename In>
void matmul_backward(Dinp* dinp, T* dweight, T* dbias, const In* dout, const In* inp,
                     const In* weight, int N, int C, int OC);
}  // namespace cpu

namespace cuda {
// One overload per storage combination: (Out, In) ∈ {(float, float), (float, bf16), (bf16, bf16)}.
void matmul_forward(const Context& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int N, int C, int OC);
void matmul_forward(const Context& ctx, float* out, const bf16* inp, const bf16* weight,
                    const float* bias, int N, int C, int OC);
void matmul_forward(const Context& ctx, bf16* out, const bf16* inp, const bf16* weight,
                    const bf16* bias, int N, int C, int OC);
// (Dinp, In) ∈ {(float, float), (float, bf16), (bf16, bf16)}; dweight and dbias are fp32.
void matmul_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int N, int C,
                     int OC);
void matmul_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                     const bf16* dout, const bf16* inp, const bf16* weight, int N, int C, int OC);
void matmul_backward(const Context& ctx, bf16* dinp, float* dweight, float* dbias, const bf16* dout,
                     const bf16* inp, const bf16* weight, int N, int C, int OC);
}  // namespace cuda

inline void validate_matmul(const char* op, int N, int C, int OC) {
  RECFORGE_CHECK(N >= 0 && C > 0 && OC > 0, op, ": bad shape N=", N, " C=", C, " OC=", OC);
}

// The bias is not used to deduce Out, so a literal nullptr works.
template <typename Out, typename In>
void matmul_forward(const Context& ctx, Out* out, const In* inp, const In* weight,
                    const std::type_identity_t<Out>* bias, int N, int C, int OC) {
  static_assert(kMatmulForwardTypes<Out, In>, "matmul_forward: unsupported storage types");
  validate_matmul("matmul_forward", N, C, OC);
  dispatch<!std::is_same_v<In, double>>(
      ctx, "matmul_forward",
      [&](const auto& on) { cuda::matmul_forward(on, out, inp, weight, bias, N, C, OC); },
      [&] { cpu::matmul_forward(out, inp, weight, bias, N, C, OC); });
}

// T comes first so `matmul_backward<float>(ctx, dinp, nullptr, nullptr, ...)` works.
template <typename T, typename Dinp, typename In>
void matmul_backward(const Context& ctx, Dinp* dinp, T* dweight, T* dbias, const In* dout,
                     const In* inp, const In* weight, int N, int C, int OC) {
  static_assert(kMatmulBackwardTypes<Dinp, T, In>, "matmul_backward: unsupported storage types");
  validate_matmul("matmul_backward", N, C, OC);
  dispatch<std::is_same_v<T, float>>(
      ctx, "matmul_backward",
      [&](const auto& on) {
        cuda::matmul_backward(on, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
      },
      [&] { cpu::matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC); });
}

}  // namespace recforge
