// Float64 finite-difference checks of the Llama kernels' backward passes on the CPU: for the loss
// L = Σ w ⊙ f(θ) with random weights w (the dout the backward receives), every entry of every
// input's analytic gradient must match the fourth-order central difference
//   (8·(L(θ + h) − L(θ − h)) − (L(θ + 2h) − L(θ − 2h))) / 12h
// (truncation error O(h⁴), so a step of 1e-3 keeps both it and the rounding noise near 1e-10).
// Covers rmsnorm (dinp, dweight), rope (full and partial rotary dimension, positions up to 8000),
// swiglu (dgate, dup) and grouped-query attention (dqkv, both masks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr double kStep = 1e-3;
constexpr double kTolerance = 1e-6;

double weighted_sum(const std::vector<double>& w, const std::vector<double>& out) {
  double sum = 0.0;
  for (size_t i = 0; i < w.size(); ++i) sum += w[i] * out[i];
  return sum;
}

// loss() with theta[i] moved by `step` (restored afterwards).
template <typename Loss>
double loss_at(std::vector<double>& theta, size_t i, double step, Loss& loss) {
  const double value = theta[i];
  theta[i] = value + step;
  const double result = loss();
  theta[i] = value;
  return result;
}

// The largest |numeric − analytic| / max(|numeric|, |analytic|, 1e-4) over the entries 0, stride,
// 2·stride, ... of `theta`, numeric being the fourth-order central difference of loss(). Gradients
// below 1e-4 are compared in absolute terms.
template <typename Loss>
double worst_gradient_error(std::vector<double>& theta, const std::vector<double>& analytic,
                            Loss loss, size_t stride = 1) {
  double worst = 0.0;
  for (size_t i = 0; i < theta.size(); i += stride) {
    const double near = loss_at(theta, i, kStep, loss) - loss_at(theta, i, -kStep, loss);
    const double far = loss_at(theta, i, 2 * kStep, loss) - loss_at(theta, i, -2 * kStep, loss);
    const double numeric = (8 * near - far) / (12 * kStep);
    const double scale = std::max({std::abs(numeric), std::abs(analytic[i]), 1e-4});
    worst = std::max(worst, std::abs(numeric - analytic[i]) / scale);
  }
  return worst;
}

void expect_gradient_matches(const std::string& name, double worst) {
  report_error("gradcheck.fp64." + name, worst);
  EXPECT_LT(worst, kTolerance) << name;
}

class LlamaGradcheck : public ::testing::Test {
 protected:
  std::mt19937_64 rng_{fresh_seed()};
  Context cpu_ = Context::cpu();
};

TEST_F(LlamaGradcheck, RmsNormBackwardMatchesFiniteDifferences) {
  const int N = 3, C = 8;
  std::vector<double> inp = random_normal<double>(rng_, N * C, 1.5);
  std::vector<double> weight = random_normal<double>(rng_, C);
  const std::vector<double> w = random_normal<double>(rng_, N * C);
  std::vector<double> out(N * C), rstd(N);
  auto loss = [&] {
    rmsnorm_forward(cpu_, out.data(), rstd.data(), inp.data(), weight.data(), N, C, 1e-5f);
    return weighted_sum(w, out);
  };
  loss();
  std::vector<double> dinp(N * C, 0.0), dweight(C, 0.0);
  rmsnorm_backward(cpu_, dinp.data(), dweight.data(), w.data(), inp.data(), weight.data(),
                   rstd.data(), N, C);
  expect_gradient_matches("rmsnorm.dinp", worst_gradient_error(inp, dinp, loss));
  expect_gradient_matches("rmsnorm.dweight", worst_gradient_error(weight, dweight, loss));
}

TEST_F(LlamaGradcheck, RopeBackwardMatchesFiniteDifferences) {
  const int N = 4;
  const std::vector<int32_t> positions{0, 3, 100, 8000};
  for (const RopeShape& shape : {RopeShape{2, 8, 8, 10000.0f}, RopeShape{2, 8, 4, 100000.0f}}) {
    std::vector<double> x = random_normal<double>(rng_, N * 2 * 8);
    const std::vector<double> w = random_normal<double>(rng_, x.size());
    auto loss = [&] {
      std::vector<double> out = x;
      rope_forward(cpu_, out.data(), positions.data(), N, shape);
      return weighted_sum(w, out);
    };
    std::vector<double> dx = w;
    rope_backward(cpu_, dx.data(), positions.data(), N, shape);
    expect_gradient_matches("rope.R" + std::to_string(shape.rotary_dim) + ".dx",
                            worst_gradient_error(x, dx, loss));
  }
}

TEST_F(LlamaGradcheck, SwigluBackwardMatchesFiniteDifferences) {
  const int64_t n = 32;
  std::vector<double> gate = random_normal<double>(rng_, n, 3.0);
  std::vector<double> up = random_normal<double>(rng_, n);
  const std::vector<double> w = random_normal<double>(rng_, n);
  std::vector<double> out(n);
  auto loss = [&] {
    swiglu_forward(cpu_, out.data(), gate.data(), up.data(), n);
    return weighted_sum(w, out);
  };
  std::vector<double> dgate(n), dup(n);
  swiglu_backward(cpu_, dgate.data(), dup.data(), w.data(), gate.data(), up.data(), n);
  expect_gradient_matches("swiglu.dgate", worst_gradient_error(gate, dgate, loss));
  expect_gradient_matches("swiglu.dup", worst_gradient_error(up, dup, loss));
}

// 4 query heads on 2 kv heads: dk and dv of each kv head sum over its two query heads. Every 5th
// entry of qkv (5 is coprime with the head size, so every channel, head and token is visited).
TEST_F(LlamaGradcheck, GroupedAttentionBackwardMatchesFiniteDifferences) {
  const std::vector<int32_t> offsets{0, 3, 3, 8, 9};  // lengths 3, 0, 5, 1
  const PackedSequences seqs{offsets.data(), 4, 9, 5};
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    const AttentionShape shape{4, 32, mask, 2};
    const int N = seqs.num_tokens;
    std::vector<double> qkv = random_normal<double>(rng_, N * shape.qkv_channels());
    const std::vector<double> w = random_normal<double>(rng_, N * shape.channels());
    std::vector<double> out(w.size()), lse(N * shape.num_heads);
    auto loss = [&] {
      attention_forward(cpu_, out.data(), lse.data(), qkv.data(), seqs, shape);
      return weighted_sum(w, out);
    };
    loss();
    std::vector<double> dqkv(qkv.size()), delta(lse.size());
    attention_backward(cpu_, dqkv.data(), delta.data(), w.data(), qkv.data(), out.data(),
                       lse.data(), seqs, shape);
    const std::string name = std::string("attention.NH4.KV2.") +
                             (mask == AttentionMask::kCausal ? "causal" : "bidirectional");
    expect_gradient_matches(name + ".dqkv", worst_gradient_error(qkv, dqkv, loss, 5));
  }
}

}  // namespace
}  // namespace recforge::testing
