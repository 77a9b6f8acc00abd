// Attention with bf16 storage (qkv, out, dout, dqkv bf16; lse, delta and the math fp32) on the CPU
// backend: against PyTorch running the same policy (tests/reference/bf16_ops.py), and against the
// fp32 kernel on the unrounded inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "tests/kernels/packed_batch.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::Batch;
using testing::expect_close;
using testing::mask_name;
using testing::ReferenceCase;
using testing::to_bf16;
using testing::to_float;

// Single tokens (first and last), empty, short, a tile (64) and one past it, long.
constexpr int kLengths[] = {1, 0, 7, 64, 65, 200, 2, 33, 1};
constexpr int kHeads = 2;

const Batch& batch() {
  static const Batch packed(kLengths);
  return packed;
}

// One head configuration: the fp32 inputs, their bf16 roundings and the PyTorch reference of the
// bf16 policy.
struct Bf16AttentionCase {
  AttentionShape shape;
  std::vector<float> qkv, dout;  // [N, 3, NH, HS], [N, NH, HS]
  std::vector<double> out, lse, dqkv;
  std::string label() const {
    return std::string("attention.bf16.") + mask_name(shape.mask) + ".NH" +
           std::to_string(shape.num_heads) + ".HS" + std::to_string(shape.head_size);
  }
};

std::vector<Bf16AttentionCase> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  const Batch& packed = batch();
  const int N = packed.num_tokens();
  std::vector<Bf16AttentionCase> cases;
  ReferenceCase ref("bf16_ops.py", "attention_bf16");
  ref.put("offsets", packed.offsets, {static_cast<int64_t>(packed.offsets.size())});
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    for (int HS : {32, 64, 128}) {
      Bf16AttentionCase c{{kHeads, HS, mask}};
      c.qkv = testing::random_normal<float>(rng, static_cast<size_t>(N) * 3 * kHeads * HS, 1.5);
      c.dout = testing::random_normal<float>(rng, static_cast<size_t>(N) * kHeads * HS);
      std::string p = testing::case_prefix(cases.size());
      ref.put(p + "qkv", testing::rounded_to_bf16(c.qkv), {N, 3, kHeads, HS});
      ref.put(p + "dout", testing::rounded_to_bf16(c.dout), {N, kHeads, HS});
      ref.put_scalar(p + "NH", kHeads);
      ref.put_scalar(p + "HS", HS);
      ref.put_scalar(p + "causal", mask == AttentionMask::kCausal ? 1.0 : 0.0);
      cases.push_back(std::move(c));
    }
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = testing::case_prefix(i);
    cases[i].out = ref.result(p + "out");
    cases[i].lse = ref.result(p + "lse");
    cases[i].dqkv = ref.result(p + "dqkv");
  }
  return cases;
}

// Forward and backward with storage A on poisoned outputs (0xFF bytes: NaN in float and bf16).
template <typename A>
struct KernelRun {
  std::vector<A> out, dqkv;
  std::vector<float> lse, delta;
  KernelRun(const std::vector<A>& qkv, const std::vector<A>& dout, const AttentionShape& shape,
            const Batch& packed) {
    const size_t N = packed.num_tokens(), C = shape.channels();
    out.resize(N * C);
    dqkv.resize(N * 3 * C);
    lse.resize(N * shape.num_heads);
    delta.resize(N * shape.num_heads);
    std::memset(out.data(), 0xFF, out.size() * sizeof(A));
    std::memset(dqkv.data(), 0xFF, dqkv.size() * sizeof(A));
    std::memset(lse.data(), 0xFF, lse.size() * sizeof(float));
    std::memset(delta.data(), 0xFF, delta.size() * sizeof(float));
    const Context ctx = Context::cpu();
    attention_forward(ctx, out.data(), lse.data(), qkv.data(), packed.view(), shape);
    attention_backward(ctx, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                       lse.data(), packed.view(), shape);
  }
};

KernelRun<bf16> run_bf16(const Bf16AttentionCase& c) {
  return KernelRun<bf16>(to_bf16(c.qkv), to_bf16(c.dout), c.shape, batch());
}

KernelRun<float> run_fp32(const Bf16AttentionCase& c) {
  return KernelRun<float>(c.qkv, c.dout, c.shape, batch());
}

// The PyTorch references are computed once and shared by the suite.
class AttentionBf16Reference : public testing::SharedReferenceCases<Bf16AttentionCase, make_cases> {
 protected:
  void check_forward(AttentionMask mask) {
    for (const Bf16AttentionCase& c : *cases_) {
      if (c.shape.mask != mask) continue;
      KernelRun<bf16> run = run_bf16(c);
      expect_close(c.label() + ".out", to_float(run.out), c.out, 1e-2);
      expect_close(c.label() + ".lse (fp32)", run.lse, c.lse, 1e-5);
    }
  }

  void check_backward(AttentionMask mask) {
    for (const Bf16AttentionCase& c : *cases_) {
      if (c.shape.mask != mask) continue;
      expect_close(c.label() + ".dqkv", to_float(run_bf16(c).dqkv), c.dqkv, 1e-2);
    }
  }
};

TEST_F(AttentionBf16Reference, CausalForwardMatchesPyTorch) {
  check_forward(AttentionMask::kCausal);
}

TEST_F(AttentionBf16Reference, BidirectionalForwardMatchesPyTorch) {
  check_forward(AttentionMask::kBidirectional);
}

TEST_F(AttentionBf16Reference, CausalBackwardMatchesPyTorch) {
  check_backward(AttentionMask::kCausal);
}

TEST_F(AttentionBf16Reference, BidirectionalBackwardMatchesPyTorch) {
  check_backward(AttentionMask::kBidirectional);
}

// bf16 storage against the fp32 kernel on the unrounded inputs: the whole cost of bf16 (inputs
// and outputs rounded) stays within 1e-2.
TEST_F(AttentionBf16Reference, StaysWithinBf16PrecisionOfFp32) {
  for (const Bf16AttentionCase& c : *cases_) {
    KernelRun<bf16> bf16_run = run_bf16(c);
    KernelRun<float> fp32_run = run_fp32(c);
    const std::string label = c.label() + " vs fp32";
    expect_close(label + ".out", to_float(bf16_run.out), testing::convert<double>(fp32_run.out),
                 1e-2);
    expect_close(label + ".lse", bf16_run.lse, testing::convert<double>(fp32_run.lse), 1e-2);
    expect_close(label + ".dqkv", to_float(bf16_run.dqkv), testing::convert<double>(fp32_run.dqkv),
                 1e-2);
  }
}

// A one-token sequence attends to itself with probability exactly 1: out = v and dv = dout keep
// their bf16 bits, and dq = dk = 0 exactly (dout·v − D with D = dout·out = dout·v).
TEST(AttentionBf16Degenerate, SingleTokenSequencesPassValuesThroughExactly) {
  const int lengths[] = {1, 0, 1, 1};
  const Batch packed(lengths);
  const int N = packed.num_tokens(), HS = 64, C = kHeads * HS;
  std::mt19937_64 rng(testing::fresh_seed());
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    const AttentionShape shape{kHeads, HS, mask};
    std::vector<bf16> qkv = to_bf16(testing::random_normal<float>(rng, 3 * N * C));
    std::vector<bf16> dout = to_bf16(testing::random_normal<float>(rng, N * C));
    KernelRun<bf16> run(qkv, dout, shape, packed);
    for (int n = 0; n < N; ++n) {
      for (int c = 0; c < C; ++c) {
        ASSERT_EQ(run.out[n * C + c].bits, qkv[(3 * n + 2) * C + c].bits) << mask_name(mask);
        ASSERT_EQ(run.dqkv[(3 * n + 2) * C + c].bits, dout[n * C + c].bits) << mask_name(mask);
        ASSERT_EQ(bf16_to_float(run.dqkv[(3 * n + 0) * C + c]), 0.0f) << mask_name(mask);
        ASSERT_EQ(bf16_to_float(run.dqkv[(3 * n + 1) * C + c]), 0.0f) << mask_name(mask);
      }
    }
  }
}

}  // namespace
}  // namespace recforge
