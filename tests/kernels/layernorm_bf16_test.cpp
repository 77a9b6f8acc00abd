// Layer normalization with a bf16 output (input, weight, bias, mean, rstd and the residual fp32)
// on the CPU backend: against PyTorch running the same policy (tests/reference/bf16_ops.py), and
// against the fp32 kernel.
#include <gtest/gtest.h>

#include "kernels/layernorm.h"
#include "tests/kernels/layernorm_case.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::poisoned;
using testing::ReferenceCase;
using testing::to_float;

struct LayerNormBf16Case : testing::LayerNormForwardCase {
  std::string label() const { return "layernorm.bf16.C" + std::to_string(shape.C); }
};

std::vector<LayerNormBf16Case> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<LayerNormBf16Case> cases;
  ReferenceCase ref("bf16_ops.py", "layernorm_bf16");
  ref.put_scalar("num_cases", std::size(testing::kLayerNormShapes));
  for (const testing::LayerNormShape& shape : testing::kLayerNormShapes) {
    LayerNormBf16Case c;
    c.shape = shape;
    c.put_inputs(rng, ref, testing::case_prefix(cases.size()));
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) cases[i].get_outputs(ref, testing::case_prefix(i));
  return cases;
}

// Both forwards (plain and fused residual) with output type Out on poisoned outputs.
template <typename Out>
struct Forward {
  std::vector<Out> out, residual_out;
  std::vector<float> mean, rstd, residual, residual_mean, residual_rstd;
  explicit Forward(const LayerNormBf16Case& c)
      : out(poisoned<Out>(c.inp.size())),
        residual_out(poisoned<Out>(c.inp.size())),
        mean(poisoned<float>(c.shape.N)),
        rstd(poisoned<float>(c.shape.N)),
        residual(poisoned<float>(c.inp.size())),
        residual_mean(poisoned<float>(c.shape.N)),
        residual_rstd(poisoned<float>(c.shape.N)) {
    const auto [N, C] = c.shape;
    const Context ctx = Context::cpu();
    layernorm_forward(ctx, out.data(), mean.data(), rstd.data(), c.inp.data(), c.weight.data(),
                      c.bias.data(), N, C);
    residual_layernorm_forward(ctx, residual.data(), residual_out.data(), residual_mean.data(),
                               residual_rstd.data(), c.a.data(), c.b.data(), c.weight.data(),
                               c.bias.data(), N, C);
  }
};

using LayerNormBf16Reference = testing::SharedReferenceCases<LayerNormBf16Case, make_cases>;

TEST_F(LayerNormBf16Reference, ForwardMatchesPyTorch) {
  for (const LayerNormBf16Case& c : *cases_) {
    Forward<bf16> f(c);
    expect_close(c.label() + ".out", to_float(f.out), c.out, 1e-2);
    expect_close(c.label() + ".mean (fp32)", f.mean, c.mean, 1e-6);
    expect_close(c.label() + ".rstd (fp32)", f.rstd, c.rstd, 1e-6);
  }
}

TEST_F(LayerNormBf16Reference, ResidualForwardMatchesPyTorch) {
  for (const LayerNormBf16Case& c : *cases_) {
    Forward<bf16> f(c);
    const std::string label = c.label() + ".residual_layernorm";
    expect_close(label + ".residual (fp32)", f.residual, c.residual, 1e-7);
    expect_close(label + ".out", to_float(f.residual_out), c.residual_out, 1e-2);
  }
}

// The fp32 statistics and residual are those of the fp32 kernel bit for bit, and the bf16 output
// is the fp32 output rounded once; relative to fp32 that costs well under 1e-2.
TEST_F(LayerNormBf16Reference, OutputIsTheFp32OutputRoundedOnce) {
  for (const LayerNormBf16Case& c : *cases_) {
    Forward<bf16> bf16_run(c);
    Forward<float> fp32_run(c);
    EXPECT_TRUE(bf16_run.mean == fp32_run.mean && bf16_run.rstd == fp32_run.rstd);
    EXPECT_TRUE(bf16_run.residual == fp32_run.residual);
    EXPECT_TRUE(bf16_run.residual_mean == fp32_run.residual_mean &&
                bf16_run.residual_rstd == fp32_run.residual_rstd);
    EXPECT_TRUE(to_float(bf16_run.out) == testing::rounded_to_bf16(fp32_run.out));
    EXPECT_TRUE(to_float(bf16_run.residual_out) == testing::rounded_to_bf16(fp32_run.residual_out));
    expect_close(c.label() + " vs fp32.out", to_float(bf16_run.out), convert<double>(fp32_run.out),
                 1e-2);
    expect_close(c.label() + " vs fp32.residual_out", to_float(bf16_run.residual_out),
                 convert<double>(fp32_run.residual_out), 1e-2);
  }
}

}  // namespace
}  // namespace recforge
