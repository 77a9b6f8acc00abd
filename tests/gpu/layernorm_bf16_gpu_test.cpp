// Layer normalization with a bf16 output on the GPU: the forward and the fused residual forward
// against the CPU backend's bf16 path on the same inputs, and against the fp32 CPU kernel.
#include "kernels/layernorm.h"
#include "tests/gpu/bf16_gpu_support.h"

namespace recforge::gpu_test {
namespace {

struct LayerNormShape {
  int N, C;
};

void PrintTo(const LayerNormShape& s, std::ostream* os) { *os << "N=" << s.N << " C=" << s.C; }

class LayerNormBf16GpuTest : public GpuTestWithParam<LayerNormShape> {
 protected:
  int N = GetParam().N, C = GetParam().C;
  size_t size = static_cast<size_t>(N) * C;
  std::string label = cat(" bf16 N=", N, " C=", C);
  // Host inputs only: device buffers are made in the test bodies, after SetUp's skip check.
  // Inputs with a large mean, to catch a one-pass variance.
  std::vector<float> inp_host = random_floats(size, 1, 3.0f, 5.0f);
  std::vector<float> weight_host = random_floats(C, 2, 0.5f, 1.5f);
  std::vector<float> bias_host = random_floats(C, 3);
  std::vector<float> a_host = random_floats(size, 4);
  std::vector<float> b_host = random_floats(size, 5);
};

TEST_P(LayerNormBf16GpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<bf16> out(size);
  Mirrored<float> mean(N), rstd(N);
  out.poison();
  mean.poison();
  rstd.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_forward(*ctx, out.on(*ctx), mean.on(*ctx), rstd.on(*ctx), inp.on(*ctx),
                      weight.on(*ctx), bias.on(*ctx), N, C);
  }
  expect_close("layernorm.out" + label, out, 1e-2);
  expect_close("layernorm.mean" + label, mean, 1e-6);
  expect_close("layernorm.rstd" + label, rstd, 1e-5);

  std::vector<float> fp32_out(size), fp32_mean(N), fp32_rstd(N);
  layernorm_forward(cpu_, fp32_out.data(), fp32_mean.data(), fp32_rstd.data(), inp_host.data(),
                    weight_host.data(), bias_host.data(), N, C);
  expect_close("layernorm.out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out, 1e-2);
}

TEST_P(LayerNormBf16GpuTest, ResidualForwardMatchesCpu) {
  auto weight = mirrored(weight_host), bias = mirrored(bias_host);
  auto a = mirrored(a_host), b = mirrored(b_host);
  Mirrored<bf16> out(size);
  Mirrored<float> residual(size), mean(N), rstd(N);
  out.poison();
  for (auto* m : {&residual, &mean, &rstd}) m->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    residual_layernorm_forward(*ctx, residual.on(*ctx), out.on(*ctx), mean.on(*ctx), rstd.on(*ctx),
                               a.on(*ctx), b.on(*ctx), weight.on(*ctx), bias.on(*ctx), N, C);
  }
  expect_close("layernorm.residual" + label, residual, 1e-7);
  expect_close("layernorm.residual_out" + label, out, 1e-2);
  expect_close("layernorm.residual_mean" + label, mean, 1e-5);
  expect_close("layernorm.residual_rstd" + label, rstd, 1e-5);

  std::vector<float> fp32_residual(size), fp32_out(size), fp32_mean(N), fp32_rstd(N);
  residual_layernorm_forward(cpu_, fp32_residual.data(), fp32_out.data(), fp32_mean.data(),
                             fp32_rstd.data(), a_host.data(), b_host.data(), weight_host.data(),
                             bias_host.data(), N, C);
  expect_close("layernorm.residual_out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out,
               1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormBf16GpuTest,
                         ::testing::Values(LayerNormShape{1, 64}, LayerNormShape{1000, 256},
                                           LayerNormShape{777, 100}, LayerNormShape{300, 3072}),
                         [](const auto& info) {
                           return cat("N", info.param.N, "_C", info.param.C);
                         });

}  // namespace
}  // namespace recforge::gpu_test
