// GELU on both backends from the same inputs stored as T (float, or bf16 for the mixed-precision
// path; dout stays fp32): the runs the fp32 and bf16 GELU GPU tests compare.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/gelu.h"
#include "tests/support/backends.h"

namespace recforge::testing {

template <typename T>
class GeluGpuFixture : public GpuTest {
 protected:
  // out = gelu(inp) into a poisoned out, inp stored as T.
  Mirrored<T> forward(const std::vector<float>& inp_host) {
    const int64_t n = static_cast<int64_t>(inp_host.size());
    auto inp = mirrored(stored_as<T>(inp_host));
    Mirrored<T> out(n);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, out.on(*ctx), inp.on(*ctx), n);
    return out;
  }

  // dinp = gelu'(inp) · dout into a poisoned dinp, inp stored as T.
  Mirrored<T> backward(const std::vector<float>& inp_host, Mirrored<float>& dout) {
    const int64_t n = static_cast<int64_t>(inp_host.size());
    auto inp = mirrored(stored_as<T>(inp_host));
    Mirrored<T> dinp(n);
    dinp.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      gelu_backward(*ctx, dinp.on(*ctx), inp.on(*ctx), dout.on(*ctx), n);
    }
    return dinp;
  }

  // x = gelu(x) in place, x stored as T.
  Mirrored<T> forward_in_place(const std::vector<float>& x_host) {
    const int64_t n = static_cast<int64_t>(x_host.size());
    auto x = mirrored(stored_as<T>(x_host));
    for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, x.on(*ctx), x.on(*ctx), n);
    return x;
  }
};

}  // namespace recforge::testing
