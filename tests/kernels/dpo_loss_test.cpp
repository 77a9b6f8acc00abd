// The DPO losses (kernels/dpo_loss.h). The CPU backend against PyTorch (TRL's formulas, autograd
// for ∂/∂π), its values at the first step, parameter checks, and the whole DPO step composed from
// candidate_logprobs → dpo_loss → candidate_logprobs backward against PyTorch's autograd; the CUDA
// backend against the CPU backend: every loss type for K = 2 and K = 5, with and without label
// smoothing, gradients and metrics, and the null-output modes.
#include "kernels/dpo_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/candidate_logprobs.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr DpoLoss kAllLosses[] = {DpoLoss::kSigmoid, DpoLoss::kIpo, DpoLoss::kHinge,
                                  DpoLoss::kRobust, DpoLoss::kSdpo};

bool takes_label_smoothing(DpoLoss type) {
  return type == DpoLoss::kSigmoid || type == DpoLoss::kRobust;
}

// Every loss for K = 2 and K = 4 under several β, and label smoothing where it applies.
std::vector<DpoParams> all_params() {
  std::vector<DpoParams> params;
  for (DpoLoss type : kAllLosses) {
    for (float beta : {0.1f, 0.5f, 2.0f}) {
      params.push_back({type, beta, 0.0f});
      if (takes_label_smoothing(type)) params.push_back({type, beta, beta == 0.5f ? 0.3f : 0.1f});
    }
  }
  return params;
}

std::string params_label(const DpoParams& p, int K) {
  char text[96];
  std::snprintf(text, sizeof text, "%s.K%d.beta%g.eps%g", dpo_loss_name(p.type).c_str(), K, p.beta,
                p.label_smoothing);
  return text;
}

void put_params(ReferenceCase& ref, const std::string& prefix, const DpoParams& p) {
  ref.put_scalar(prefix + "type", static_cast<int>(p.type));
  ref.put_scalar(prefix + "beta", p.beta);
  ref.put_scalar(prefix + "label_smoothing", p.label_smoothing);
}

// ---- dpo_loss on given log-probabilities against PyTorch ----------------------------------------
struct LossCase {
  DpoParams params;
  int N, K;
  float loss_scale;
  std::vector<float> policy, reference;          // [N, K]
  std::vector<double> losses, dpolicy, metrics;  // PyTorch's
};

// Log-probabilities around −8 with policy − reference differences of a few nats, so the pairwise
// margins land on both sides of the hinge's kink and in the sigmoid's tails for large β.
std::vector<LossCase> make_loss_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<LossCase> cases;
  ReferenceCase ref("dpo.py", "dpo_loss");
  for (int K : {2, 4}) {
    for (const DpoParams& params : all_params()) {
      const int N = 97;
      LossCase c{params, N, K, 1.0f / N};
      c.reference = random_normal<float>(rng, static_cast<size_t>(N) * K, 2.0);
      c.policy = random_normal<float>(rng, static_cast<size_t>(N) * K, 2.0);
      for (size_t i = 0; i < c.policy.size(); ++i) {
        c.reference[i] = -8.0f - std::fabs(c.reference[i]);
        c.policy[i] = c.reference[i] + c.policy[i];
      }
      std::string p = case_prefix(cases.size());
      ref.put(p + "policy", c.policy, {N, K});
      ref.put(p + "reference", c.reference, {N, K});
      put_params(ref, p, params);
      ref.put_scalar(p + "loss_scale", c.loss_scale);
      cases.push_back(std::move(c));
    }
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = case_prefix(i);
    cases[i].losses = ref.result(p + "losses");
    cases[i].dpolicy = ref.result(p + "dpolicy");
    cases[i].metrics = ref.result(p + "metrics");
  }
  return cases;
}

class DpoLossReference : public SharedReferenceCases<LossCase, make_loss_cases> {
 protected:
  template <typename T>
  void check(const LossCase& c, double tolerance) {
    std::vector<T> policy = convert<T>(c.policy), reference = convert<T>(c.reference);
    std::vector<T> losses(c.N, NAN), dpolicy(c.policy.size(), NAN);
    std::vector<T> metrics(static_cast<size_t>(c.N) * kDpoNumMetrics, NAN);
    dpo_loss(Context::cpu(), losses.data(), dpolicy.data(), metrics.data(), policy.data(),
             reference.data(), c.N, c.K, c.params, static_cast<T>(c.loss_scale));
    std::string label = "dpo_loss." + params_label(c.params, c.K) + "." + type_name<T>();
    expect_close(label + ".losses", losses, c.losses, tolerance);
    expect_close(label + ".dpolicy", dpolicy, c.dpolicy, tolerance);
    expect_close(label + ".metrics", metrics, c.metrics, tolerance);
  }

  static const std::vector<LossCase>& cases() { return *cases_; }
};

TEST_F(DpoLossReference, EveryLossMatchesPyTorch) {
  for (const LossCase& c : cases()) check<float>(c, 1e-5);
}

TEST_F(DpoLossReference, EveryLossMatchesPyTorchInDoublePrecision) {
  for (const LossCase& c : cases()) check<double>(c, 1e-12);
}

// ---- The first step: policy = reference ---------------------------------------------------------
template <typename T>
void expect_first_step_values() {
  const int N = 3, K = 4;
  std::vector<T> logps{-1.5, -7.25, -3.0, -9.0, -2.0, -2.0, -2.0, -2.0, -11.0, -0.5, -4.0, -6.0};
  std::vector<T> losses(N), dpolicy(N * K), metrics(N * kDpoNumMetrics);
  for (DpoLoss type : kAllLosses) {
    dpo_loss(Context::cpu(), losses.data(), dpolicy.data(), metrics.data(), logps.data(),
             logps.data(), N, K, DpoParams{type, 0.1f, 0.0f}, T(1));
    for (int n = 0; n < N; ++n) {
      const T* m = metrics.data() + n * kDpoNumMetrics;
      EXPECT_EQ(m[kDpoRewardChosen], T(0));
      EXPECT_EQ(m[kDpoRewardRejected], T(0));
      EXPECT_EQ(m[kDpoMargin], T(0)) << dpo_loss_name(type);
      EXPECT_EQ(m[kDpoAccuracy], T(0));  // a tie is not a win
      if (type == DpoLoss::kSigmoid) EXPECT_EQ(losses[n], std::log(T(2))) << type_name<T>();
    }
  }
}

TEST(DpoLossFirstStep, MarginsAreExactlyZeroAndSigmoidLossIsExactlyLog2) {
  expect_first_step_values<float>();
  expect_first_step_values<double>();
}

// With K = 2, S-DPO's softmax over one rejected candidate is the sigmoid loss.
TEST(DpoLossSdpo, EqualsSigmoidWithOneRejectedCandidate) {
  const int N = 64, K = 2;
  std::mt19937_64 rng(fresh_seed());
  std::vector<double> policy = random_normal<double>(rng, N * K, 3.0);
  std::vector<double> reference = random_normal<double>(rng, N * K, 3.0);
  std::vector<double> losses[2], dpolicy[2];
  int i = 0;
  for (DpoLoss type : {DpoLoss::kSigmoid, DpoLoss::kSdpo}) {
    losses[i].resize(N);
    dpolicy[i].resize(N * K);
    dpo_loss(Context::cpu(), losses[i].data(), dpolicy[i].data(), static_cast<double*>(nullptr),
             policy.data(), reference.data(), N, K, DpoParams{type, 0.7f, 0.0f}, 1.0 / N);
    ++i;
  }
  expect_close("sdpo vs sigmoid, K=2: losses", losses[1], losses[0], 1e-14);
  expect_close("sdpo vs sigmoid, K=2: dpolicy", dpolicy[1], dpolicy[0], 1e-14);
}

// Large margins of either sign: every loss and gradient stays finite.
TEST(DpoLossStability, ExtremeMarginsStayFinite) {
  const int N = 2, K = 3;
  std::vector<float> policy{0.0f, -300.0f, -250.0f, -300.0f, 0.0f, -1.0f};
  std::vector<float> reference(N * K, -5.0f);
  std::vector<float> losses(N), dpolicy(N * K), metrics(N * kDpoNumMetrics);
  for (DpoLoss type : kAllLosses) {
    const DpoParams params{type, 2.0f, takes_label_smoothing(type) ? 0.1f : 0.0f};
    dpo_loss(Context::cpu(), losses.data(), dpolicy.data(), metrics.data(), policy.data(),
             reference.data(), N, K, params, 1.0f);
    for (float x : losses) EXPECT_TRUE(std::isfinite(x)) << dpo_loss_name(type);
    for (float x : dpolicy) EXPECT_TRUE(std::isfinite(x)) << dpo_loss_name(type);
  }
}

// ---- Names and parameter checks -----------------------------------------------------------------
TEST(DpoLossParams, NamesRoundTrip) {
  for (DpoLoss type : kAllLosses) EXPECT_EQ(parse_dpo_loss(dpo_loss_name(type)), type);
  EXPECT_EQ(parse_dpo_loss("sdpo"), DpoLoss::kSdpo);
}

TEST(DpoLossParams, UnknownNameThrowsListingTheNames) {
  try {
    parse_dpo_loss("kto");
    ADD_FAILURE() << "\"kto\" was accepted";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("sigmoid, ipo, hinge, robust, sdpo"), std::string::npos);
  }
}

TEST(DpoLossParams, BadParamsThrow) {
  const DpoParams bad[] = {{DpoLoss::kSigmoid, 0.0f, 0.0f},  {DpoLoss::kIpo, -1.0f, 0.0f},
                           {DpoLoss::kSigmoid, NAN, 0.0f},   {DpoLoss::kRobust, 0.1f, 0.5f},
                           {DpoLoss::kSigmoid, 0.1f, -0.1f}, {DpoLoss::kHinge, 0.1f, 0.1f},
                           {DpoLoss::kSdpo, 0.1f, 0.2f}};
  for (const DpoParams& params : bad) {
    try {
      check_dpo_params(params);
      ADD_FAILURE() << params_label(params, 2) << " was accepted";
    } catch (const Error& e) {
      std::printf("[  message ] %s\n", e.what());
    }
  }
}

TEST(DpoLossParams, FewerThanTwoCandidatesThrow) {
  float policy = -1.0f, loss = 0.0f;
  EXPECT_THROW(dpo_loss(Context::cpu(), &loss, static_cast<float*>(nullptr),
                        static_cast<float*>(nullptr), &policy, &policy, 1, 1, DpoParams{}, 1.0f),
               Error);
}

// ---- The whole DPO step against PyTorch: candidate_logprobs → dpo_loss → backward ---------------
// The policy's log-probabilities come from hidden and the table, the frozen reference's from
// ref_hidden and ref_wte (a perturbed copy, as after some training); the gradient reaches hidden
// and the table only through the policy.
struct EndToEndCase {
  DpoParams params;
  int N, C, V, K, offset;
  float loss_scale;
  std::vector<float> hidden, wte, ref_hidden, ref_wte, dwte0;
  std::vector<int32_t> candidates;
  std::vector<double> losses, dhidden, dwte;
};

constexpr int kEndToEndTail = 2;

std::vector<EndToEndCase> make_end_to_end_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<EndToEndCase> cases;
  ReferenceCase ref("dpo.py", "dpo_end_to_end");
  for (int K : {2, 4}) {
    for (DpoLoss type : kAllLosses) {
      const int N = 45, C = 24, V = 5001, offset = 16;
      const int rows = offset + V + kEndToEndTail;
      EndToEndCase c{
          {type, 0.5f, takes_label_smoothing(type) ? 0.1f : 0.0f}, N, C, V, K, offset, 1.0f / N};
      c.hidden = random_normal<float>(rng, N * C);
      c.wte = random_normal<float>(rng, static_cast<size_t>(rows) * C, 2.0 / std::sqrt(C));
      c.ref_hidden = c.hidden;
      c.ref_wte = c.wte;
      std::vector<float> noise = random_normal<float>(rng, c.wte.size(), 0.05);
      for (size_t i = 0; i < noise.size(); ++i) c.ref_wte[i] += noise[i];
      noise = random_normal<float>(rng, c.hidden.size(), 0.05);
      for (size_t i = 0; i < noise.size(); ++i) c.ref_hidden[i] += noise[i];
      // The loss's gradient alone, not drowned by a start value.
      c.dwte0.assign(c.wte.size(), 0.0f);
      c.candidates = random_ints(rng, static_cast<size_t>(N) * K, 0, V);
      std::string p = case_prefix(cases.size());
      ref.put(p + "hidden", c.hidden, {N, C});
      ref.put(p + "wte", c.wte, {rows, C});
      ref.put(p + "ref_hidden", c.ref_hidden, {N, C});
      ref.put(p + "ref_wte", c.ref_wte, {rows, C});
      ref.put(p + "dwte0", c.dwte0, {rows, C});
      ref.put(p + "candidates", c.candidates, {N, K});
      ref.put_scalar(p + "offset", offset);
      ref.put_scalar(p + "V", V);
      ref.put_scalar(p + "loss_scale", c.loss_scale);
      put_params(ref, p, c.params);
      cases.push_back(std::move(c));
    }
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = case_prefix(i);
    cases[i].losses = ref.result(p + "losses");
    cases[i].dhidden = ref.result(p + "dhidden");
    cases[i].dwte = ref.result(p + "dwte");
  }
  return cases;
}

class DpoEndToEndReference : public SharedReferenceCases<EndToEndCase, make_end_to_end_cases> {
 protected:
  template <typename T>
  void check(const EndToEndCase& c, double tolerance) {
    const int N = c.N, C = c.C, V = c.V, K = c.K;
    const Context ctx = Context::cpu();
    const size_t first = static_cast<size_t>(c.offset) * C;
    std::vector<T> hidden = convert<T>(c.hidden), wte = convert<T>(c.wte);
    std::vector<T> ref_hidden = convert<T>(c.ref_hidden), ref_wte = convert<T>(c.ref_wte);
    std::vector<T> dwte = convert<T>(c.dwte0), dhidden(hidden.size(), NAN);
    std::vector<T> policy(static_cast<size_t>(N) * K, NAN), reference(policy.size(), NAN);
    std::vector<T> dpolicy(policy.size(), NAN), lse(N, NAN), ref_lse(N, NAN), losses(N, NAN);
    candidate_logprobs_forward(ctx, reference.data(), ref_lse.data(), ref_hidden.data(),
                               ref_wte.data() + first, c.candidates.data(), N, C, V, K);
    candidate_logprobs_forward(ctx, policy.data(), lse.data(), hidden.data(), wte.data() + first,
                               c.candidates.data(), N, C, V, K);
    dpo_loss(ctx, losses.data(), dpolicy.data(), static_cast<T*>(nullptr), policy.data(),
             reference.data(), N, K, c.params, static_cast<T>(c.loss_scale));
    candidate_logprobs_backward(ctx, dhidden.data(), dwte.data() + first, dpolicy.data(),
                                lse.data(), hidden.data(), wte.data() + first, c.candidates.data(),
                                N, C, V, K);
    std::string label = "dpo_step." + params_label(c.params, K) + "." + type_name<T>();
    expect_close(label + ".losses", losses, c.losses, tolerance);
    expect_close(label + ".dhidden", dhidden, c.dhidden, tolerance);
    expect_close(label + ".dwte", dwte, c.dwte, tolerance);
  }

  static const std::vector<EndToEndCase>& cases() { return *cases_; }
};

TEST_F(DpoEndToEndReference, ComposedStepMatchesPyTorchAutograd) {
  for (const EndToEndCase& c : cases()) check<float>(c, 1e-4);
}

TEST_F(DpoEndToEndReference, ComposedStepMatchesPyTorchAutogradInDoublePrecision) {
  for (const EndToEndCase& c : cases()) check<double>(c, 1e-11);
}

// ---- The CUDA backend against the CPU backend ---------------------------------------------------

using DpoLossGpuTest = GpuTest;

TEST_F(DpoLossGpuTest, EveryLossMatchesCpu) {
  constexpr int N = 1000;
  for (int K : {2, 5}) {
    auto reference = mirrored(random_floats(static_cast<size_t>(N) * K, 1, -14.0f, -6.0f));
    std::vector<float> policy_host = reference.cpu.download();
    std::vector<float> shift = random_floats(policy_host.size(), 2, -3.0f, 3.0f);
    for (size_t i = 0; i < shift.size(); ++i) policy_host[i] += shift[i];
    auto policy = mirrored(policy_host);
    for (DpoLoss type : kAllLosses) {
      const DpoParams params{type, 0.5f, takes_label_smoothing(type) ? 0.1f : 0.0f};
      Mirrored<float> losses(N), dpolicy(static_cast<size_t>(N) * K);
      Mirrored<float> metrics(static_cast<size_t>(N) * kDpoNumMetrics);
      losses.poison();
      dpolicy.poison();
      metrics.poison();
      for (const Context* ctx : {&cpu_, &cuda_}) {
        dpo_loss(*ctx, losses.on(*ctx), dpolicy.on(*ctx), metrics.on(*ctx), policy.on(*ctx),
                 reference.on(*ctx), N, K, params, 1.0f / N);
      }
      const std::string label = cat("dpo_loss.", dpo_loss_name(type), ".K", K);
      expect_close(label + ".losses", losses, 1e-5);
      expect_close(label + ".dpolicy", dpolicy, 1e-5);
      expect_close(label + ".metrics", metrics, 1e-5);
    }
  }
}

TEST_F(DpoLossGpuTest, LossesOnlyMatchCpu) {
  constexpr int N = 77, K = 3;
  auto policy = mirrored(random_floats(N * K, 3, -10.0f, -1.0f));
  auto reference = mirrored(random_floats(N * K, 4, -10.0f, -1.0f));
  Mirrored<float> losses(N);
  losses.poison();
  float* const none = nullptr;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dpo_loss(*ctx, losses.on(*ctx), none, none, policy.on(*ctx), reference.on(*ctx), N, K,
             DpoParams{DpoLoss::kSdpo, 0.2f, 0.0f}, 1.0f);
  }
  expect_close("dpo_loss.sdpo.losses (losses only)", losses, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
