// RMS normalization (Llama's norm): the forward, the fused residual forward and the accumulating
// backward. The CPU backend against PyTorch in float and double (tests/reference/kernels.py), the
// backward also with a frozen weight (null dweight) and inside an enclosing parallel region; the
// CUDA backend against the CPU backend on the same inputs, its dweight bitwise reproducible.
#include "kernels/rmsnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr float kEps = 1e-5f;

struct RmsNormShape {
  int N, C;
};

// Small, odd and SmolLM2-sized (576) channel counts.
constexpr RmsNormShape kReferenceShapes[] = {{257, 64}, {300, 200}, {131, 576}};

// One shape's inputs (drawn as float) and its PyTorch reference.
struct RmsNormCase {
  RmsNormShape shape;
  std::vector<float> inp, weight, a, b, dout, dinp0, dweight0;  // residual = a + b
  std::vector<double> out, rstd, residual, residual_out, dinp, dweight;

  std::string label(const char* type) const {
    return std::string("rmsnorm.") + type + ".C" + std::to_string(shape.C);
  }

  // Draws the inputs (inp with a row-varying scale, weight around 1) and writes them for `ref`
  // under the prefix p.
  void put_inputs(std::mt19937_64& rng, ReferenceCase& ref, const std::string& p) {
    const size_t size = static_cast<size_t>(shape.N) * shape.C;
    inp = random_normal<float>(rng, size, 2.0);
    for (size_t i = 0; i < size; ++i) inp[i] *= 0.25f + 0.5f * (i / shape.C % 5);
    weight = random_normal<float>(rng, shape.C, 0.2);
    for (float& w : weight) w += 1.0f;
    a = random_normal<float>(rng, size);
    b = random_normal<float>(rng, size, 0.5);
    dout = random_normal<float>(rng, size);
    dinp0 = random_normal<float>(rng, size);
    dweight0 = random_normal<float>(rng, shape.C);
    const std::vector<int64_t> matrix{shape.N, shape.C}, vector{shape.C};
    ref.put(p + "inp", inp, matrix);
    ref.put(p + "a", a, matrix);
    ref.put(p + "b", b, matrix);
    ref.put(p + "dout", dout, matrix);
    ref.put(p + "dinp0", dinp0, matrix);
    ref.put(p + "weight", weight, vector);
    ref.put(p + "dweight0", dweight0, vector);
    ref.put_scalar(p + "eps", kEps);
  }

  void get_outputs(const ReferenceCase& ref, const std::string& p) {
    out = ref.result(p + "out");
    rstd = ref.result(p + "rstd");
    residual = ref.result(p + "residual");
    residual_out = ref.result(p + "residual_out");
    dinp = ref.result(p + "dinp");
    dweight = ref.result(p + "dweight");
  }
};

std::vector<RmsNormCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<RmsNormCase> cases;
  ReferenceCase ref("kernels.py", "rmsnorm");
  ref.put_scalar("num_cases", std::size(kReferenceShapes));
  for (const RmsNormShape& shape : kReferenceShapes) {
    RmsNormCase c;
    c.shape = shape;
    c.put_inputs(rng, ref, case_prefix(cases.size()));
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) cases[i].get_outputs(ref, case_prefix(i));
  return cases;
}

// The CPU forward of one case in element type T, on poisoned outputs.
template <typename T>
struct ForwardInType {
  std::vector<T> inp, weight, out, rstd;
  explicit ForwardInType(const RmsNormCase& c)
      : inp(convert<T>(c.inp)),
        weight(convert<T>(c.weight)),
        out(poisoned<T>(c.inp.size())),
        rstd(poisoned<T>(c.shape.N)) {
    rmsnorm_forward(Context::cpu(), out.data(), rstd.data(), inp.data(), weight.data(), c.shape.N,
                    c.shape.C, kEps);
  }
};

class RmsNormReference : public SharedReferenceCases<RmsNormCase, make_cases> {
 protected:
  template <typename T>
  void check_forward(double tolerance) {
    for (const RmsNormCase& c : *cases_) {
      ForwardInType<T> f(c);
      const std::string label = c.label(type_name<T>());
      expect_close(label + ".out", f.out, c.out, tolerance);
      expect_close(label + ".rstd", f.rstd, c.rstd, tolerance);
    }
  }

  template <typename T>
  void check_residual_forward(double tolerance) {
    for (const RmsNormCase& c : *cases_) {
      const auto [N, C] = c.shape;
      std::vector<T> a = convert<T>(c.a), b = convert<T>(c.b), weight = convert<T>(c.weight);
      std::vector<T> residual = poisoned<T>(a.size()), out = poisoned<T>(a.size());
      std::vector<T> rstd = poisoned<T>(N);
      residual_rmsnorm_forward(Context::cpu(), residual.data(), out.data(), rstd.data(), a.data(),
                               b.data(), weight.data(), N, C, kEps);
      const std::string label = c.label(type_name<T>()) + ".residual_rmsnorm";
      expect_close(label + ".residual", residual, c.residual, tolerance);
      expect_close(label + ".out", out, c.residual_out, tolerance);
    }
  }

  // The backward from the kernel's own rstd, accumulated into dinp0/dweight0; with `frozen`
  // dweight is null and only dinp is checked; with `nested` it runs inside a parallel region.
  template <typename T>
  void check_backward(double tolerance, bool frozen = false, bool nested = false) {
    for (const RmsNormCase& c : *cases_) {
      ForwardInType<T> f(c);
      std::vector<T> dout = convert<T>(c.dout), dinp = convert<T>(c.dinp0);
      std::vector<T> dweight = convert<T>(c.dweight0);
      auto backward = [&] {
        rmsnorm_backward(Context::cpu(), dinp.data(), frozen ? nullptr : dweight.data(),
                         dout.data(), f.inp.data(), f.weight.data(), f.rstd.data(), c.shape.N,
                         c.shape.C);
      };
      if (nested) {
        run_inside_parallel_region(backward);
      } else {
        backward();
      }
      const std::string label =
          c.label(type_name<T>()) + (frozen ? ".frozen" : "") + (nested ? ".nested" : "");
      expect_close(label + ".dinp", dinp, c.dinp, tolerance);
      if (frozen) {
        const double untouched = relative_error(dweight, convert<double>(c.dweight0));
        report_error(label + ".dweight buffer vs initial values", untouched);
        EXPECT_EQ(untouched, 0.0);
      } else {
        expect_close(label + ".dweight", dweight, c.dweight, tolerance);
      }
    }
  }
};

TEST_F(RmsNormReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(RmsNormReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-13); }

TEST_F(RmsNormReference, ResidualForwardMatchesPyTorch) { check_residual_forward<float>(1e-6); }

TEST_F(RmsNormReference, ResidualForwardInDoubleMatchesPyTorch) {
  check_residual_forward<double>(1e-13);
}

TEST_F(RmsNormReference, BackwardAccumulatesLikePyTorch) { check_backward<float>(1e-6); }

TEST_F(RmsNormReference, BackwardInDoubleAccumulatesLikePyTorch) { check_backward<double>(1e-13); }

TEST_F(RmsNormReference, BackwardWithFrozenNormSkipsWeightGradient) {
  check_backward<float>(1e-6, /*frozen=*/true);
}

// The row split must follow the team the backward gets, not omp_get_max_threads().
TEST_F(RmsNormReference, BackwardInsideParallelRegionMatchesPyTorch) {
  check_backward<float>(1e-6, /*frozen=*/false, /*nested=*/true);
}

TEST(RmsNormValidation, ZeroChannelsThrow) {
  std::vector<float> values(4);
  EXPECT_THROW(rmsnorm_forward(Context::cpu(), values.data(), values.data(), values.data(),
                               values.data(), 1, 0, kEps),
               Error);
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend.

constexpr RmsNormShape kGpuShapes[] = {{1, 64}, {1000, 576}, {777, 100}, {300, 3072}};

void PrintTo(const RmsNormShape& s, std::ostream* os) { *os << "N=" << s.N << " C=" << s.C; }

std::string gpu_case_name(const ::testing::TestParamInfo<RmsNormShape>& info) {
  return cat("N", info.param.N, "_C", info.param.C);
}

class RmsNormGpuTest : public GpuTestWithParam<RmsNormShape> {
 protected:
  int N = GetParam().N, C = GetParam().C;
  size_t size = static_cast<size_t>(N) * C;
  std::string label = cat(" N=", N, " C=", C);
  std::vector<float> inp_host = random_floats(size, 1, -3.0f, 3.0f);
  std::vector<float> weight_host = random_floats(C, 2, 0.5f, 1.5f);
  std::vector<float> a_host = random_floats(size, 3);
  std::vector<float> b_host = random_floats(size, 4);
};

TEST_P(RmsNormGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host);
  Mirrored<float> out(size), rstd(N);
  out.poison();
  rstd.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    rmsnorm_forward(*ctx, out.on(*ctx), rstd.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, kEps);
  }
  expect_close("rmsnorm.out" + label, out, 1e-5);
  expect_close("rmsnorm.rstd" + label, rstd, 1e-5);
}

TEST_P(RmsNormGpuTest, ResidualForwardMatchesCpu) {
  auto a = mirrored(a_host), b = mirrored(b_host), weight = mirrored(weight_host);
  Mirrored<float> residual(size), out(size), rstd(N);
  for (auto* m : {&residual, &out, &rstd}) m->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    residual_rmsnorm_forward(*ctx, residual.on(*ctx), out.on(*ctx), rstd.on(*ctx), a.on(*ctx),
                             b.on(*ctx), weight.on(*ctx), N, C, kEps);
  }
  expect_close("rmsnorm.residual" + label, residual, 1e-7);
  expect_close("rmsnorm.residual_out" + label, out, 1e-5);
  expect_close("rmsnorm.residual_rstd" + label, rstd, 1e-5);
}

// dinp and dweight accumulate like the CPU's; a frozen norm (null dweight) still accumulates dinp.
TEST_P(RmsNormGpuTest, BackwardAccumulatesLikeCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host);
  Mirrored<float> rstd(N);
  std::vector<float> scratch_out(size);
  cpu::rmsnorm_forward(scratch_out.data(), rstd.cpu.data(), inp.cpu.data(), weight.cpu.data(), N, C,
                       kEps);
  rstd.cuda.upload(rstd.cpu.download());
  auto dout = mirrored(random_floats(size, 5));
  auto dinp = mirrored(random_floats(size, 6));
  auto dweight = mirrored(random_floats(C, 7));
  for (const Context* ctx : {&cpu_, &cuda_}) {
    rmsnorm_backward(*ctx, dinp.on(*ctx), dweight.on(*ctx), dout.on(*ctx), inp.on(*ctx),
                     weight.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("rmsnorm.dinp" + label, dinp, 1e-5);
  expect_close("rmsnorm.dweight" + label, dweight, 1e-5);
  for (const Context* ctx : {&cpu_, &cuda_}) {
    rmsnorm_backward(*ctx, dinp.on(*ctx), static_cast<float*>(nullptr), dout.on(*ctx), inp.on(*ctx),
                     weight.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("rmsnorm.dinp (frozen)" + label, dinp, 1e-5);
}

TEST_P(RmsNormGpuTest, WeightGradientIsBitwiseDeterministic) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host);
  Buffer<float> out(Device::kCuda, size), rstd(Device::kCuda, N);
  rmsnorm_forward(cuda_, out.data(), rstd.data(), inp.cuda.data(), weight.cuda.data(), N, C, kEps);
  auto dout = mirrored(random_floats(size, 8));
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Buffer<float> dinp(Device::kCuda, size), dweight(Device::kCuda, C);
    dinp.zero(cuda_);
    dweight.zero(cuda_);
    rmsnorm_backward(cuda_, dinp.data(), dweight.data(), dout.cuda.data(), inp.cuda.data(),
                     weight.cuda.data(), rstd.data(), N, C);
    if (run == 0) {
      first = dweight.download();
    } else {
      EXPECT_TRUE(bitwise_equal(dweight.download(), first));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormGpuTest, ::testing::ValuesIn(kGpuShapes), gpu_case_name);

}  // namespace
}  // namespace recforge::testing
