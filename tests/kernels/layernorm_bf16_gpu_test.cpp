// Layer normalization with a bf16 output on the GPU: the forward and the fused residual forward
// against the CPU backend's bf16 path on the same inputs, and against the fp32 CPU kernel.
#include "kernels/layernorm.h"
#include "tests/kernels/layernorm_gpu_fixture.h"

namespace recforge::testing {
namespace {

using LayerNormBf16GpuTest = LayerNormGpuFixture<bf16>;

TEST_P(LayerNormBf16GpuTest, ForwardMatchesCpu) {
  const Mirrored<bf16> out = expect_forward_matches_cpu(1e-2);
  std::vector<float> fp32_out(size), fp32_mean(N), fp32_rstd(N);
  layernorm_forward(cpu_, fp32_out.data(), fp32_mean.data(), fp32_rstd.data(), inp_host.data(),
                    weight_host.data(), bias_host.data(), N, C);
  expect_close("layernorm.out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out, 1e-2);
}

TEST_P(LayerNormBf16GpuTest, ResidualForwardMatchesCpu) {
  const Mirrored<bf16> out = expect_residual_forward_matches_cpu(1e-2);
  std::vector<float> fp32_residual(size), fp32_out(size), fp32_mean(N), fp32_rstd(N);
  residual_layernorm_forward(cpu_, fp32_residual.data(), fp32_out.data(), fp32_mean.data(),
                             fp32_rstd.data(), a_host.data(), b_host.data(), weight_host.data(),
                             bias_host.data(), N, C);
  expect_close("layernorm.residual_out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out,
               1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormBf16GpuTest, ::testing::ValuesIn(kLayerNormGpuShapes),
                         layernorm_shape_name);

}  // namespace
}  // namespace recforge::testing
