// GELU with bf16 storage on the GPU: the forward on bf16 and the backward as (dinp, inp, dout) =
// (bf16, bf16, fp32), against the CPU backend's bf16 path on the same inputs and against the fp32
// CPU kernel on the unrounded inputs.
#include "tests/kernels/gelu_gpu_fixture.h"

namespace recforge::testing {
namespace {

using GeluBf16GpuTest = GeluGpuFixture<bf16>;

constexpr int64_t kSize = (1 << 20) + 3;  // also exercises the grid-stride loop's reuse of threads

TEST_F(GeluBf16GpuTest, ForwardMatchesCpu) {
  const std::vector<float> inp_host = random_floats(kSize, 1, -6.0f, 6.0f);
  const Mirrored<bf16> out = forward(inp_host);
  expect_close("gelu.out bf16", out, 1e-2);

  std::vector<float> fp32_out(kSize);
  gelu_forward(cpu_, fp32_out.data(), inp_host.data(), kSize);
  expect_close("gelu.out bf16 vs fp32 cpu", out.cuda.download(), fp32_out, 1e-2);
}

TEST_F(GeluBf16GpuTest, BackwardWithFp32GradientMatchesCpu) {
  const std::vector<float> inp_host = random_floats(kSize, 2, -6.0f, 6.0f);
  auto dout = mirrored(random_floats(kSize, 3));
  const Mirrored<bf16> dinp = backward(inp_host, dout);
  expect_close("gelu.dinp bf16", dinp, 1e-2);

  std::vector<float> fp32_dinp(kSize);
  gelu_backward(cpu_, fp32_dinp.data(), inp_host.data(), dout.cpu.data(), kSize);
  expect_close("gelu.dinp bf16 vs fp32 cpu", dinp.cuda.download(), fp32_dinp, 1e-2);
}

TEST_F(GeluBf16GpuTest, InPlaceForward) {
  expect_close("gelu.out bf16 in place", forward_in_place(random_floats(1000, 4, -3.0f, 3.0f)),
               1e-2);
}

}  // namespace
}  // namespace recforge::testing
