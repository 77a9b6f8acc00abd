// Layer normalization on the GPU against the CPU backend: forward, fused residual forward, and the
// accumulating backward, whose dweight/dbias must also be bitwise reproducible.
#include "kernels/layernorm.h"
#include "tests/kernels/layernorm_gpu_fixture.h"

namespace recforge::testing {
namespace {

using LayerNormGpuTest = LayerNormGpuFixture<float>;

TEST_P(LayerNormGpuTest, ForwardMatchesCpu) { expect_forward_matches_cpu(1e-5); }

TEST_P(LayerNormGpuTest, ResidualForwardMatchesCpu) { expect_residual_forward_matches_cpu(1e-5); }

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

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormGpuTest, ::testing::ValuesIn(kLayerNormGpuShapes),
                         layernorm_shape_name);

}  // namespace
}  // namespace recforge::testing
