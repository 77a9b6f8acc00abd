#include "kernels/gelu.h"

#include <gtest/gtest.h>

#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::ReferenceCase;

TEST(GeluReference, ForwardAndBackwardMatchPyTorch) {
  std::mt19937_64 rng(testing::fresh_seed());
  const int64_t n = 10007;
  auto inp = testing::random_normal<float>(rng, n, 2.0);
  auto dout = testing::random_normal<float>(rng, n);
  ReferenceCase ref("kernels.py", "gelu");
  ref.put("inp", inp, {n});
  ref.put("dout", dout, {n});
  ref.run();

  Context ctx = Context::cpu();
  std::vector<float> out(n, NAN), dinp(n, NAN);
  gelu_forward(ctx, out.data(), inp.data(), n);
  gelu_backward(ctx, dinp.data(), inp.data(), dout.data(), n);

  double out_error = testing::relative_error(out, ref.result("out"));
  double dinp_error = testing::relative_error(dinp, ref.result("dinp"));
  testing::report_error("gelu.out", out_error);
  testing::report_error("gelu.dinp", dinp_error);
  EXPECT_LT(out_error, 1e-6);
  EXPECT_LT(dinp_error, 1e-6);
}

}  // namespace
}  // namespace recforge
