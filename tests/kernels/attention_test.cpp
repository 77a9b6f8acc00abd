#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "tests/kernels/packed_batch.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::Batch;
using testing::convert;
using testing::expect_close;
using testing::mask_name;
using testing::ReferenceCase;
using testing::type_name;

// Mixed lengths: empty, single-token, two-token, odd, tile-sized (64), one past a tile, long.
constexpr int kLengths[] = {1, 0, 7, 64, 65, 300, 2, 33};

// One head configuration's inputs (drawn as float) and PyTorch reference.
struct AttentionCase {
  AttentionShape shape;
  std::vector<float> qkv, dout;  // [N, 3, NH, HS], [N, NH, HS]
  std::vector<double> out, lse, dqkv;
  std::string label(const char* type) const {
    return std::string("attention.") + type + "." + mask_name(shape.mask) + ".NH" +
           std::to_string(shape.num_heads) + ".HS" + std::to_string(shape.head_size);
  }
};

struct AttentionData {
  Batch batch{kLengths};
  std::vector<AttentionCase> cases;  // every NH × HS × mask
};

AttentionData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  AttentionData data;
  const int N = data.batch.num_tokens();
  ReferenceCase ref("kernels.py", "attention");
  ref.put("offsets", data.batch.offsets, {static_cast<int64_t>(data.batch.offsets.size())});
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    for (int NH : {1, 2, 4}) {
      for (int HS : {32, 64, 128}) {
        AttentionCase c{{NH, HS, mask}};
        c.qkv = testing::random_normal<float>(rng, static_cast<size_t>(N) * 3 * NH * HS, 1.5);
        c.dout = testing::random_normal<float>(rng, static_cast<size_t>(N) * NH * HS);
        std::string p = testing::case_prefix(data.cases.size());
        ref.put(p + "qkv", c.qkv, {N, 3, NH, HS});
        ref.put(p + "dout", c.dout, {N, NH, HS});
        ref.put_scalar(p + "NH", NH);
        ref.put_scalar(p + "HS", HS);
        ref.put_scalar(p + "causal", mask == AttentionMask::kCausal ? 1.0 : 0.0);
        data.cases.push_back(std::move(c));
      }
    }
  }
  ref.put_scalar("num_cases", data.cases.size());
  ref.run();
  for (size_t i = 0; i < data.cases.size(); ++i) {
    std::string p = testing::case_prefix(i);
    data.cases[i].out = ref.result(p + "out");
    data.cases[i].lse = ref.result(p + "lse");
    data.cases[i].dqkv = ref.result(p + "dqkv");
  }
  return data;
}

// The kernel's forward (and, on request, backward) on poisoned outputs, element type T.
template <typename T>
struct KernelRun {
  std::vector<T> qkv, out, lse, dout, dqkv, delta;
  KernelRun(const AttentionCase& c, const Batch& batch, bool backward) : qkv(convert<T>(c.qkv)) {
    const size_t N = batch.num_tokens(), NH = c.shape.num_heads, C = c.shape.channels();
    Context ctx = Context::cpu();
    out.assign(N * C, NAN);
    lse.assign(N * NH, NAN);
    attention_forward(ctx, out.data(), lse.data(), qkv.data(), batch.view(), c.shape);
    if (!backward) return;
    dout = convert<T>(c.dout);
    dqkv.assign(N * 3 * C, NAN);
    delta.assign(N * NH, NAN);
    attention_backward(ctx, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                       lse.data(), batch.view(), c.shape);
  }
};

// The PyTorch references of every configuration are computed once and shared by the suite.
class AttentionReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<AttentionData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }

  template <typename T>
  void check_forward(AttentionMask mask, double tolerance) {
    for (const AttentionCase& c : data_->cases) {
      if (c.shape.mask != mask) continue;
      KernelRun<T> run(c, data_->batch, /*backward=*/false);
      expect_close(c.label(type_name<T>()) + ".out", run.out, c.out, tolerance);
      expect_close(c.label(type_name<T>()) + ".lse", run.lse, c.lse, tolerance);
    }
  }

  template <typename T>
  void check_backward(AttentionMask mask, double tolerance) {
    for (const AttentionCase& c : data_->cases) {
      if (c.shape.mask != mask) continue;
      KernelRun<T> run(c, data_->batch, /*backward=*/true);
      expect_close(c.label(type_name<T>()) + ".dqkv", run.dqkv, c.dqkv, tolerance);
    }
  }

  static inline std::unique_ptr<AttentionData> data_;
};

TEST_F(AttentionReference, CausalForwardMatchesPyTorch) {
  check_forward<float>(AttentionMask::kCausal, 1e-5);
}

TEST_F(AttentionReference, BidirectionalForwardMatchesPyTorch) {
  check_forward<float>(AttentionMask::kBidirectional, 1e-5);
}

TEST_F(AttentionReference, CausalBackwardMatchesPyTorch) {
  check_backward<float>(AttentionMask::kCausal, 1e-5);
}

TEST_F(AttentionReference, BidirectionalBackwardMatchesPyTorch) {
  check_backward<float>(AttentionMask::kBidirectional, 1e-5);
}

TEST_F(AttentionReference, CausalForwardInDoubleMatchesPyTorch) {
  check_forward<double>(AttentionMask::kCausal, 1e-12);
}

TEST_F(AttentionReference, BidirectionalForwardInDoubleMatchesPyTorch) {
  check_forward<double>(AttentionMask::kBidirectional, 1e-12);
}

TEST_F(AttentionReference, CausalBackwardInDoubleMatchesPyTorch) {
  check_backward<double>(AttentionMask::kCausal, 1e-12);
}

TEST_F(AttentionReference, BidirectionalBackwardInDoubleMatchesPyTorch) {
  check_backward<double>(AttentionMask::kBidirectional, 1e-12);
}

TEST(AttentionValidation, UnsupportedHeadSizeThrowsNamingIt) {
  const int lengths[] = {3};
  Batch batch(lengths);
  AttentionShape shape{2, 48, AttentionMask::kCausal};
  std::vector<float> qkv(3 * 3 * shape.channels(), 0.0f), out(3 * shape.channels());
  std::vector<float> lse(3 * 2), dqkv(qkv.size()), delta(lse.size());
  Context ctx = Context::cpu();
  try {
    attention_forward(ctx, out.data(), lse.data(), qkv.data(), batch.view(), shape);
    FAIL() << "attention_forward accepted head size 48";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("head size 48"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attention_backward(ctx, dqkv.data(), delta.data(), out.data(), qkv.data(),
                                  out.data(), lse.data(), batch.view(), shape),
               Error);
}

// Sequences of length 0 and 1 only: a single token attends to itself, so out = v exactly,
// lse = q·k/√HS, dv = dout and dq = dk = 0, with nothing non-finite anywhere.
TEST(AttentionDegenerate, ZeroAndOneTokenSequencesGiveFiniteOutputs) {
  const int lengths[] = {0, 1, 1, 0, 0, 1, 1, 0};
  Batch batch(lengths);
  const int N = batch.num_tokens(), NH = 2, HS = 64, C = NH * HS;
  std::mt19937_64 rng(testing::fresh_seed());
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    AttentionCase c{{NH, HS, mask}};
    c.qkv = testing::random_normal<float>(rng, N * 3 * C);
    c.dout = testing::random_normal<float>(rng, N * C);
    KernelRun<float> run(c, batch, /*backward=*/true);
    std::vector<float> v, dq, dk, dv;
    std::vector<double> v_ref, lse_ref;
    for (int n = 0; n < N; ++n) {
      const float* row = run.qkv.data() + n * 3 * C;
      const float* grad = run.dqkv.data() + n * 3 * C;
      v.insert(v.end(), row + 2 * C, row + 3 * C);
      dq.insert(dq.end(), grad, grad + C);
      dk.insert(dk.end(), grad + C, grad + 2 * C);
      dv.insert(dv.end(), grad + 2 * C, grad + 3 * C);
      for (int h = 0; h < NH; ++h) {
        double dot = 0.0;
        for (int d = 0; d < HS; ++d) dot += double(row[h * HS + d]) * row[C + h * HS + d];
        lse_ref.push_back(dot / std::sqrt(double(HS)));
      }
    }
    for (const auto* buffer : {&run.out, &run.lse, &run.dqkv}) {
      for (float x : *buffer) ASSERT_TRUE(std::isfinite(x)) << mask_name(mask);
    }
    std::string label = std::string("attention.float.") + mask_name(mask) + ".length<=1";
    double out_vs_v = testing::relative_error(run.out, convert<double>(v));
    double dv_vs_dout = testing::relative_error(dv, convert<double>(c.dout));
    testing::report_error(label + ".out vs v", out_vs_v);
    testing::report_error(label + ".dv vs dout", dv_vs_dout);
    expect_close(label + ".lse vs q.k/sqrt(HS)", run.lse, lse_ref, 1e-6);
    expect_close(label + ".dq (vs 0, absolute)", dq, std::vector<double>(dq.size(), 0.0), 1e-6);
    expect_close(label + ".dk (vs 0, absolute)", dk, std::vector<double>(dk.size(), 0.0), 1e-6);
    EXPECT_EQ(out_vs_v, 0.0);
    EXPECT_EQ(dv_vs_dout, 0.0);
  }
}

}  // namespace
}  // namespace recforge
