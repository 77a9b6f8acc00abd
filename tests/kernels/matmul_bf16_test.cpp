// The dense layer with bf16 operands (kernels/matmul.h) against PyTorch written with the same
// policy (tests/reference/bf16.py): bf16-rounded inputs upcast to float32, float32 matmul, a bf16
// output rounded once; and against the pure fp32 layer on the unrounded inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/matmul.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::expect_close;
using testing::poisoned;
using testing::ReferenceCase;
using testing::to_bf16;
using testing::to_float;

struct Shape {
  int N, C, OC;
};

// Odd N and OC (uneven per-thread slices), a single row, a wider layer.
constexpr Shape kShapes[] = {{257, 192, 97}, {1, 16, 8}, {101, 33, 65}, {512, 128, 384}};

// The bar for a bf16 result: ~1e-3 expected (one-ulp rounding flips, bf16 spacing 2⁻⁸).
constexpr double kBf16Tolerance = 1e-2;
// fp32 results from the same bf16 operands differ from PyTorch's only in summation order.
constexpr double kFp32Tolerance = 1e-5;

const char* const kReferenceNames[] = {
    "out_f32",   "out_f32_nobias", "out_bf16",  "out_bf16_nobias", "dinp_f32",
    "dinp_bf16", "dweight",        "dbias",     "out_fp32",        "out_fp32_nobias",
    "dinp_fp32", "dweight_fp32",   "dbias_fp32"};

struct Bf16MatmulCase {
  Shape shape;
  std::vector<float> inp, weight, bias, dout, dweight0, dbias0;
  std::map<std::string, std::vector<double>> ref;
};

std::vector<Bf16MatmulCase> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  ReferenceCase ref("bf16.py", "matmul");
  ref.put_scalar("num_cases", std::size(kShapes));
  std::vector<Bf16MatmulCase> cases;
  for (const Shape& s : kShapes) {
    const std::string p = testing::case_prefix(cases.size());
    Bf16MatmulCase c{s, {}, {}, {}, {}, {}, {}, {}};
    c.inp = testing::random_normal<float>(rng, static_cast<size_t>(s.N) * s.C);
    c.weight = testing::random_normal<float>(rng, static_cast<size_t>(s.OC) * s.C, 0.1);
    c.bias = testing::random_normal<float>(rng, s.OC);
    c.dout = testing::random_normal<float>(rng, static_cast<size_t>(s.N) * s.OC);
    c.dweight0 = testing::random_normal<float>(rng, static_cast<size_t>(s.OC) * s.C);
    c.dbias0 = testing::random_normal<float>(rng, s.OC);
    ref.put(p + "inp", c.inp, {s.N, s.C});
    ref.put(p + "weight", c.weight, {s.OC, s.C});
    ref.put(p + "bias", c.bias, {s.OC});
    ref.put(p + "dout", c.dout, {s.N, s.OC});
    ref.put(p + "dweight0", c.dweight0, {s.OC, s.C});
    ref.put(p + "dbias0", c.dbias0, {s.OC});
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    for (const char* name : kReferenceNames) {
      cases[i].ref[name] = ref.result(testing::case_prefix(i) + name);
    }
  }
  return cases;
}

std::string label_of(const Shape& s, const char* what) {
  return concat("matmul.bf16 ", what, " N=", s.N, " C=", s.C, " OC=", s.OC);
}

// The bf16 operands of one case and its backward run with output type Dinp: dinp poisoned, dweight
// and dbias starting from their initial values; the gradients not wanted are passed as null.
template <typename Dinp>
struct Bf16Backward {
  std::vector<Dinp> dinp;
  std::vector<float> dweight, dbias;
  Bf16Backward(const Bf16MatmulCase& c, bool want_dinp, bool want_dweight, bool want_dbias)
      : dinp(poisoned<Dinp>(c.inp.size())), dweight(c.dweight0), dbias(c.dbias0) {
    const Shape& s = c.shape;
    std::vector<bf16> dout = to_bf16(c.dout), inp = to_bf16(c.inp), weight = to_bf16(c.weight);
    matmul_backward(Context::cpu(), want_dinp ? dinp.data() : nullptr,
                    want_dweight ? dweight.data() : nullptr, want_dbias ? dbias.data() : nullptr,
                    dout.data(), inp.data(), weight.data(), s.N, s.C, s.OC);
  }
  std::vector<float> dinp_as_float() const {
    if constexpr (std::is_same_v<Dinp, bf16>) {
      return to_float(dinp);
    } else {
      return dinp;
    }
  }
};

class MatmulBf16Reference : public testing::SharedReferenceCases<Bf16MatmulCase, make_cases> {
 protected:
  // out = inp · weightᵀ (+ bias) with bf16 operands and an Out output (the bias of type Out).
  template <typename Out>
  static std::vector<float> forward(const Bf16MatmulCase& c, bool with_bias) {
    const Shape& s = c.shape;
    std::vector<bf16> inp = to_bf16(c.inp), weight = to_bf16(c.weight);
    std::vector<Out> out = poisoned<Out>(static_cast<size_t>(s.N) * s.OC);
    if constexpr (std::is_same_v<Out, bf16>) {
      std::vector<bf16> bias = to_bf16(c.bias);
      matmul_forward(Context::cpu(), out.data(), inp.data(), weight.data(),
                     with_bias ? bias.data() : nullptr, s.N, s.C, s.OC);
      return to_float(out);
    } else {
      matmul_forward(Context::cpu(), out.data(), inp.data(), weight.data(),
                     with_bias ? c.bias.data() : nullptr, s.N, s.C, s.OC);
      return out;
    }
  }

  template <typename Out>
  void check_forward(const char* ref_name, double tolerance) {
    for (const Bf16MatmulCase& c : *cases_) {
      for (bool with_bias : {true, false}) {
        const std::string suffix = with_bias ? "" : "_nobias";
        const std::string what = concat(dtype_name<Out>(), " out", with_bias ? "" : " (no bias)");
        std::vector<float> out = forward<Out>(c, with_bias);
        expect_close(label_of(c.shape, what.c_str()), out, c.ref.at(ref_name + suffix), tolerance);
        expect_close(label_of(c.shape, (what + " vs fp32").c_str()), out,
                     c.ref.at("out_fp32" + suffix), kBf16Tolerance);
      }
    }
  }

  template <typename Dinp>
  void check_backward(const char* dinp_ref, double dinp_tolerance) {
    for (const Bf16MatmulCase& c : *cases_) {
      Bf16Backward<Dinp> b(c, true, true, true);
      const std::string dinp_what = concat(dtype_name<Dinp>(), " dinp");
      const std::vector<float> dinp = b.dinp_as_float();
      expect_close(label_of(c.shape, dinp_what.c_str()), dinp, c.ref.at(dinp_ref), dinp_tolerance);
      expect_close(label_of(c.shape, "dweight"), b.dweight, c.ref.at("dweight"), kFp32Tolerance);
      expect_close(label_of(c.shape, "dbias"), b.dbias, c.ref.at("dbias"), kFp32Tolerance);
      expect_close(label_of(c.shape, (dinp_what + " vs fp32").c_str()), dinp, c.ref.at("dinp_fp32"),
                   kBf16Tolerance);
      expect_close(label_of(c.shape, "dweight vs fp32"), b.dweight, c.ref.at("dweight_fp32"),
                   kBf16Tolerance);
      expect_close(label_of(c.shape, "dbias vs fp32"), b.dbias, c.ref.at("dbias_fp32"),
                   kBf16Tolerance);
    }
  }
};

TEST_F(MatmulBf16Reference, ForwardWithFp32OutputMatchesPyTorch) {
  check_forward<float>("out_f32", kFp32Tolerance);
}

TEST_F(MatmulBf16Reference, ForwardWithBf16OutputMatchesPyTorch) {
  check_forward<bf16>("out_bf16", kBf16Tolerance);
}

TEST_F(MatmulBf16Reference, BackwardWithFp32DinpMatchesPyTorch) {
  check_backward<float>("dinp_f32", kFp32Tolerance);
}

TEST_F(MatmulBf16Reference, BackwardWithBf16DinpMatchesPyTorch) {
  check_backward<bf16>("dinp_bf16", kBf16Tolerance);
}

// Each gradient computed alone is bit-identical to the same gradient computed with the others, and
// the buffers of the skipped ones stay untouched (dinp still all NaN bytes).
TEST_F(MatmulBf16Reference, NullGradientsAreSkipped) {
  const Bf16MatmulCase& c = cases_->front();
  Bf16Backward<bf16> all(c, true, true, true);
  Bf16Backward<bf16> only_dinp(c, true, false, false);
  Bf16Backward<bf16> only_dweight(c, false, true, false);
  Bf16Backward<bf16> only_dbias(c, false, false, true);
  auto same_bytes = [](const auto& a, const auto& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
  };
  EXPECT_TRUE(same_bytes(only_dinp.dinp, all.dinp));
  EXPECT_TRUE(same_bytes(only_dweight.dweight, all.dweight));
  EXPECT_TRUE(same_bytes(only_dbias.dbias, all.dbias));
  EXPECT_TRUE(same_bytes(only_dinp.dweight, c.dweight0) &&
              same_bytes(only_dbias.dweight, c.dweight0));
  EXPECT_TRUE(same_bytes(only_dinp.dbias, c.dbias0) && same_bytes(only_dweight.dbias, c.dbias0));
  const std::vector<bf16> untouched = poisoned<bf16>(c.inp.size());
  EXPECT_TRUE(same_bytes(only_dweight.dinp, untouched) && same_bytes(only_dbias.dinp, untouched));
}

TEST(MatmulBf16, EmptyBatchLeavesGradientsUntouched) {
  std::vector<bf16> weight = to_bf16(std::vector<float>(16 * 8, 0.5f));
  std::vector<float> dweight(16 * 8, 1.0f), dbias(16, 2.0f);
  bf16* const no_rows = nullptr;
  matmul_forward(Context::cpu(), no_rows, no_rows, weight.data(), nullptr, 0, 8, 16);
  matmul_backward(Context::cpu(), no_rows, dweight.data(), dbias.data(), no_rows, no_rows,
                  weight.data(), 0, 8, 16);
  for (float x : dweight) ASSERT_EQ(x, 1.0f);
  for (float x : dbias) ASSERT_EQ(x, 2.0f);
}

}  // namespace
}  // namespace recforge
