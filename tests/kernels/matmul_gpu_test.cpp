// Dense layer on the GPU (cuBLASLt, fp32) against the CPU backend (OpenBLAS): forward with and
// without bias, backward with every combination of null gradients, and the N = 0 edge.
#include "kernels/matmul.h"
#include "tests/kernels/matmul_gpu_fixture.h"

namespace recforge::testing {
namespace {

using MatmulGpuTest = MatmulGpuFixture;

TEST_P(MatmulGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  for (bool with_bias : {true, false}) {
    Mirrored<float> out(static_cast<size_t>(N) * OC);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_forward(*ctx, out.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                     with_bias ? bias.on(*ctx) : static_cast<float*>(nullptr), N, C, OC);
    }
    expect_close(std::string("matmul.out ") + (with_bias ? "bias" : "no bias") + label, out, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BackwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), dout = mirrored(dout_host);
  // Bit i of `mask` requests gradient i (dinp, dweight, dbias).
  for (int mask = 0; mask < 8; ++mask) {
    Mirrored<float> dinp(static_cast<size_t>(N) * C);
    auto dweight = mirrored(dweight0_host);  // accumulated into
    auto dbias = mirrored(dbias0_host);
    dinp.poison();  // overwritten
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_backward(*ctx, mask & 1 ? dinp.on(*ctx) : nullptr,
                      mask & 2 ? dweight.on(*ctx) : nullptr, mask & 4 ? dbias.on(*ctx) : nullptr,
                      dout.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, OC);
    }
    const std::string which = cat(" mask=", mask, label);
    if (mask & 1) expect_close("matmul.dinp" + which, dinp, 1e-5);
    expect_close("matmul.dweight" + which, dweight, 1e-5);  // untouched when not requested
    expect_close("matmul.dbias" + which, dbias, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BiasGradientIsBitwiseDeterministic) {
  auto dout = mirrored(dout_host), inp = mirrored(inp_host), weight = mirrored(weight_host);
  expect_bias_gradient_deterministic([&](float* dbias) {
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias,
                    dout.cuda.data(), inp.cuda.data(), weight.cuda.data(), N, C, OC);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulGpuTest, ::testing::ValuesIn(kMatmulShapes),
                         matmul_shape_name);

using MatmulEdgeGpuTest = MatmulEdgeGpuFixture;

TEST_F(MatmulEdgeGpuTest, EmptyBatchDoesNothing) {
  auto weight = mirrored(random_floats(32 * 16, 1));
  auto dweight = mirrored(random_floats(32 * 16, 2));
  auto dbias = mirrored(random_floats(32, 3));
  std::vector<float> dweight_before = dweight.cuda.download(), dbias_before = dbias.cuda.download();
  float* const none = nullptr;
  matmul_forward(cuda_, none, none, weight.cuda.data(), none, 0, 16, 32);
  matmul_backward(cuda_, none, dweight.cuda.data(), dbias.cuda.data(), none, none,
                  weight.cuda.data(), 0, 16, 32);
  EXPECT_TRUE(bitwise_equal(dweight.cuda.download(), dweight_before));
  EXPECT_TRUE(bitwise_equal(dbias.cuda.download(), dbias_before));
}

TEST_F(MatmulEdgeGpuTest, UnalignedViewsMatchCpu) {
  // Operands starting one float into their buffers (4-byte alignment).
  expect_unaligned_views_close<float>("matmul.out unaligned", 1e-5);
}

}  // namespace
}  // namespace recforge::testing
