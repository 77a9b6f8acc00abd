// GELU forward and backward on the GPU against the CPU backend.
#include "kernels/gelu.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
namespace {

using GeluGpuTest = GpuTest;

constexpr int64_t kSize = 1 << 20;  // also exercises the grid-stride loop's reuse of threads

TEST_F(GeluGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(random_floats(kSize, 1, -6.0f, 6.0f));
  Mirrored<float> out(kSize);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, out.on(*ctx), inp.on(*ctx), kSize);
  expect_close("gelu.out", out, 1e-5);
}

TEST_F(GeluGpuTest, BackwardMatchesCpu) {
  auto inp = mirrored(random_floats(kSize, 2, -6.0f, 6.0f));
  auto dout = mirrored(random_floats(kSize, 3));
  Mirrored<float> dinp(kSize);
  dinp.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    gelu_backward(*ctx, dinp.on(*ctx), inp.on(*ctx), dout.on(*ctx), kSize);
  }
  expect_close("gelu.dinp", dinp, 1e-5);
}

TEST_F(GeluGpuTest, InPlaceForward) {
  auto x = mirrored(random_floats(1000, 4, -3.0f, 3.0f));
  for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, x.on(*ctx), x.on(*ctx), 1000);
  expect_close("gelu.out in place", x, 1e-5);
}

}  // namespace
}  // namespace recforge::gpu_test
