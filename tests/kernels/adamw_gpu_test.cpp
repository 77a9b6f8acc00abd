// AdamW on the GPU against the CPU backend over several steps, with and without weight decay.
#include "kernels/adamw.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using AdamWGpuTest = GpuTest;

TEST_F(AdamWGpuTest, SeveralStepsMatchCpu) {
  constexpr int64_t kSize = 300'001, kDecayed = 200'000;
  const AdamWConfig config{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
  auto params = mirrored(random_floats(kSize, 1));
  auto m = mirrored(std::vector<float>(kSize, 0.0f));
  auto v = mirrored(std::vector<float>(kSize, 0.0f));
  for (int step = 1; step <= 5; ++step) {
    auto grads = mirrored(random_floats(kSize, 100 + step));
    for (const Context* ctx : {&cpu_, &cuda_}) {
      adamw_update(*ctx, params.on(*ctx), grads.on(*ctx), m.on(*ctx), v.on(*ctx), kSize, kDecayed,
                   config, step, 0.5f);
    }
  }
  expect_close("adamw.params", params, 1e-5);
  expect_close("adamw.m", m, 1e-5);
  expect_close("adamw.v", v, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
