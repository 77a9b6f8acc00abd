// GELU forward and backward on the GPU against the CPU backend.
#include "tests/kernels/gelu_gpu_fixture.h"

namespace recforge::testing {
namespace {

using GeluGpuTest = GeluGpuFixture<float>;

constexpr int64_t kSize = 1 << 20;  // also exercises the grid-stride loop's reuse of threads

TEST_F(GeluGpuTest, ForwardMatchesCpu) {
  expect_close("gelu.out", forward(random_floats(kSize, 1, -6.0f, 6.0f)), 1e-5);
}

TEST_F(GeluGpuTest, BackwardMatchesCpu) {
  const std::vector<float> inp = random_floats(kSize, 2, -6.0f, 6.0f);
  auto dout = mirrored(random_floats(kSize, 3));
  expect_close("gelu.dinp", backward(inp, dout), 1e-5);
}

TEST_F(GeluGpuTest, InPlaceForward) {
  expect_close("gelu.out in place", forward_in_place(random_floats(1000, 4, -3.0f, 3.0f)), 1e-5);
}

}  // namespace
}  // namespace recforge::testing
