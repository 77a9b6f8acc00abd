#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::type_name;

constexpr int kN = 257, kC = 192, kOC = 97;  // odd N and OC: uneven per-thread slices

struct MatmulData {
  std::vector<float> inp, weight, bias, dout, dweight0, dbias0;
  std::vector<double> out, out_nobias, dinp, dweight, dbias;
};

MatmulData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  MatmulData d;
  d.inp = testing::random_normal<float>(rng, kN * kC);
  d.weight = testing::random_normal<float>(rng, kOC * kC, 0.1);
  d.bias = testing::random_normal<float>(rng, kOC);
  d.dout = testing::random_normal<float>(rng, kN * kOC);
  d.dweight0 = testing::random_normal<float>(rng, kOC * kC);
  d.dbias0 = testing::random_normal<float>(rng, kOC);
  ReferenceCase ref("kernels.py", "matmul");
  ref.put("inp", d.inp, {kN, kC});
  ref.put("weight", d.weight, {kOC, kC});
  ref.put("bias", d.bias, {kOC});
  ref.put("dout", d.dout, {kN, kOC});
  ref.put("dweight0", d.dweight0, {kOC, kC});
  ref.put("dbias0", d.dbias0, {kOC});
  ref.run();
  d.out = ref.result("out");
  d.out_nobias = ref.result("out_nobias");
  d.dinp = ref.result("dinp");
  d.dweight = ref.result("dweight");
  d.dbias = ref.result("dbias");
  return d;
}

// The kernel's backward: dinp poisoned, dweight and dbias starting from their initial values; the
// gradients not wanted are passed as null.
template <typename T>
struct Backward {
  std::vector<T> dinp, dweight, dbias;
  Backward(const MatmulData& d, bool want_dinp, bool want_dweight, bool want_dbias)
      : dinp(kN * kC, NAN), dweight(convert<T>(d.dweight0)), dbias(convert<T>(d.dbias0)) {
    std::vector<T> dout = convert<T>(d.dout), inp = convert<T>(d.inp);
    std::vector<T> weight = convert<T>(d.weight);
    matmul_backward(Context::cpu(), want_dinp ? dinp.data() : nullptr,
                    want_dweight ? dweight.data() : nullptr, want_dbias ? dbias.data() : nullptr,
                    dout.data(), inp.data(), weight.data(), kN, kC, kOC);
  }
};

// The PyTorch reference is computed once and shared by the tests of the suite.
class MatmulReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<MatmulData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }

  template <typename T>
  void check_forward(bool with_bias, double tolerance) {
    std::vector<T> inp = convert<T>(data_->inp), weight = convert<T>(data_->weight);
    std::vector<T> bias = convert<T>(data_->bias), out(kN * kOC, NAN);
    matmul_forward(Context::cpu(), out.data(), inp.data(), weight.data(),
                   with_bias ? bias.data() : nullptr, kN, kC, kOC);
    expect_close(std::string("matmul.") + type_name<T>() + (with_bias ? ".out" : ".out (no bias)"),
                 out, with_bias ? data_->out : data_->out_nobias, tolerance);
  }

  template <typename T>
  void check_backward(double tolerance) {
    Backward<T> b(*data_, true, true, true);
    std::string label = std::string("matmul.") + type_name<T>();
    expect_close(label + ".dinp", b.dinp, data_->dinp, tolerance);
    expect_close(label + ".dweight", b.dweight, data_->dweight, tolerance);
    expect_close(label + ".dbias", b.dbias, data_->dbias, tolerance);
  }

  static inline std::unique_ptr<MatmulData> data_;
};

TEST_F(MatmulReference, ForwardWithBiasMatchesPyTorch) { check_forward<float>(true, 1e-6); }

TEST_F(MatmulReference, ForwardWithoutBiasMatchesPyTorch) { check_forward<float>(false, 1e-6); }

TEST_F(MatmulReference, ForwardInDoubleMatchesPyTorch) {
  check_forward<double>(true, 1e-14);
  check_forward<double>(false, 1e-14);
}

TEST_F(MatmulReference, BackwardMatchesPyTorch) { check_backward<float>(1e-6); }

TEST_F(MatmulReference, BackwardInDoubleMatchesPyTorch) { check_backward<double>(1e-14); }

// Each gradient computed alone is right, and the buffers of the skipped ones stay untouched.
TEST_F(MatmulReference, NullGradientsAreSkipped) {
  const MatmulData& d = *data_;
  Backward<float> only_dinp(d, true, false, false);
  Backward<float> only_dweight(d, false, true, false);
  Backward<float> only_dbias(d, false, false, true);
  expect_close("matmul.float.dinp (alone)", only_dinp.dinp, d.dinp, 1e-6);
  expect_close("matmul.float.dweight (alone)", only_dweight.dweight, d.dweight, 1e-6);
  expect_close("matmul.float.dbias (alone)", only_dbias.dbias, d.dbias, 1e-6);

  std::vector<double> dweight0 = convert<double>(d.dweight0), dbias0 = convert<double>(d.dbias0);
  double untouched = testing::relative_error(only_dinp.dweight, dweight0) +
                     testing::relative_error(only_dinp.dbias, dbias0) +
                     testing::relative_error(only_dweight.dbias, dbias0) +
                     testing::relative_error(only_dbias.dweight, dweight0);
  testing::report_error("matmul.float skipped dweight/dbias vs initial values", untouched);
  EXPECT_EQ(untouched, 0.0);
  for (const Backward<float>* b : {&only_dweight, &only_dbias}) {
    for (float x : b->dinp) ASSERT_TRUE(std::isnan(x)) << "a skipped dinp was written";
  }
}

}  // namespace
}  // namespace recforge
