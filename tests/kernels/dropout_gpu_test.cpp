// Dropout on the GPU: the Philox mask, hence the output, equals the CPU backend's bit for bit.
#include "kernels/dropout.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using DropoutGpuTest = GpuTest;

constexpr int64_t kSize = (1 << 20) + 3;  // not a multiple of the 4 numbers per Philox call

TEST_F(DropoutGpuTest, ForwardMaskIsBitwiseTheCpuMask) {
  const DropoutParams params{0.25f, 0x1234567890ABCDEFull, 7};
  auto inp = mirrored(random_floats(kSize, 1));
  Mirrored<float> out(kSize);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dropout_forward(*ctx, out.on(*ctx), inp.on(*ctx), kSize, params);
  }
  std::vector<float> gpu = out.cuda.download(), cpu = out.cpu.download();
  EXPECT_TRUE(bitwise_equal(gpu, cpu));
  int64_t dropped = 0;
  for (float v : cpu) dropped += v == 0.0f;
  EXPECT_NEAR(static_cast<double>(dropped) / kSize, params.p, 0.01);
  expect_close("dropout.out", out, 1e-7);
}

TEST_F(DropoutGpuTest, BackwardInPlaceIsBitwiseTheCpuGradient) {
  const DropoutParams params{0.5f, 42, 3};
  auto grad = mirrored(random_floats(kSize, 2));
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dropout_backward(*ctx, grad.on(*ctx), grad.on(*ctx), kSize, params);
  }
  EXPECT_TRUE(bitwise_equal(grad.cuda.download(), grad.cpu.download()));
  expect_close("dropout.dinp", grad, 1e-7);
}

TEST_F(DropoutGpuTest, ZeroProbabilityIsIdentity) {
  auto inp = mirrored(random_floats(4096, 3));
  Mirrored<float> out(4096);
  out.poison();
  dropout_forward(cuda_, out.cuda.data(), inp.cuda.data(), 4096, DropoutParams{0.0f, 1, 1});
  EXPECT_TRUE(bitwise_equal(out.cuda.download(), inp.cpu.download()));
}

}  // namespace
}  // namespace recforge::testing
