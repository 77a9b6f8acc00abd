// y += x: the CPU backend against PyTorch's sum (tests/reference/kernels.py) exactly, in float
// (the fp32 sum) and double; the CUDA backend against the CPU backend, bit for bit.
#include "kernels/add.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int64_t kSize = 100003;

struct AddCase {
  std::vector<float> y0, x;
  std::vector<double> sum32, sum64;
};

std::vector<AddCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  AddCase c{random_normal<float>(rng, kSize), random_normal<float>(rng, kSize, 1e-3)};
  ReferenceCase ref("kernels.py", "add");
  ref.put("y0", c.y0, {kSize});
  ref.put("x", c.x, {kSize});
  ref.run();
  c.sum32 = ref.result("sum32");
  c.sum64 = ref.result("sum64");
  return {c};
}

class AddReference : public SharedReferenceCases<AddCase, make_cases> {
 protected:
  template <typename T>
  void check(const std::vector<double>& expected) {
    const AddCase& c = cases_->front();
    std::vector<T> y = convert<T>(c.y0);
    const std::vector<T> x = convert<T>(c.x);
    add_into(Context::cpu(), y.data(), x.data(), kSize);
    const double error = relative_error(y, expected);
    report_error(std::string("add_into.") + type_name<T>(), error);
    EXPECT_EQ(error, 0.0);
  }
};

TEST_F(AddReference, AccumulatesLikePyTorchExactly) { check<float>(cases_->front().sum32); }

TEST_F(AddReference, AccumulatesInDoubleLikePyTorchExactly) {
  check<double>(cases_->front().sum64);
}

TEST(AddValidation, NegativeSizeThrows) {
  float y = 0.0f;
  EXPECT_THROW(add_into(Context::cpu(), &y, &y, -1), Error);
}

class AddGpuTest : public GpuTest {};

TEST_F(AddGpuTest, AccumulatesLikeCpuBitForBit) {
  constexpr int64_t n = 1 << 20;
  auto y = mirrored(random_floats(n, 1)), x = mirrored(random_floats(n, 2));
  for (const Context* ctx : {&cpu_, &cuda_}) add_into(*ctx, y.on(*ctx), x.on(*ctx), n);
  EXPECT_TRUE(bitwise_equal(y.cuda.download(), y.cpu.download()));
}

}  // namespace
}  // namespace recforge::testing
