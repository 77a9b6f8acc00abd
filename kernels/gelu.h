// GELU (tanh approximation) over n contiguous elements; the math lives in kernels/math.h.
//
// Storage: the forward runs on A ∈ {float, double, bf16}; the backward on (Dinp, In, Dout) ∈
// {(T, T, T), (bf16, bf16, float)}: under the bf16 policy the MLP pre-activation and its GELU are
// bf16 (GEMM operands) while the gradient arriving from the next GEMM is fp32. bf16 elements are
// widened to float, the math is fp32 and the output is rounded once.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

template <typename Dinp, typename In, typename Dout>
inline constexpr bool kGeluBackwardTypes = (std::is_same_v<Dinp, In> && std::is_same_v<In, Dout>) ||
                                           (std::is_same_v<Dinp, bf16> &&
                                            std::is_same_v<In, bf16> &&
                                            std::is_same_v<Dout, float>);

namespace cpu {
// out[i] = gelu(inp[i]); out may alias inp.
template <typename A>
void gelu_forward(A* out, const A* inp, int64_t n);
// dinp[i] = gelu'(inp[i]) · dout[i]; dinp may alias dout when they have the same type.
template <typename Dinp, typename In, typename Dout>
void gelu_backward(Dinp* dinp, const In* inp, const Dout* dout, int64_t n);
}  // namespace cpu

namespace cuda {
// A ∈ {float, bf16}; (Dinp, In, Dout) ∈ {(float, float, float), (bf16, bf16, float)}.
template <typename A>
void gelu_forward(const Context& ctx, A* out, const A* inp, int64_t n);
template <typename Dinp, typename In, typename Dout>
void gelu_backward(const Context& ctx, Dinp* dinp, const In* inp, const Dout* dout, int64_t n);
}  // namespace cuda

template <typename A>
void gelu_forward(const Context& ctx, A* out, const A* inp, int64_t n) {
  static_assert(std::is_floating_point_v<A> || std::is_same_v<A, bf16>,
                "gelu_forward: float, double or bf16");
  dispatch<!std::is_same_v<A, double>>(
      ctx, "gelu_forward", [&](const auto& on) { cuda::gelu_forward(on, out, inp, n); },
      [&] { cpu::gelu_forward(out, inp, n); });
}

template <typename Dinp, typename In, typename Dout>
void gelu_backward(const Context& ctx, Dinp* dinp, const In* inp, const Dout* dout, int64_t n) {
  static_assert(kGeluBackwardTypes<Dinp, In, Dout>,
                "gelu_backward: (T, T, T) or (bf16, bf16, float)");
  dispatch<std::is_same_v<Dout, float>>(
      ctx, "gelu_backward", [&](const auto& on) { cuda::gelu_backward(on, dinp, inp, dout, n); },
      [&] { cpu::gelu_backward(dinp, inp, dout, n); });
}

}  // namespace recforge
