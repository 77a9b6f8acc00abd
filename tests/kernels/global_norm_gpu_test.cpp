// Global norm on the GPU: equal to the CPU backend's up to summation order, and bitwise
// reproducible from run to run; scale against the CPU backend.
#include "kernels/global_norm.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using GlobalNormGpuTest = GpuTest;

constexpr int64_t kSize = 3'000'017;

TEST_F(GlobalNormGpuTest, SumOfSquaresMatchesCpuAndIsDeterministic) {
  auto grads = mirrored(random_floats(kSize, 1));
  double cpu = sum_of_squares(cpu_, grads.cpu.data(), kSize);
  double gpu = sum_of_squares(cuda_, grads.cuda.data(), kSize);
  double error = std::abs(gpu - cpu) / cpu;
  std::cout << "[ rel_err ] global_norm.sum_of_squares: " << error << std::endl;
  EXPECT_LT(error, 1e-12);
  for (int run = 0; run < 3; ++run) {
    EXPECT_EQ(sum_of_squares(cuda_, grads.cuda.data(), kSize), gpu);  // bitwise
  }
  float norm = global_norm(cuda_, grads.cuda.data(), kSize);
  EXPECT_FLOAT_EQ(norm, global_norm(cpu_, grads.cpu.data(), kSize));
}

TEST_F(GlobalNormGpuTest, SmallAndEmptyBuffers) {
  auto grads = mirrored(std::vector<float>{3.0f, 4.0f});
  EXPECT_EQ(global_norm(cuda_, grads.cuda.data(), 2), 5.0f);
  EXPECT_EQ(sum_of_squares(cuda_, grads.cuda.data(), 0), 0.0);
}

TEST_F(GlobalNormGpuTest, ScaleAndClipMatchCpu) {
  auto grads = mirrored(random_floats(kSize, 2));
  float cpu_norm = 0.0f, gpu_norm = 0.0f;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    float norm = clip_gradients(*ctx, grads.on(*ctx), kSize, 1.0f);
    (ctx->on_cuda() ? gpu_norm : cpu_norm) = norm;
  }
  EXPECT_FLOAT_EQ(gpu_norm, cpu_norm);
  expect_close("global_norm.clipped", grads, 1e-6);
}

}  // namespace
}  // namespace recforge::testing
