// Layer normalization on the GPU against the CPU backend: forward, fused residual forward, and the
// accumulating backward, whose dweight/dbias must also be bitwise reproducible.
#include "kernels/layernorm.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
namespace {

struct LayerNormShape {
  int N, C;
};

void PrintTo(const LayerNormShape& s, std::ostream* os) { *os << "N=" << s.N << " C=" << s.C; }

class LayerNormGpuTest : public GpuTestWithParam<LayerNormShape> {
 protected:
  int N = GetParam().N, C = GetParam().C;
  size_t size = static_cast<size_t>(N) * C;
  std::string label = cat(" N=", N, " C=", C);
  // Host inputs only: device buffers are made in the test bodies, after SetUp's skip check.
  // Inputs with a large mean, to catch a one-pass variance.
  std::vector<float> inp_host = random_floats(size, 1, 3.0f, 5.0f);
  std::vector<float> weight_host = random_floats(C, 2, 0.5f, 1.5f);
  std::vector<float> bias_host = random_floats(C, 3);
};

TEST_P(LayerNormGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<float> out(size), mean(N), rstd(N);
  for (auto* m : {&out, &mean, &rstd}) m->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_forward(*ctx, out.on(*ctx), mean.on(*ctx), rstd.on(*ctx), inp.on(*ctx),
                      weight.on(*ctx), bias.on(*ctx), N, C);
  }
  expect_close("layernorm.out" + label, out, 1e-5);
  expect_close("layernorm.mean" + label, mean, 1e-6);
  expect_close("layernorm.rstd" + label, rstd, 1e-5);
}

TEST_P(LayerNormGpuTest, ResidualForwardMatchesCpu) {
  auto weight = mirrored(weight_host), bias = mirrored(bias_host);
  auto a = mirrored(random_floats(size, 4));
  auto b = mirrored(random_floats(size, 5));
  Mirrored<float> residual(size), out(size), mean(N), rstd(N);
  for (auto* m : {&residual, &out, &mean, &rstd}) m->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    residual_layernorm_forward(*ctx, residual.on(*ctx), out.on(*ctx), mean.on(*ctx), rstd.on(*ctx),
                               a.on(*ctx), b.on(*ctx), weight.on(*ctx), bias.on(*ctx), N, C);
  }
  expect_close("layernorm.residual" + label, residual, 1e-7);
  expect_close("layernorm.residual_out" + label, out, 1e-5);
  expect_close("layernorm.residual_mean" + label, mean, 1e-5);
  expect_close("layernorm.residual_rstd" + label, rstd, 1e-5);
}

TEST_P(LayerNormGpuTest, BackwardAccumulatesLikeCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<float> mean(N), rstd(N);
  std::vector<float> scratch_out(size);
  cpu::layernorm_forward(scratch_out.data(), mean.cpu.data(), rstd.cpu.data(), inp.cpu.data(),
                         weight.cpu.data(), bias.cpu.data(), N, C);
  mean.cuda.upload(mean.cpu.download());
  rstd.cuda.upload(rstd.cpu.download());
  auto dout = mirrored(random_floats(size, 6));
  auto dinp = mirrored(random_floats(size, 7));  // accumulated into
  auto dweight = mirrored(random_floats(C, 8));
  auto dbias = mirrored(random_floats(C, 9));
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_backward(*ctx, dinp.on(*ctx), dweight.on(*ctx), dbias.on(*ctx), dout.on(*ctx),
                       inp.on(*ctx), weight.on(*ctx), mean.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("layernorm.dinp" + label, dinp, 1e-5);
  expect_close("layernorm.dweight" + label, dweight, 1e-5);
  expect_close("layernorm.dbias" + label, dbias, 1e-5);

  // Frozen norm: null dweight and dbias, dinp still accumulates.
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_backward(*ctx, dinp.on(*ctx), static_cast<float*>(nullptr),
                       static_cast<float*>(nullptr), dout.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                       mean.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("layernorm.dinp (frozen)" + label, dinp, 1e-5);
}

TEST_P(LayerNormGpuTest, BackwardWeightGradientIsBitwiseDeterministic) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<float> mean(N), rstd(N), out(size);
  layernorm_forward(cuda_, out.cuda.data(), mean.cuda.data(), rstd.cuda.data(), inp.cuda.data(),
                    weight.cuda.data(), bias.cuda.data(), N, C);
  auto dout = mirrored(random_floats(size, 10));
  std::vector<float> first_dweight, first_dbias;
  for (int run = 0; run < 3; ++run) {
    Buffer<float> dinp(Device::kCuda, size), dweight(Device::kCuda, C), dbias(Device::kCuda, C);
    dinp.zero(cuda_);
    dweight.zero(cuda_);
    dbias.zero(cuda_);
    layernorm_backward(cuda_, dinp.data(), dweight.data(), dbias.data(), dout.cuda.data(),
                       inp.cuda.data(), weight.cuda.data(), mean.cuda.data(), rstd.cuda.data(), N,
                       C);
    if (run == 0) {
      first_dweight = dweight.download();
      first_dbias = dbias.download();
    } else {
      EXPECT_TRUE(bitwise_equal(dweight.download(), first_dweight));
      EXPECT_TRUE(bitwise_equal(dbias.download(), first_dbias));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormGpuTest,
                         ::testing::Values(LayerNormShape{1, 64}, LayerNormShape{1000, 256},
                                           LayerNormShape{777, 100}, LayerNormShape{300, 3072}),
                         [](const auto& info) {
                           return cat("N", info.param.N, "_C", info.param.C);
                         });

}  // namespace
}  // namespace recforge::gpu_test
