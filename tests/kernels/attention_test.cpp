// Flash attention over packed variable-length sequences, with fp32, double and bf16 storage, and
// grouped-query attention (KV < NH key/value heads; KV = NH is plain multi-head attention):
//  - the CPU backend against PyTorch on fresh random inputs: fp32 and double against
//    tests/reference/kernels.py (GQA by repeat_interleave of k and v over each group) for
//    NH/KV = 1/1, 2/2, 4/4, 9/3 (SmolLM2) and 4/1, bf16 against PyTorch running the same policy
//    (tests/reference/bf16_ops.py) and against the fp32 kernel on the unrounded inputs (GQA too);
//    head-size and group validation and sequences of length 0 and 1 (with GQA, dv of a kv head is
//    the sum of its group's dout);
//  - the CUDA backend against the CPU backend (suites *Gpu*), fp32 and bf16, for every head size,
//    both masks, with and without GQA, and a packed batch whose sequences have lengths 0, 1,
//    tile-boundary sizes and several hundred; bf16 also against the fp32 CPU kernel on the
//    unrounded inputs; one-token sequences and an empty batch.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// A packed batch: the host-side offsets of sequences with the given lengths.
struct Batch {
  std::vector<int32_t> offsets{0};
  int max_length = 0;
  explicit Batch(std::span<const int> lengths) {
    for (int length : lengths) {
      offsets.push_back(offsets.back() + length);
      max_length = std::max(max_length, length);
    }
  }
  int num_tokens() const { return offsets.back(); }
  // The batch with its offsets read from `offsets_at`: a copy of `offsets` on the kernel's device.
  PackedSequences view(const int32_t* offsets_at) const {
    return {offsets_at, static_cast<int>(offsets.size()) - 1, num_tokens(), max_length};
  }
  PackedSequences view() const { return view(offsets.data()); }
};

const char* mask_name(AttentionMask mask) {
  return mask == AttentionMask::kCausal ? "causal" : "bidirectional";
}

// ---------------------------------------------------------------------------------------------
// The CPU backend against PyTorch.

// "float", "double" or "bf16", to label the reported errors.
template <typename A>
const char* storage_name() {
  return std::is_same_v<A, bf16> ? "bf16" : type_name<A>();
}

// Inputs drawn as float, stored as A (rounded once for bf16).
template <typename A>
std::vector<A> as_storage(const std::vector<float>& values) {
  if constexpr (std::is_same_v<A, bf16>) {
    return to_bf16(values);
  } else {
    return convert<A>(values);
  }
}

// An output as the comparisons with a reference take it (bf16 widened to float).
template <typename A>
auto comparable(const std::vector<A>& values) {
  if constexpr (std::is_same_v<A, bf16>) {
    return to_float(values);
  } else {
    return values;
  }
}

// The CPU kernel's forward (and, on request, backward) with storage A, on outputs poisoned with NaN
// bytes; lse and delta in the math type (double with double storage, float otherwise).
template <typename A>
struct KernelRun {
  using Math = std::conditional_t<std::is_same_v<A, double>, double, float>;
  std::vector<A> qkv, dout, out, dqkv;
  std::vector<Math> lse, delta;
  KernelRun(std::vector<A> qkv_in, std::vector<A> dout_in, const AttentionShape& shape,
            const Batch& batch, bool backward)
      : qkv(std::move(qkv_in)), dout(std::move(dout_in)) {
    const size_t N = batch.num_tokens(), NH = shape.num_heads, C = shape.channels();
    const Context ctx = Context::cpu();
    out = poisoned<A>(N * C);
    lse = poisoned<Math>(N * NH);
    attention_forward(ctx, out.data(), lse.data(), qkv.data(), batch.view(), shape);
    if (!backward) return;
    dqkv = poisoned<A>(N * shape.qkv_channels());
    delta = poisoned<Math>(N * NH);
    attention_backward(ctx, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                       lse.data(), batch.view(), shape);
  }
};

// Query heads and key/value heads of one configuration.
struct Heads {
  int num_heads, num_kv_heads;
};

// One head configuration's inputs (drawn as float) and PyTorch reference.
struct AttentionCase {
  AttentionShape shape;
  std::vector<float> qkv, dout;  // [N, NH + 2·KV, HS], [N, NH, HS]
  std::vector<double> out, lse, dqkv;
  std::string label(const char* type) const {
    return cat("attention.", type, ".", mask_name(shape.mask), ".NH", shape.num_heads, ".KV",
               shape.kv_heads(), ".HS", shape.head_size);
  }
};

template <typename A>
KernelRun<A> run_case(const AttentionCase& c, const Batch& batch, bool backward) {
  return KernelRun<A>(as_storage<A>(c.qkv), as_storage<A>(c.dout), c.shape, batch, backward);
}

// Draws the inputs of every mask × number of heads × head size over `batch` and hands them to
// `ref` (rounded to bf16 when `bf16_inputs`), case i under the prefix "c<i>_".
std::vector<AttentionCase> put_cases(ReferenceCase& ref, const Batch& batch,
                                     std::span<const Heads> heads, bool bf16_inputs) {
  std::mt19937_64 rng(fresh_seed());
  const int N = batch.num_tokens();
  std::vector<AttentionCase> cases;
  ref.put("offsets", batch.offsets, {static_cast<int64_t>(batch.offsets.size())});
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    for (const auto [NH, KV] : heads) {
      for (int HS : {32, 64, 128}) {
        AttentionCase c{{NH, HS, mask, KV}};
        c.qkv = random_normal<float>(rng, static_cast<size_t>(N) * c.shape.qkv_channels(), 1.5);
        c.dout = random_normal<float>(rng, static_cast<size_t>(N) * NH * HS);
        const std::string p = case_prefix(cases.size());
        // Without grouping in the classic [N, 3, NH, HS] form, which bf16_ops.py reads.
        const std::vector<int64_t> qkv_dims = KV == NH ? std::vector<int64_t>{N, 3, NH, HS}
                                                       : std::vector<int64_t>{N, NH + 2 * KV, HS};
        ref.put(p + "qkv", bf16_inputs ? rounded_to_bf16(c.qkv) : c.qkv, qkv_dims);
        ref.put(p + "dout", bf16_inputs ? rounded_to_bf16(c.dout) : c.dout, {N, NH, HS});
        ref.put_scalar(p + "NH", NH);
        ref.put_scalar(p + "KV", KV);
        ref.put_scalar(p + "HS", HS);
        ref.put_scalar(p + "causal", mask == AttentionMask::kCausal ? 1.0 : 0.0);
        cases.push_back(std::move(c));
      }
    }
  }
  ref.put_scalar("num_cases", cases.size());
  return cases;
}

// The cases of put_cases with the outputs of the PyTorch reference `op` of
// tests/reference/`script`.
std::vector<AttentionCase> reference_cases(const char* script, const char* op, const Batch& batch,
                                           std::span<const Heads> heads, bool bf16_inputs) {
  ReferenceCase ref(script, op);
  std::vector<AttentionCase> cases = put_cases(ref, batch, heads, bf16_inputs);
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = case_prefix(i);
    cases[i].out = ref.result(p + "out");
    cases[i].lse = ref.result(p + "lse");
    cases[i].dqkv = ref.result(p + "dqkv");
  }
  return cases;
}

// fp32 and double: mixed lengths: empty, single-token, two-token, odd, tile-sized (64), one past a
// tile, long; 1, 2 and 4 heads without grouping, SmolLM2's 9 query heads on 3 kv heads, and 4 query
// heads sharing one (multi-query attention).
constexpr int kLengths[] = {1, 0, 7, 64, 65, 300, 2, 33};
constexpr Heads kHeads[] = {{1, 1}, {2, 2}, {4, 4}, {9, 3}, {4, 1}};

// bf16: single tokens (first and last), empty, short, a tile (64) and one past it, long; 2 heads
// (bf16_ops.py reads the ungrouped layout; grouping under bf16 is checked against the fp32 kernel).
constexpr int kBf16Lengths[] = {1, 0, 7, 64, 65, 200, 2, 33, 1};
constexpr Heads kBf16Heads[] = {{2, 2}};

std::vector<AttentionCase> fp32_reference_cases() {
  return reference_cases("kernels.py", "attention", Batch(kLengths), kHeads,
                         /*bf16_inputs=*/false);
}

// The reference of the bf16 policy on the bf16 roundings of the inputs.
std::vector<AttentionCase> bf16_reference_cases() {
  return reference_cases("bf16_ops.py", "attention_bf16", Batch(kBf16Lengths), kBf16Heads,
                         /*bf16_inputs=*/true);
}

// out and lse of the kernel with storage A against the reference, for the cases with `mask`.
template <typename A>
void expect_forward_matches(const std::vector<AttentionCase>& cases, const Batch& batch,
                            AttentionMask mask, double out_tolerance, double lse_tolerance) {
  const char* lse_name = std::is_same_v<A, bf16> ? ".lse (fp32)" : ".lse";
  for (const AttentionCase& c : cases) {
    if (c.shape.mask != mask) continue;
    const KernelRun<A> run = run_case<A>(c, batch, /*backward=*/false);
    expect_close(c.label(storage_name<A>()) + ".out", comparable(run.out), c.out, out_tolerance);
    expect_close(c.label(storage_name<A>()) + lse_name, run.lse, c.lse, lse_tolerance);
  }
}

// dqkv of the kernel with storage A against the reference, for the cases with `mask`.
template <typename A>
void expect_backward_matches(const std::vector<AttentionCase>& cases, const Batch& batch,
                             AttentionMask mask, double tolerance) {
  for (const AttentionCase& c : cases) {
    if (c.shape.mask != mask) continue;
    const KernelRun<A> run = run_case<A>(c, batch, /*backward=*/true);
    expect_close(c.label(storage_name<A>()) + ".dqkv", comparable(run.dqkv), c.dqkv, tolerance);
  }
}

// The fp32 references of every configuration, computed once and shared by the suite (and by its
// double-precision tests).
class AttentionReference : public SharedReferenceCases<AttentionCase, fp32_reference_cases> {
 protected:
  template <typename T>
  void check_forward(AttentionMask mask, double tolerance) {
    expect_forward_matches<T>(*cases_, Batch(kLengths), mask, tolerance, tolerance);
  }

  template <typename T>
  void check_backward(AttentionMask mask, double tolerance) {
    expect_backward_matches<T>(*cases_, Batch(kLengths), mask, tolerance);
  }
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

// The references of the bf16 policy (qkv, out, dout, dqkv bf16; lse, delta and the math fp32),
// computed once and shared by the suite.
class AttentionBf16Reference : public SharedReferenceCases<AttentionCase, bf16_reference_cases> {
 protected:
  void check_forward(AttentionMask mask) {
    expect_forward_matches<bf16>(*cases_, Batch(kBf16Lengths), mask, 1e-2, 1e-5);
  }

  void check_backward(AttentionMask mask) {
    expect_backward_matches<bf16>(*cases_, Batch(kBf16Lengths), mask, 1e-2);
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
  const Batch batch(kBf16Lengths);
  for (const AttentionCase& c : *cases_) {
    const KernelRun<bf16> bf16_run = run_case<bf16>(c, batch, /*backward=*/true);
    const KernelRun<float> fp32_run = run_case<float>(c, batch, /*backward=*/true);
    const std::string label = c.label("bf16") + " vs fp32";
    expect_close(label + ".out", to_float(bf16_run.out), convert<double>(fp32_run.out), 1e-2);
    expect_close(label + ".lse", bf16_run.lse, convert<double>(fp32_run.lse), 1e-2);
    expect_close(label + ".dqkv", to_float(bf16_run.dqkv), convert<double>(fp32_run.dqkv), 1e-2);
  }
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
  std::mt19937_64 rng(fresh_seed());
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    std::vector<float> qkv = random_normal<float>(rng, N * 3 * C);
    std::vector<float> dout = random_normal<float>(rng, N * C);
    const KernelRun<float> run(qkv, dout, {NH, HS, mask}, batch, /*backward=*/true);
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
    double out_vs_v = relative_error(run.out, convert<double>(v));
    double dv_vs_dout = relative_error(dv, convert<double>(dout));
    report_error(label + ".out vs v", out_vs_v);
    report_error(label + ".dv vs dout", dv_vs_dout);
    expect_close(label + ".lse vs q.k/sqrt(HS)", run.lse, lse_ref, 1e-6);
    expect_close(label + ".dq (vs 0, absolute)", dq, std::vector<double>(dq.size(), 0.0), 1e-6);
    expect_close(label + ".dk (vs 0, absolute)", dk, std::vector<double>(dk.size(), 0.0), 1e-6);
    EXPECT_EQ(out_vs_v, 0.0);
    EXPECT_EQ(dv_vs_dout, 0.0);
  }
}

// A one-token sequence attends to itself with probability exactly 1: out = v and dv = dout keep
// their bf16 bits, and dq = dk = 0 exactly (dout·v − D with D = dout·out = dout·v).
TEST(AttentionBf16Degenerate, SingleTokenSequencesPassValuesThroughExactly) {
  const int lengths[] = {1, 0, 1, 1};
  const Batch batch(lengths);
  const int N = batch.num_tokens(), NH = 2, HS = 64, C = NH * HS;
  std::mt19937_64 rng(fresh_seed());
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    std::vector<bf16> qkv = to_bf16(random_normal<float>(rng, 3 * N * C));
    std::vector<bf16> dout = to_bf16(random_normal<float>(rng, N * C));
    const KernelRun<bf16> run(qkv, dout, {NH, HS, mask}, batch, /*backward=*/true);
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

TEST(AttentionValidation, KvHeadsThatDoNotDivideQueryHeadsThrowNamingThem) {
  const int lengths[] = {2};
  const Batch batch(lengths);
  const AttentionShape shape{9, 32, AttentionMask::kCausal, 2};
  std::vector<float> qkv(2 * shape.qkv_channels()), out(2 * shape.channels()), lse(2 * 9);
  try {
    attention_forward(Context::cpu(), out.data(), lse.data(), qkv.data(), batch.view(), shape);
    FAIL() << "attention_forward accepted 9 query heads on 2 kv heads";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("num_kv_heads 2"), std::string::npos) << e.what();
  }
}

// One-token sequences with 6 query heads on 2 kv heads: query head h outputs v of kv head h / 3
// exactly, and dv of kv head g is the sum of the dout of its group's 3 query heads; dq = dk = 0.
TEST(AttentionDegenerate, GroupedSingleTokensSumValueGradientsOverTheGroup) {
  const int lengths[] = {1, 0, 1, 1};
  const Batch batch(lengths);
  const AttentionShape shape{6, 32, AttentionMask::kCausal, 2};
  const int N = batch.num_tokens(), NH = 6, KV = 2, G = 3, HS = 32;
  const int QKV = shape.qkv_channels(), C = shape.channels();
  std::mt19937_64 rng(fresh_seed());
  std::vector<double> qkv = random_normal<double>(rng, N * QKV);
  std::vector<double> dout = random_normal<double>(rng, N * C);
  const KernelRun<double> run(qkv, dout, shape, batch, /*backward=*/true);
  std::vector<double> v_of_head, dv_sum, dqk_zero;
  std::vector<double> out = run.out, dv, dqk;
  for (int n = 0; n < N; ++n) {
    for (int h = 0; h < NH; ++h) {
      const double* v = qkv.data() + n * QKV + (NH + KV + h / G) * HS;
      v_of_head.insert(v_of_head.end(), v, v + HS);
    }
    for (int g = 0; g < KV; ++g) {
      for (int d = 0; d < HS; ++d) {
        double sum = 0.0;
        for (int h = g * G; h < (g + 1) * G; ++h) sum += dout[n * C + h * HS + d];
        dv_sum.push_back(sum);
      }
    }
    const double* grad = run.dqkv.data() + n * QKV;
    dv.insert(dv.end(), grad + (NH + KV) * HS, grad + QKV);
    dqk.insert(dqk.end(), grad, grad + (NH + KV) * HS);
  }
  const std::string label = "attention.double.causal.NH6.KV2.length<=1";
  expect_close(label + ".out vs v of the group", out, v_of_head, 1e-15);
  expect_close(label + ".dv vs group sum of dout", dv, dv_sum, 1e-15);
  expect_close(label + ".dq,dk (vs 0, absolute)", dqk, std::vector<double>(dqk.size(), 0.0), 1e-12);
}

// Grouped attention with bf16 storage against the fp32 kernel on the unrounded inputs: within
// bf16 precision, like the ungrouped cases against bf16_ops.py.
TEST(AttentionBf16Grouped, StaysWithinBf16PrecisionOfFp32) {
  const Batch batch(kBf16Lengths);
  std::mt19937_64 rng(fresh_seed());
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    AttentionCase c{{9, 64, mask, 3}};
    const size_t N = batch.num_tokens();
    c.qkv = random_normal<float>(rng, N * c.shape.qkv_channels(), 1.5);
    c.dout = random_normal<float>(rng, N * c.shape.channels());
    const KernelRun<bf16> bf16_run = run_case<bf16>(c, batch, /*backward=*/true);
    const KernelRun<float> fp32_run = run_case<float>(c, batch, /*backward=*/true);
    const std::string label = c.label("bf16") + " vs fp32";
    expect_close(label + ".out", to_float(bf16_run.out), convert<double>(fp32_run.out), 1e-2);
    expect_close(label + ".lse", bf16_run.lse, convert<double>(fp32_run.lse), 1e-2);
    expect_close(label + ".dqkv", to_float(bf16_run.dqkv), convert<double>(fp32_run.dqkv), 1e-2);
  }
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend.

// What the GPU suite sets per storage type: the seeds of the inputs, the tolerances and the tag of
// the printed error names.
template <typename T>
struct AttentionGpuTraits;

template <>
struct AttentionGpuTraits<float> {
  static constexpr const char* kTag = "";
  static constexpr uint32_t kForwardQkvSeed = 1, kBackwardQkvSeed = 2, kDoutSeed = 3;
  static constexpr double kOutTolerance = 1e-5, kDeltaTolerance = 1e-5, kDqkvTolerance = 1e-4;
};

template <>
struct AttentionGpuTraits<bf16> {
  static constexpr const char* kTag = " bf16";
  static constexpr uint32_t kForwardQkvSeed = 11, kBackwardQkvSeed = 11, kDoutSeed = 12;
  static constexpr double kOutTolerance = 1e-2;
  // delta reads the stored bf16 out, whose two copies may differ by a rounding flip.
  static constexpr double kDeltaTolerance = 1e-3, kDqkvTolerance = 1e-2;
};

// One parameter of the GPU suite: the storage type of qkv, out, dout and dqkv, a head size, a mask
// and the query and key/value heads.
struct AttentionGpuCase {
  bool bf16_storage;  // else fp32
  int head_size;
  AttentionMask mask;
  Heads heads;
};

const char* storage_tag(const AttentionGpuCase& c) {
  return c.bf16_storage ? dtype_name<bf16>() : dtype_name<float>();
}

void PrintTo(const AttentionGpuCase& c, std::ostream* os) {
  *os << storage_tag(c) << " " << mask_name(c.mask) << " HS=" << c.head_size
      << " NH=" << c.heads.num_heads << " KV=" << c.heads.num_kv_heads;
}

// Every storage type × mask × head size with 3 ungrouped heads; every storage type × mask with
// SmolLM2's grouping (9 query heads on 3 kv heads, HS 64) and with one kv head for 4 query heads.
std::vector<AttentionGpuCase> attention_gpu_cases() {
  std::vector<AttentionGpuCase> cases;
  for (bool bf16_storage : {false, true}) {
    for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
      for (int head_size : {32, 64, 128}) cases.push_back({bf16_storage, head_size, mask, {3, 3}});
      cases.push_back({bf16_storage, 64, mask, {9, 3}});
      cases.push_back({bf16_storage, 128, mask, {4, 1}});
    }
  }
  return cases;
}

// Test names: fp32_causal_HS32_NH3_KV3, ..., bf16_bidirectional_HS128_NH4_KV1.
std::string attention_gpu_case_name(const ::testing::TestParamInfo<AttentionGpuCase>& info) {
  const AttentionGpuCase& c = info.param;
  return cat(storage_tag(c), "_", mask_name(c.mask), "_HS", c.head_size, "_NH", c.heads.num_heads,
             "_KV", c.heads.num_kv_heads);
}

// Sequence lengths of the GPU suite's packed batch: empty sequences, single tokens, tile edges
// (31..33, 63..65, 128, 129) and long ones.
constexpr int kGpuLengths[] = {0, 1, 300, 17, 64, 65, 0, 129, 1, 33, 200, 31, 128, 63, 0};

class AttentionGpuTest : public GpuTestWithParam<AttentionGpuCase> {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    offsets_ = std::make_unique<Mirrored<int32_t>>(std::span<const int32_t>(batch_.offsets));
  }
  PackedSequences seqs(const Context& ctx) { return batch_.view(offsets_->on(ctx)); }
  AttentionShape shape() const {
    const AttentionGpuCase& c = GetParam();
    return {c.heads.num_heads, c.head_size, c.mask, c.heads.num_kv_heads};
  }
  // " causal HS=64 NH=3 KV=3" for fp32, " bf16 causal HS=64 NH=3 KV=3": the suffix of the printed
  // error names.
  template <typename T>
  std::string label() const {
    const AttentionGpuCase& c = GetParam();
    return cat(AttentionGpuTraits<T>::kTag, " ", mask_name(c.mask), " HS=", c.head_size,
               " NH=", c.heads.num_heads, " KV=", c.heads.num_kv_heads);
  }
  size_t qkv_size() const {
    return static_cast<size_t>(batch_.num_tokens()) * shape().qkv_channels();
  }
  size_t out_size() const { return static_cast<size_t>(batch_.num_tokens()) * channels(); }
  size_t lse_size() const { return static_cast<size_t>(batch_.num_tokens()) * shape().num_heads; }

  // The forward on both backends, storage T, outputs poisoned.
  template <typename T>
  void check_forward() {
    using Traits = AttentionGpuTraits<T>;
    const std::vector<float> qkv_values =
        random_floats(qkv_size(), Traits::kForwardQkvSeed, -2.0f, 2.0f);
    auto qkv = mirrored(stored_as<T>(qkv_values));
    Mirrored<T> out(out_size());
    Mirrored<float> lse(lse_size());
    out.poison();
    lse.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
    }
    expect_close("attention.out" + label<T>(), out, Traits::kOutTolerance);
    expect_close("attention.lse" + label<T>(), lse, 1e-5);
    if constexpr (std::is_same_v<T, bf16>) {
      expect_close("attention.out" + label<T>() + " vs fp32 cpu", out.cuda.download(),
                   fp32_cpu_out(qkv_values), 1e-2);
    }
  }

  // The forward and backward on both backends, storage T, outputs poisoned; then the backward
  // again on the GPU, which must give the same bits.
  template <typename T>
  void check_backward() {
    using Traits = AttentionGpuTraits<T>;
    const std::vector<float> qkv_values =
        random_floats(qkv_size(), Traits::kBackwardQkvSeed, -2.0f, 2.0f);
    const std::vector<float> dout_values = random_floats(out_size(), Traits::kDoutSeed);
    auto qkv = mirrored(stored_as<T>(qkv_values));
    auto dout = mirrored(stored_as<T>(dout_values));
    Mirrored<T> out(out_size()), dqkv(qkv_size());
    Mirrored<float> lse(lse_size()), delta(lse_size());
    out.poison();
    dqkv.poison();
    lse.poison();
    delta.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
      attention_backward(*ctx, dqkv.on(*ctx), delta.on(*ctx), dout.on(*ctx), qkv.on(*ctx),
                         out.on(*ctx), lse.on(*ctx), seqs(*ctx), shape());
    }
    expect_close("attention.delta" + label<T>(), delta, Traits::kDeltaTolerance);
    const std::vector<float> gpu = widened(dqkv.cuda.download());
    const std::vector<float> cpu = widened(dqkv.cpu.download());
    expect_close("attention.dqkv" + label<T>(), gpu, cpu, Traits::kDqkvTolerance);
    if constexpr (std::is_same_v<T, bf16>) {
      expect_close("attention.dqkv" + label<T>() + " vs fp32 cpu", gpu,
                   fp32_cpu_dqkv(qkv_values, dout_values), 1e-2);
    }
    expect_parts_close(label<T>(), gpu, cpu, Traits::kDqkvTolerance);

    // A second run, on poisoned output, gives the same bits.
    Mirrored<T> again(qkv_size());
    again.poison();
    attention_backward(cuda_, again.cuda.data(), delta.cuda.data(), dout.cuda.data(),
                       qkv.cuda.data(), out.cuda.data(), lse.cuda.data(), seqs(cuda_), shape());
    EXPECT_TRUE(bitwise_equal(again.cuda.download(), dqkv.cuda.download()));
  }

 private:
  size_t channels() const { return shape().channels(); }

  // The fp32 CPU kernel's out on the unrounded qkv.
  std::vector<float> fp32_cpu_out(const std::vector<float>& qkv) {
    std::vector<float> out(out_size()), lse(lse_size());
    attention_forward(cpu_, out.data(), lse.data(), qkv.data(), seqs(cpu_), shape());
    return out;
  }

  // The fp32 CPU kernel's dqkv on the unrounded qkv and dout.
  std::vector<float> fp32_cpu_dqkv(const std::vector<float>& qkv, const std::vector<float>& dout) {
    std::vector<float> out(out_size()), lse(lse_size()), delta(lse_size()), dqkv(qkv.size());
    attention_forward(cpu_, out.data(), lse.data(), qkv.data(), seqs(cpu_), shape());
    attention_backward(cpu_, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                       lse.data(), seqs(cpu_), shape());
    return dqkv;
  }

  // dq, dk and dv of two packed gradients [num_tokens, NH + 2·KV, HS] checked one by one, as
  // "attention.dq<label>" etc.: a bug confined to one part must not hide in the total.
  void expect_parts_close(const std::string& label, const std::vector<float>& gpu,
                          const std::vector<float>& cpu, double tolerance) const {
    const size_t HS = shape().head_size, row = shape().qkv_channels();
    const size_t NH = shape().num_heads, KV = shape().kv_heads();
    const size_t begins[] = {0, NH * HS, (NH + KV) * HS}, widths[] = {NH * HS, KV * HS, KV * HS};
    for (int part = 0; part < 3; ++part) {
      std::vector<float> gpu_part, cpu_part;
      for (size_t n = 0; n < static_cast<size_t>(batch_.num_tokens()); ++n) {
        const size_t at = n * row + begins[part];
        gpu_part.insert(gpu_part.end(), gpu.begin() + at, gpu.begin() + at + widths[part]);
        cpu_part.insert(cpu_part.end(), cpu.begin() + at, cpu.begin() + at + widths[part]);
      }
      expect_close(cat("attention.d", "qkv"[part], label), gpu_part, cpu_part, tolerance);
    }
  }

  const Batch batch_{kGpuLengths};
  std::unique_ptr<Mirrored<int32_t>> offsets_;
};

TEST_P(AttentionGpuTest, ForwardMatchesCpu) {
  if (GetParam().bf16_storage) {
    check_forward<bf16>();
  } else {
    check_forward<float>();
  }
}

TEST_P(AttentionGpuTest, BackwardMatchesCpuAndIsDeterministic) {
  if (GetParam().bf16_storage) {
    check_backward<bf16>();
  } else {
    check_backward<float>();
  }
}

INSTANTIATE_TEST_SUITE_P(StorageTypesHeadSizesAndMasks, AttentionGpuTest,
                         ::testing::ValuesIn(attention_gpu_cases()), attention_gpu_case_name);

// Four one-token sequences (causal, two heads of 64) through attention_forward and
// attention_backward on the GPU, qkv, dout, out and dqkv stored as T, out and dqkv poisoned
// beforehand.
template <typename T>
struct SingleTokenAttention {
  static constexpr int kHeadSize = 64, kHeads = 2, C = kHeadSize * kHeads, B = 4;
  std::vector<T> qkv, dout;  // inputs [B, 3, C] and [B, C]
  std::vector<T> out, dqkv;  // results [B, C] and [B, 3, C]

  explicit SingleTokenAttention(const Context& cuda)
      : qkv(stored_as<T>(random_floats(static_cast<size_t>(B) * 3 * C, 1))),
        dout(stored_as<T>(random_floats(static_cast<size_t>(B) * C, 2))) {
    const int lengths[B] = {1, 1, 1, 1};
    const Batch batch(lengths);
    Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(batch.offsets));
    const PackedSequences seqs = batch.view(offsets_gpu.data());
    const AttentionShape shape{kHeads, kHeadSize, AttentionMask::kCausal};
    Buffer<T> qkv_gpu(Device::kCuda, std::span<const T>(qkv));
    Buffer<T> dout_gpu(Device::kCuda, std::span<const T>(dout));
    Buffer<T> out_gpu(Device::kCuda, B * C), dqkv_gpu(Device::kCuda, B * 3 * C);
    Buffer<float> lse(Device::kCuda, B * kHeads), delta(Device::kCuda, B * kHeads);
    fill_bytes(Device::kCuda, out_gpu.data(), 0xFF, out_gpu.bytes());
    fill_bytes(Device::kCuda, dqkv_gpu.data(), 0xFF, dqkv_gpu.bytes());
    attention_forward(cuda, out_gpu.data(), lse.data(), qkv_gpu.data(), seqs, shape);
    attention_backward(cuda, dqkv_gpu.data(), delta.data(), dout_gpu.data(), qkv_gpu.data(),
                       out_gpu.data(), lse.data(), seqs, shape);
    out = out_gpu.download();
    dqkv = dqkv_gpu.download();
  }
};

template <typename T>
class AttentionSingleTokenGpuTest : public GpuTest {};

// Typed test names: fp32, bf16.
struct StorageTypeName {
  template <typename T>
  static std::string GetName(int) {
    return dtype_name<T>();
  }
};

using StorageTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(AttentionSingleTokenGpuTest, StorageTypes, StorageTypeName);

// A one-token sequence attends to itself with probability exactly 1: out = v and dv = dout (bit
// for bit in bf16), and dq = dk = 0 up to the rounding of dP − D = dout·v − D.
TYPED_TEST(AttentionSingleTokenGpuTest, SequencesPassValuesThrough) {
  const SingleTokenAttention<TypeParam> run(this->cuda_);
  constexpr int B = run.B, C = run.C;
  for (int n = 0; n < B; ++n) {
    for (int c = 0; c < C; ++c) {
      const TypeParam out = run.out[n * C + c], v = run.qkv[(3 * n + 2) * C + c];
      const TypeParam dv = run.dqkv[(3 * n + 2) * C + c], dout = run.dout[n * C + c];
      if constexpr (std::is_same_v<TypeParam, bf16>) {
        EXPECT_EQ(out.bits, v.bits);
        EXPECT_EQ(dv.bits, dout.bits);
      } else {
        EXPECT_NEAR(out, v, 1e-6);
        EXPECT_NEAR(dv, dout, 1e-5);
      }
      EXPECT_NEAR(load_as_float(run.dqkv[(3 * n + 0) * C + c]), 0.0f, 1e-5);
      EXPECT_NEAR(load_as_float(run.dqkv[(3 * n + 1) * C + c]), 0.0f, 1e-5);
    }
  }
}

class AttentionEdgeGpuTest : public GpuTest {};

// A batch of empty sequences runs without touching its (null) arrays.
TEST_F(AttentionEdgeGpuTest, EmptyBatchDoesNothing) {
  const int lengths[] = {0, 0};
  const Batch batch(lengths);
  Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(batch.offsets));
  const PackedSequences seqs = batch.view(offsets_gpu.data());
  const AttentionShape shape{2, 32, AttentionMask::kBidirectional};
  float* const none = nullptr;
  attention_forward(cuda_, none, none, none, seqs, shape);
  attention_backward(cuda_, none, none, none, none, none, none, seqs, shape);
  cuda_.synchronize();
}

}  // namespace
}  // namespace recforge::testing
