// The global gradient norm and gradient clipping: the CPU backend against torch.linalg.norm and
// clip_grad_norm_ (tests/reference/kernels.py), gradients below max_norm untouched; the CUDA
// backend equal to the CPU backend up to summation order and bitwise reproducible from run to run,
// and its clipping against the CPU backend's.
#include "kernels/global_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int64_t kReferenceSize = 100003;
constexpr int64_t kGpuSize = 3'000'017;

struct NormData {
  std::vector<float> grads;
  float max_norm = 0.0f;  // a quarter of the norm: clipping applies
  double norm = 0.0;
  std::vector<double> clipped;
};

NormData make_data() {
  std::mt19937_64 rng(fresh_seed());
  NormData d;
  d.grads = random_normal<float>(rng, kReferenceSize, 0.01);
  d.max_norm = static_cast<float>(0.25 * 0.01 * std::sqrt(double(kReferenceSize)));
  ReferenceCase ref("kernels.py", "global_norm");
  ref.put("grads", d.grads, {kReferenceSize});
  ref.put_scalar("max_norm", d.max_norm);
  ref.run();
  d.norm = ref.result("norm").at(0);
  d.clipped = ref.result("clipped");
  return d;
}

// The PyTorch reference is computed once and shared by the tests of the suite.
class GlobalNormReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<NormData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }
  static inline std::unique_ptr<NormData> data_;
};

// The comparisons below spell out std::vector<double> for the expected side: a braced list there
// would pick backends.h's all-float expect_close, which rounds the reference to float.
TEST_F(GlobalNormReference, GlobalNormMatchesTorchLinalgNorm) {
  float norm = global_norm(Context::cpu(), data_->grads.data(), kReferenceSize);
  expect_close("global_norm.norm", std::vector<float>{norm}, std::vector<double>{data_->norm},
               1e-6);
}

// cpu::sum_of_squares must split the buffer by the team it gets (omp_get_num_threads()), not by
// omp_get_max_threads(): with fewer threads than requested (an enclosing parallel region,
// OMP_THREAD_LIMIT, OMP_DYNAMIC) the missing threads' ranges would be left out of the norm.
TEST_F(GlobalNormReference, GlobalNormInsideParallelRegionMatchesTorch) {
  float norm = NAN;
  run_inside_parallel_region(
      [&] { norm = global_norm(Context::cpu(), data_->grads.data(), kReferenceSize); });
  expect_close("global_norm.norm (nested)", std::vector<float>{norm},
               std::vector<double>{data_->norm}, 1e-6);
}

TEST_F(GlobalNormReference, ClipScalesGradientsAboveMaxNormLikeClipGradNorm) {
  std::vector<float> grads = data_->grads;
  Context ctx = Context::cpu();
  float norm = clip_gradients(ctx, grads.data(), kReferenceSize, data_->max_norm);
  expect_close("global_norm.clip returned norm", std::vector<float>{norm},
               std::vector<double>{data_->norm}, 1e-6);
  expect_close("global_norm.clipped grads", grads, data_->clipped, 1e-6);
  // The factor max_norm / (norm + 1e-6) lands 1e-6 / norm (here ~3e-7) below max_norm.
  expect_close("global_norm.norm after clipping vs max_norm",
               std::vector<float>{global_norm(ctx, grads.data(), kReferenceSize)},
               std::vector<double>{data_->max_norm}, 1e-5);
}

TEST(GlobalNormClip, LeavesGradientsBelowMaxNormUntouched) {
  std::mt19937_64 rng(fresh_seed());
  std::vector<float> grads = random_normal<float>(rng, kReferenceSize), before = grads;
  Context ctx = Context::cpu();
  float norm = global_norm(ctx, grads.data(), kReferenceSize);
  for (float max_norm : {2.0f * norm, norm, 0.0f}) {  // within, at, and clipping disabled
    float returned = clip_gradients(ctx, grads.data(), kReferenceSize, max_norm);
    double changed = relative_error(grads, convert<double>(before));
    report_error(
        "global_norm.grads after clip to max_norm " + std::to_string(max_norm) + " vs before",
        changed);
    EXPECT_EQ(std::memcmp(grads.data(), before.data(), kReferenceSize * sizeof(float)), 0)
        << max_norm;
    EXPECT_EQ(returned, norm);
  }
}

using GlobalNormGpuTest = GpuTest;

TEST_F(GlobalNormGpuTest, SumOfSquaresMatchesCpuAndIsDeterministic) {
  auto grads = mirrored(random_floats(kGpuSize, 1));
  double cpu = sum_of_squares(cpu_, grads.cpu.data(), kGpuSize);
  double gpu = sum_of_squares(cuda_, grads.cuda.data(), kGpuSize);
  double error = std::abs(gpu - cpu) / cpu;
  std::cout << "[ rel_err ] global_norm.sum_of_squares: " << error << std::endl;
  EXPECT_LT(error, 1e-12);
  for (int run = 0; run < 3; ++run) {
    EXPECT_EQ(sum_of_squares(cuda_, grads.cuda.data(), kGpuSize), gpu);  // bitwise
  }
  float norm = global_norm(cuda_, grads.cuda.data(), kGpuSize);
  EXPECT_FLOAT_EQ(norm, global_norm(cpu_, grads.cpu.data(), kGpuSize));
}

TEST_F(GlobalNormGpuTest, SmallAndEmptyBuffers) {
  auto grads = mirrored(std::vector<float>{3.0f, 4.0f});
  EXPECT_EQ(global_norm(cuda_, grads.cuda.data(), 2), 5.0f);
  EXPECT_EQ(sum_of_squares(cuda_, grads.cuda.data(), 0), 0.0);
}

TEST_F(GlobalNormGpuTest, ScaleAndClipMatchCpu) {
  auto grads = mirrored(random_floats(kGpuSize, 2));
  float cpu_norm = 0.0f, gpu_norm = 0.0f;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    float norm = clip_gradients(*ctx, grads.on(*ctx), kGpuSize, 1.0f);
    (ctx->on_cuda() ? gpu_norm : cpu_norm) = norm;
  }
  EXPECT_FLOAT_EQ(gpu_norm, cpu_norm);
  expect_close("global_norm.clipped", grads, 1e-6);
}

}  // namespace
}  // namespace recforge::testing
