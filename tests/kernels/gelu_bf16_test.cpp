// GELU with bf16 storage on the CPU backend: the forward on bf16 (in and out), the backward as
// (dinp, inp, dout) = (bf16, bf16, fp32); against PyTorch running the same policy
// (tests/reference/bf16_ops.py), and against the fp32 kernel on the unrounded inputs.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/gelu.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::to_bf16;
using testing::to_float;

struct GeluBf16Case {
  std::vector<float> inp, dout;  // fp32 draws; the bf16 runs round inp
  std::vector<double> out, dinp;
};

std::vector<GeluBf16Case> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  const int64_t n = 10007;
  GeluBf16Case c;
  c.inp = testing::random_normal<float>(rng, n, 2.0);
  c.dout = testing::random_normal<float>(rng, n);
  ReferenceCase ref("bf16_ops.py", "gelu_bf16");
  ref.put("inp", testing::rounded_to_bf16(c.inp), {n});
  ref.put("dout", c.dout, {n});
  ref.run();
  c.out = ref.result("out");
  c.dinp = ref.result("dinp");
  return {std::move(c)};
}

std::vector<bf16> forward_bf16(const GeluBf16Case& c) {
  std::vector<bf16> inp = to_bf16(c.inp), out = testing::poisoned<bf16>(inp.size());
  gelu_forward(Context::cpu(), out.data(), inp.data(), inp.size());
  return out;
}

std::vector<bf16> backward_bf16(const GeluBf16Case& c) {
  std::vector<bf16> inp = to_bf16(c.inp), dinp = testing::poisoned<bf16>(inp.size());
  gelu_backward(Context::cpu(), dinp.data(), inp.data(), c.dout.data(), inp.size());
  return dinp;
}

using GeluBf16Reference = testing::SharedReferenceCases<GeluBf16Case, make_cases>;

TEST_F(GeluBf16Reference, ForwardMatchesPyTorch) {
  const GeluBf16Case& c = cases_->front();
  expect_close("gelu.bf16.out", to_float(forward_bf16(c)), c.out, 1e-2);
}

TEST_F(GeluBf16Reference, BackwardWithFp32GradientMatchesPyTorch) {
  const GeluBf16Case& c = cases_->front();
  expect_close("gelu.bf16.dinp", to_float(backward_bf16(c)), c.dinp, 1e-2);
}

TEST_F(GeluBf16Reference, StaysWithinBf16PrecisionOfFp32) {
  const GeluBf16Case& c = cases_->front();
  const int64_t n = c.inp.size();
  std::vector<float> out(n, NAN), dinp(n, NAN);
  gelu_forward(Context::cpu(), out.data(), c.inp.data(), n);
  gelu_backward(Context::cpu(), dinp.data(), c.inp.data(), c.dout.data(), n);
  expect_close("gelu.bf16 vs fp32.out", to_float(forward_bf16(c)), convert<double>(out), 1e-2);
  expect_close("gelu.bf16 vs fp32.dinp", to_float(backward_bf16(c)), convert<double>(dinp), 1e-2);
}

TEST_F(GeluBf16Reference, InPlaceForwardGivesTheSameBits) {
  const GeluBf16Case& c = cases_->front();
  std::vector<bf16> x = to_bf16(c.inp);
  gelu_forward(Context::cpu(), x.data(), x.data(), x.size());
  EXPECT_EQ(std::memcmp(x.data(), forward_bf16(c).data(), x.size() * sizeof(bf16)), 0);
}

}  // namespace
}  // namespace recforge
