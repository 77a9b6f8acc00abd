// The dense layer (kernels/matmul.h) in every storage combination.
// On the CPU against PyTorch: fp32 and fp64 operands against tests/reference/kernels.py; bf16
// operands against PyTorch written with the same policy (tests/reference/bf16.py: bf16-rounded
// inputs upcast to float32, float32 matmul, a bf16 output rounded once) and against the pure fp32
// layer on the unrounded inputs; gradients skipped when null, and the N = 0 edge.
// On the GPU (cuBLASLt, fp32 accumulation) against the CPU backend (OpenBLAS) on the same inputs:
// forward with and without bias, backward with every combination of null gradients (dweight and
// dbias accumulating into random initial values), the bias gradient's determinism, the N = 0 edge
// and operands that start one element into their buffers; each bf16 result is also compared with
// the fp32 layer on the CPU (the unrounded inputs).
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

struct MatmulShape {
  int N, C, OC;
};

void PrintTo(const MatmulShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC;
}

// The bar for a bf16 result: ~1e-3 expected (one-ulp rounding flips, bf16 spacing 2⁻⁸).
constexpr double kBf16Tolerance = 1e-2;

// ---- CPU, fp32 and fp64 operands, against PyTorch ----

constexpr int kN = 257, kC = 192, kOC = 97;  // odd N and OC: uneven per-thread slices

struct MatmulData {
  std::vector<float> inp, weight, bias, dout, dweight0, dbias0;
  std::vector<double> out, out_nobias, dinp, dweight, dbias;
};

MatmulData make_data() {
  std::mt19937_64 rng(fresh_seed());
  MatmulData d;
  d.inp = random_normal<float>(rng, kN * kC);
  d.weight = random_normal<float>(rng, kOC * kC, 0.1);
  d.bias = random_normal<float>(rng, kOC);
  d.dout = random_normal<float>(rng, kN * kOC);
  d.dweight0 = random_normal<float>(rng, kOC * kC);
  d.dbias0 = random_normal<float>(rng, kOC);
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
  double untouched =
      relative_error(only_dinp.dweight, dweight0) + relative_error(only_dinp.dbias, dbias0) +
      relative_error(only_dweight.dbias, dbias0) + relative_error(only_dbias.dweight, dweight0);
  report_error("matmul.float skipped dweight/dbias vs initial values", untouched);
  EXPECT_EQ(untouched, 0.0);
  for (const Backward<float>* b : {&only_dweight, &only_dbias}) {
    for (float x : b->dinp) ASSERT_TRUE(std::isnan(x)) << "a skipped dinp was written";
  }
}

// ---- CPU, bf16 operands, against PyTorch with the same policy and against fp32 ----

// Odd N and OC (uneven per-thread slices), a single row, a wider layer.
constexpr MatmulShape kBf16ReferenceShapes[] = {
    {257, 192, 97}, {1, 16, 8}, {101, 33, 65}, {512, 128, 384}};

// fp32 results from the same bf16 operands differ from PyTorch's only in summation order.
constexpr double kFp32Tolerance = 1e-5;

const char* const kReferenceNames[] = {
    "out_f32",   "out_f32_nobias", "out_bf16",  "out_bf16_nobias", "dinp_f32",
    "dinp_bf16", "dweight",        "dbias",     "out_fp32",        "out_fp32_nobias",
    "dinp_fp32", "dweight_fp32",   "dbias_fp32"};

struct Bf16MatmulCase {
  MatmulShape shape;
  std::vector<float> inp, weight, bias, dout, dweight0, dbias0;
  std::map<std::string, std::vector<double>> ref;
};

std::vector<Bf16MatmulCase> make_bf16_cases() {
  std::mt19937_64 rng(fresh_seed());
  ReferenceCase ref("bf16.py", "matmul");
  ref.put_scalar("num_cases", std::size(kBf16ReferenceShapes));
  std::vector<Bf16MatmulCase> cases;
  for (const MatmulShape& s : kBf16ReferenceShapes) {
    const std::string p = case_prefix(cases.size());
    Bf16MatmulCase c{s, {}, {}, {}, {}, {}, {}, {}};
    c.inp = random_normal<float>(rng, static_cast<size_t>(s.N) * s.C);
    c.weight = random_normal<float>(rng, static_cast<size_t>(s.OC) * s.C, 0.1);
    c.bias = random_normal<float>(rng, s.OC);
    c.dout = random_normal<float>(rng, static_cast<size_t>(s.N) * s.OC);
    c.dweight0 = random_normal<float>(rng, static_cast<size_t>(s.OC) * s.C);
    c.dbias0 = random_normal<float>(rng, s.OC);
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
      cases[i].ref[name] = ref.result(case_prefix(i) + name);
    }
  }
  return cases;
}

std::string label_of(const MatmulShape& s, const char* what) {
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
    const MatmulShape& s = c.shape;
    std::vector<bf16> dout = to_bf16(c.dout), inp = to_bf16(c.inp), weight = to_bf16(c.weight);
    matmul_backward(Context::cpu(), want_dinp ? dinp.data() : nullptr,
                    want_dweight ? dweight.data() : nullptr, want_dbias ? dbias.data() : nullptr,
                    dout.data(), inp.data(), weight.data(), s.N, s.C, s.OC);
  }
};

class MatmulBf16Reference : public SharedReferenceCases<Bf16MatmulCase, make_bf16_cases> {
 protected:
  // out = inp · weightᵀ (+ bias) with bf16 operands and an Out output (the bias of type Out).
  template <typename Out>
  static std::vector<float> forward(const Bf16MatmulCase& c, bool with_bias) {
    const MatmulShape& s = c.shape;
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
      const std::vector<float> dinp = widened(b.dinp);
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
  EXPECT_TRUE(bitwise_equal(only_dinp.dinp, all.dinp));
  EXPECT_TRUE(bitwise_equal(only_dweight.dweight, all.dweight));
  EXPECT_TRUE(bitwise_equal(only_dbias.dbias, all.dbias));
  EXPECT_TRUE(bitwise_equal(only_dinp.dweight, c.dweight0) &&
              bitwise_equal(only_dbias.dweight, c.dweight0));
  EXPECT_TRUE(bitwise_equal(only_dinp.dbias, c.dbias0) &&
              bitwise_equal(only_dweight.dbias, c.dbias0));
  const std::vector<bf16> untouched = poisoned<bf16>(c.inp.size());
  EXPECT_TRUE(bitwise_equal(only_dweight.dinp, untouched) &&
              bitwise_equal(only_dbias.dinp, untouched));
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

// ---- GPU against the CPU, over shapes: fp32 and bf16 operands ----

const std::vector<MatmulShape> kGpuShapes = {
    {1, 64, 64}, {512, 256, 768}, {1000, 129, 77}, {3000, 192, 768}};

// Test names: N1_C64_OC64, ...
std::string gpu_shape_name(const ::testing::TestParamInfo<MatmulShape>& info) {
  return cat("N", info.param.N, "_C", info.param.C, "_OC", info.param.OC);
}

// One shape's fp32 inputs, the ones of the fp32 tests and, rounded, of the bf16 tests.
class MatmulGpuFixture : public GpuTestWithParam<MatmulShape> {
 protected:
  int N = GetParam().N, C = GetParam().C, OC = GetParam().OC;
  std::string label = cat(" N=", N, " C=", C, " OC=", OC);
  std::vector<float> inp_host = random_floats(static_cast<size_t>(N) * C, 1);
  std::vector<float> weight_host = random_floats(static_cast<size_t>(OC) * C, 2);
  std::vector<float> bias_host = random_floats(OC, 3);
  std::vector<float> dout_host = random_floats(static_cast<size_t>(N) * OC, 4);
  // The initial values dweight and dbias accumulate into.
  std::vector<float> dweight0_host = random_floats(static_cast<size_t>(OC) * C, 5);
  std::vector<float> dbias0_host = random_floats(OC, 6);

  // Runs `backward_into(dbias)`, which computes the bias gradient alone on the GPU, three times
  // into a zeroed dbias: every run gives the same bits.
  template <typename BackwardInto>
  void expect_bias_gradient_deterministic(BackwardInto backward_into) {
    std::vector<float> first;
    for (int run = 0; run < 3; ++run) {
      Buffer<float> dbias(Device::kCuda, OC);
      dbias.zero(cuda_);
      backward_into(dbias.data());
      if (run == 0)
        first = dbias.download();
      else
        EXPECT_TRUE(bitwise_equal(dbias.download(), first));
    }
  }
};

using MatmulGpuTest = MatmulGpuFixture;

TEST_P(MatmulGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  for (bool with_bias : {true, false}) {
    Mirrored<float> out(static_cast<size_t>(N) * OC);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_forward(*ctx, out.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                     with_bias ? bias.on(*ctx) : static_cast<float*>(nullptr), N, C, OC);
    }
    expect_close(std::string("matmul.out ") + (with_bias ? "bias" : "no bias") + label, out, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BackwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), dout = mirrored(dout_host);
  // Bit i of `mask` requests gradient i (dinp, dweight, dbias).
  for (int mask = 0; mask < 8; ++mask) {
    Mirrored<float> dinp(static_cast<size_t>(N) * C);
    auto dweight = mirrored(dweight0_host);  // accumulated into
    auto dbias = mirrored(dbias0_host);
    dinp.poison();  // overwritten
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_backward(*ctx, mask & 1 ? dinp.on(*ctx) : nullptr,
                      mask & 2 ? dweight.on(*ctx) : nullptr, mask & 4 ? dbias.on(*ctx) : nullptr,
                      dout.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, OC);
    }
    const std::string which = cat(" mask=", mask, label);
    if (mask & 1) expect_close("matmul.dinp" + which, dinp, 1e-5);
    expect_close("matmul.dweight" + which, dweight, 1e-5);  // untouched when not requested
    expect_close("matmul.dbias" + which, dbias, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BiasGradientIsBitwiseDeterministic) {
  auto dout = mirrored(dout_host), inp = mirrored(inp_host), weight = mirrored(weight_host);
  expect_bias_gradient_deterministic([&](float* dbias) {
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias,
                    dout.cuda.data(), inp.cuda.data(), weight.cuda.data(), N, C, OC);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulGpuTest, ::testing::ValuesIn(kGpuShapes), gpu_shape_name);

// Prints and checks ‖cuda − cpu‖/‖cpu‖ and ‖cuda − fp32‖/‖fp32‖ of a bf16 layer's result (NaN
// fails both).
template <typename T>
void expect_close_to_cpu_and_fp32(const std::string& name, const Mirrored<T>& values,
                                  const std::vector<float>& fp32) {
  const std::vector<float> gpu = widened(values.cuda.download());
  const double vs_cpu = relative_error(gpu, widened(values.cpu.download()));
  const double vs_fp32 = relative_error(gpu, fp32);
  std::cout << "[ rel_err ] " << name << ": " << vs_cpu << " vs CPU, " << vs_fp32 << " vs fp32"
            << std::endl;
  EXPECT_LT(vs_cpu, kBf16Tolerance) << name;
  EXPECT_LT(vs_fp32, kBf16Tolerance) << name;
}

// bf16 operands (cuBLASLt, bf16 inputs, fp32 accumulation) for every storage combination: forward
// with an fp32 or bf16 output, backward with an fp32 or bf16 dinp.
class MatmulBf16GpuTest : public MatmulGpuFixture {
 protected:
  // The fp32 layer on the CPU from the unrounded inputs.
  std::vector<float> fp32_forward(bool with_bias) const {
    std::vector<float> out(static_cast<size_t>(N) * OC);
    matmul_forward(cpu_, out.data(), inp_host.data(), weight_host.data(),
                   with_bias ? bias_host.data() : nullptr, N, C, OC);
    return out;
  }
  struct Fp32Gradients {
    std::vector<float> dinp, dweight, dbias;
  };
  Fp32Gradients fp32_backward() const {
    Fp32Gradients g{std::vector<float>(static_cast<size_t>(N) * C), dweight0_host, dbias0_host};
    matmul_backward(cpu_, g.dinp.data(), g.dweight.data(), g.dbias.data(), dout_host.data(),
                    inp_host.data(), weight_host.data(), N, C, OC);
    return g;
  }

  template <typename Out>
  void check_forward() {
    auto inp = mirrored(to_bf16(inp_host)), weight = mirrored(to_bf16(weight_host));
    auto bias = mirrored(stored_as<Out>(bias_host));  // the output's type
    for (bool with_bias : {true, false}) {
      Mirrored<Out> out(static_cast<size_t>(N) * OC);
      out.poison();
      for (const Context* ctx : {&cpu_, &cuda_}) {
        matmul_forward(*ctx, out.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                       with_bias ? bias.on(*ctx) : nullptr, N, C, OC);
      }
      expect_close_to_cpu_and_fp32(
          cat("matmul.bf16 ", dtype_name<Out>(), " out", with_bias ? "" : " (no bias)", label), out,
          fp32_forward(with_bias));
    }
  }

  template <typename Dinp>
  void check_backward() {
    auto inp = mirrored(to_bf16(inp_host)), weight = mirrored(to_bf16(weight_host));
    auto dout = mirrored(to_bf16(dout_host));
    const Fp32Gradients fp32 = fp32_backward();
    // Bit i of `mask` requests gradient i (dinp, dweight, dbias).
    for (int mask = 0; mask < 8; ++mask) {
      Mirrored<Dinp> dinp(static_cast<size_t>(N) * C);
      dinp.poison();                           // overwritten
      auto dweight = mirrored(dweight0_host);  // accumulated into
      auto dbias = mirrored(dbias0_host);
      for (const Context* ctx : {&cpu_, &cuda_}) {
        matmul_backward(*ctx, mask & 1 ? dinp.on(*ctx) : nullptr,
                        mask & 2 ? dweight.on(*ctx) : nullptr, mask & 4 ? dbias.on(*ctx) : nullptr,
                        dout.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, OC);
      }
      const std::string which = cat(" (", dtype_name<Dinp>(), " dinp) mask=", mask, label);
      if (mask & 1) expect_close_to_cpu_and_fp32("matmul.bf16 dinp" + which, dinp, fp32.dinp);
      // Untouched (equal to the initial values on both sides) when not requested.
      expect_close_to_cpu_and_fp32("matmul.bf16 dweight" + which, dweight,
                                   mask & 2 ? fp32.dweight : dweight0_host);
      expect_close_to_cpu_and_fp32("matmul.bf16 dbias" + which, dbias,
                                   mask & 4 ? fp32.dbias : dbias0_host);
    }
  }
};

TEST_P(MatmulBf16GpuTest, ForwardWithFp32OutputMatchesCpu) { check_forward<float>(); }

TEST_P(MatmulBf16GpuTest, ForwardWithBf16OutputMatchesCpu) { check_forward<bf16>(); }

TEST_P(MatmulBf16GpuTest, BackwardWithFp32DinpMatchesCpu) { check_backward<float>(); }

TEST_P(MatmulBf16GpuTest, BackwardWithBf16DinpMatchesCpu) { check_backward<bf16>(); }

TEST_P(MatmulBf16GpuTest, BiasGradientIsBitwiseDeterministic) {
  auto dout = mirrored(to_bf16(dout_host));
  expect_bias_gradient_deterministic([&](float* dbias) {
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias,
                    dout.cuda.data(), static_cast<const bf16*>(nullptr),
                    static_cast<const bf16*>(nullptr), N, C, OC);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulBf16GpuTest, ::testing::ValuesIn(kGpuShapes),
                         gpu_shape_name);

// ---- GPU against the CPU, edge cases ----

using MatmulEdgeGpuTest = GpuTest;

TEST_F(MatmulEdgeGpuTest, EmptyBatchDoesNothing) {
  auto weight = mirrored(random_floats(32 * 16, 1));
  auto dweight = mirrored(random_floats(32 * 16, 2));
  auto dbias = mirrored(random_floats(32, 3));
  std::vector<float> dweight_before = dweight.cuda.download(), dbias_before = dbias.cuda.download();
  float* const none = nullptr;
  matmul_forward(cuda_, none, none, weight.cuda.data(), none, 0, 16, 32);
  matmul_backward(cuda_, none, dweight.cuda.data(), dbias.cuda.data(), none, none,
                  weight.cuda.data(), 0, 16, 32);
  EXPECT_TRUE(bitwise_equal(dweight.cuda.download(), dweight_before));
  EXPECT_TRUE(bitwise_equal(dbias.cuda.download(), dbias_before));
}

// What the storage type T of the operands changes in the tests typed over it.
template <typename T>
struct MatmulStorage;

template <>
struct MatmulStorage<float> {
  // Operands starting one float into their buffers (4-byte alignment).
  static constexpr const char* kUnalignedLabel = "matmul.out unaligned";
  static constexpr double kTolerance = 1e-5;
};

template <>
struct MatmulStorage<bf16> {
  // bf16 operands starting one element (2 bytes) into their buffers: away from the 16-byte
  // tensor-core loads.
  static constexpr const char* kUnalignedLabel = "matmul.bf16 out unaligned";
  static constexpr double kTolerance = kBf16Tolerance;
};

// Typed suites' names: Suite/fp32, Suite/bf16.
struct StorageTypeName {
  template <typename T>
  static std::string GetName(int) {
    return dtype_name<T>();
  }
};

template <typename T>
class MatmulUnalignedGpuTest : public GpuTest {};

using StorageTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(MatmulUnalignedGpuTest, StorageTypes, StorageTypeName);

// out = inp · weightᵀ + bias on both backends with every operand (stored as TypeParam) starting one
// element into its buffer: cuBLASLt must pick algorithms for sizeof(TypeParam)-byte alignment.
TYPED_TEST(MatmulUnalignedGpuTest, ForwardMatchesCpu) {
  using T = TypeParam;
  constexpr int N = 100, C = 33, OC = 65;
  auto inp = mirrored(stored_as<T>(random_floats(N * C + 1, 1)));
  auto weight = mirrored(stored_as<T>(random_floats(OC * C + 1, 2)));
  auto bias = mirrored(stored_as<T>(random_floats(OC + 1, 3)));
  Mirrored<T> out(N * OC + 1);
  out.poison();
  for (const Context* ctx : {&this->cpu_, &this->cuda_}) {
    matmul_forward(*ctx, out.on(*ctx) + 1, inp.on(*ctx) + 1, weight.on(*ctx) + 1, bias.on(*ctx) + 1,
                   N, C, OC);
  }
  const std::vector<float> gpu = widened(out.cuda.download()), cpu = widened(out.cpu.download());
  expect_close(MatmulStorage<T>::kUnalignedLabel, std::vector<float>(gpu.begin() + 1, gpu.end()),
               std::vector<float>(cpu.begin() + 1, cpu.end()), MatmulStorage<T>::kTolerance);
}

}  // namespace
}  // namespace recforge::testing
