// The layer-normalization GPU tests' shapes, inputs and forward checks, for an output stored as
// Out (float, or bf16 for the mixed-precision path); mean, rstd and the residual stay fp32.
#pragma once

#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/layernorm.h"
#include "tests/support/backends.h"

namespace recforge::testing {

struct LayerNormGpuShape {
  int N, C;
};

inline void PrintTo(const LayerNormGpuShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C;
}

inline const std::vector<LayerNormGpuShape> kLayerNormGpuShapes = {
    {1, 64}, {1000, 256}, {777, 100}, {300, 3072}};

// Test names: N1_C64, ...
inline std::string layernorm_shape_name(const ::testing::TestParamInfo<LayerNormGpuShape>& info) {
  return cat("N", info.param.N, "_C", info.param.C);
}

template <typename Out>
class LayerNormGpuFixture : public GpuTestWithParam<LayerNormGpuShape> {
 protected:
  int N = GetParam().N, C = GetParam().C;
  size_t size = static_cast<size_t>(N) * C;
  std::string label = cat(std::is_same_v<Out, bf16> ? " bf16" : "", " N=", N, " C=", C);
  // Host inputs only: device buffers are made in the test bodies, after SetUp's skip check.
  // Inputs with a large mean, to catch a one-pass variance.
  std::vector<float> inp_host = random_floats(size, 1, 3.0f, 5.0f);
  std::vector<float> weight_host = random_floats(C, 2, 0.5f, 1.5f);
  std::vector<float> bias_host = random_floats(C, 3);
  std::vector<float> a_host = random_floats(size, 4);  // residual = a + b
  std::vector<float> b_host = random_floats(size, 5);

  // layernorm_forward on both backends into poisoned outputs: out within `out_tolerance` of the
  // CPU's, mean and rstd within fp32 rounding. Returns out.
  Mirrored<Out> expect_forward_matches_cpu(double out_tolerance) {
    auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
    Mirrored<Out> out(size);
    Mirrored<float> mean(N), rstd(N);
    out.poison();
    mean.poison();
    rstd.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      layernorm_forward(*ctx, out.on(*ctx), mean.on(*ctx), rstd.on(*ctx), inp.on(*ctx),
                        weight.on(*ctx), bias.on(*ctx), N, C);
    }
    expect_close("layernorm.out" + label, out, out_tolerance);
    expect_close("layernorm.mean" + label, mean, 1e-6);
    expect_close("layernorm.rstd" + label, rstd, 1e-5);
    return out;
  }

  // residual_layernorm_forward likewise: the fp32 residual and statistics, and out within
  // `out_tolerance`. Returns out.
  Mirrored<Out> expect_residual_forward_matches_cpu(double out_tolerance) {
    auto weight = mirrored(weight_host), bias = mirrored(bias_host);
    auto a = mirrored(a_host), b = mirrored(b_host);
    Mirrored<Out> out(size);
    Mirrored<float> residual(size), mean(N), rstd(N);
    out.poison();
    for (auto* m : {&residual, &mean, &rstd}) m->poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      residual_layernorm_forward(*ctx, residual.on(*ctx), out.on(*ctx), mean.on(*ctx),
                                 rstd.on(*ctx), a.on(*ctx), b.on(*ctx), weight.on(*ctx),
                                 bias.on(*ctx), N, C);
    }
    expect_close("layernorm.residual" + label, residual, 1e-7);
    expect_close("layernorm.residual_out" + label, out, out_tolerance);
    expect_close("layernorm.residual_mean" + label, mean, 1e-5);
    expect_close("layernorm.residual_rstd" + label, rstd, 1e-5);
    return out;
  }
};

}  // namespace recforge::testing
