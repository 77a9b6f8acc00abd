// The one CPU/CUDA dispatch every op's entry point goes through (mlx's one interface per op, two
// implementations side by side): the CUDA implementation when the context is a CUDA one and it
// exists for the op's element types in this build, otherwise the CPU implementation after checking
// that the context is a CPU one (float64 on a CUDA context is an error naming the op).
//
//   dispatch<kCudaTypes>(ctx, "gelu_forward",
//                        [&](const auto& cuda_ctx) { cuda::gelu_forward(cuda_ctx, out, inp, n); },
//                        [&] { cpu::gelu_forward(out, inp, n); });
//
// The CUDA branch takes the context as a generic parameter: it is compiled only for the element
// types and builds where it can run, so it may name CUDA overloads that exist for no other type.
#pragma once

#include "kernels/context.h"

namespace recforge {

template <bool kCudaTypes = true, typename OnCuda, typename OnCpu>
decltype(auto) dispatch(const Context& ctx, const char* op, OnCuda&& on_cuda, OnCpu&& on_cpu) {
  if constexpr (kWithCuda && kCudaTypes) {
    if (ctx.on_cuda()) return on_cuda(ctx);
  }
  require_cpu(ctx, op);
  return on_cpu();
}

}  // namespace recforge
