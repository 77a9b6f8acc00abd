// Layer normalization: the forward, the fused residual forward and the accumulating backward. The
// CPU backend against PyTorch in float and double (tests/reference/kernels.py), and with a bf16
// output (input, weight, bias, mean, rstd and the residual fp32) against PyTorch running the same
// policy (bf16_ops.py) and against the fp32 kernel. The CUDA backend against the CPU backend on the
// same inputs, the forwards with an fp32 and a bf16 output, the backward (fp32) also bitwise
// reproducible.
#include "kernels/layernorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/bf16_values.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

struct LayerNormShape {
  int N, C;
};

// The reference tests' shapes: small, odd and GPT-2-sized channel counts.
constexpr LayerNormShape kReferenceShapes[] = {{257, 64}, {300, 200}, {311, 768}};

// One shape's forward inputs, drawn as float and handed to a PyTorch reference run, and the
// outputs of both forwards (plain and fused residual) read back.
struct LayerNormForwardCase {
  LayerNormShape shape;
  std::vector<float> inp, weight, bias, a, b;  // residual = a + b
  std::vector<double> out, mean, rstd, residual, residual_out;

  std::string label(const char* type) const {
    return std::string("layernorm.") + type + ".C" + std::to_string(shape.C);
  }

  // Draws the inputs (inp with a row-varying mean, weight around 1) and writes them for `ref`
  // under the prefix p.
  void put_inputs(std::mt19937_64& rng, ReferenceCase& ref, const std::string& p) {
    const size_t size = static_cast<size_t>(shape.N) * shape.C;
    inp = random_normal<float>(rng, size, 2.0);
    for (size_t i = 0; i < size; ++i) inp[i] += 0.5f * (i / shape.C % 7);
    weight = random_normal<float>(rng, shape.C, 0.2);
    for (float& w : weight) w += 1.0f;
    bias = random_normal<float>(rng, shape.C, 0.2);
    a = random_normal<float>(rng, size);
    b = random_normal<float>(rng, size, 0.5);
    const std::vector<int64_t> matrix{shape.N, shape.C}, vector{shape.C};
    ref.put(p + "inp", inp, matrix);
    ref.put(p + "weight", weight, vector);
    ref.put(p + "bias", bias, vector);
    ref.put(p + "a", a, matrix);
    ref.put(p + "b", b, matrix);
  }

  // Reads both forwards' reference outputs under the prefix p.
  void get_outputs(const ReferenceCase& ref, const std::string& p) {
    out = ref.result(p + "out");
    mean = ref.result(p + "mean");
    rstd = ref.result(p + "rstd");
    residual = ref.result(p + "residual");
    residual_out = ref.result(p + "residual_out");
  }
};

// One shape's inputs and PyTorch reference, the backward's included.
struct LayerNormCase : LayerNormForwardCase {
  std::vector<float> dout;
  std::vector<float> dinp0, dweight0, dbias0;  // the gradients before the backward
  std::vector<double> dinp, dweight, dbias;

  // Draws the backward's inputs and writes them for `ref` under the prefix p.
  void put_backward_inputs(std::mt19937_64& rng, ReferenceCase& ref, const std::string& p) {
    const size_t size = static_cast<size_t>(shape.N) * shape.C;
    dout = random_normal<float>(rng, size);
    dinp0 = random_normal<float>(rng, size);
    dweight0 = random_normal<float>(rng, shape.C);
    dbias0 = random_normal<float>(rng, shape.C);
    const std::vector<int64_t> matrix{shape.N, shape.C}, vector{shape.C};
    ref.put(p + "dout", dout, matrix);
    ref.put(p + "dinp0", dinp0, matrix);
    ref.put(p + "dweight0", dweight0, vector);
    ref.put(p + "dbias0", dbias0, vector);
  }

  // Reads the backward's reference gradients under the prefix p.
  void get_gradients(const ReferenceCase& ref, const std::string& p) {
    dinp = ref.result(p + "dinp");
    dweight = ref.result(p + "dweight");
    dbias = ref.result(p + "dbias");
  }
};

std::vector<LayerNormCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<LayerNormCase> cases;
  ReferenceCase ref("kernels.py", "layernorm");
  ref.put_scalar("num_cases", std::size(kReferenceShapes));
  for (const LayerNormShape& shape : kReferenceShapes) {
    LayerNormCase c;
    c.shape = shape;
    const std::string p = case_prefix(cases.size());
    c.put_inputs(rng, ref, p);
    c.put_backward_inputs(rng, ref, p);
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    cases[i].get_outputs(ref, case_prefix(i));
    cases[i].get_gradients(ref, case_prefix(i));
  }
  return cases;
}

// The kernel's forward outputs for one case, every array of element type T.
template <typename T>
struct ForwardInType {
  std::vector<T> inp, weight, bias, out, mean, rstd;
  explicit ForwardInType(const LayerNormCase& c)
      : inp(convert<T>(c.inp)),
        weight(convert<T>(c.weight)),
        bias(convert<T>(c.bias)),
        out(c.inp.size(), NAN),
        mean(c.shape.N, NAN),
        rstd(c.shape.N, NAN) {
    layernorm_forward(Context::cpu(), out.data(), mean.data(), rstd.data(), inp.data(),
                      weight.data(), bias.data(), c.shape.N, c.shape.C);
  }
};

// The PyTorch references of every shape are computed once and shared by the tests of the suite.
class LayerNormReference : public SharedReferenceCases<LayerNormCase, make_cases> {
 protected:
  template <typename T>
  void check_forward(double tolerance) {
    for (const LayerNormCase& c : *cases_) {
      ForwardInType<T> f(c);
      std::string label = c.label(type_name<T>());
      expect_close(label + ".out", f.out, c.out, tolerance);
      expect_close(label + ".mean", f.mean, c.mean, tolerance);
      expect_close(label + ".rstd", f.rstd, c.rstd, tolerance);
    }
  }

  template <typename T>
  void check_residual_forward(double tolerance) {
    for (const LayerNormCase& c : *cases_) {
      const auto [N, C] = c.shape;
      std::vector<T> a = convert<T>(c.a), b = convert<T>(c.b);
      std::vector<T> weight = convert<T>(c.weight), bias = convert<T>(c.bias);
      std::vector<T> residual(a.size(), NAN), out(a.size(), NAN), mean(N, NAN), rstd(N, NAN);
      residual_layernorm_forward(Context::cpu(), residual.data(), out.data(), mean.data(),
                                 rstd.data(), a.data(), b.data(), weight.data(), bias.data(), N, C);
      std::string label = c.label(type_name<T>()) + ".residual_layernorm";
      expect_close(label + ".residual", residual, c.residual, tolerance);
      expect_close(label + ".out", out, c.residual_out, tolerance);
    }
  }

  // The backward from the kernel's own mean and rstd, accumulated into dinp0/dweight0/dbias0;
  // with `frozen` dweight and dbias are null and only dinp is checked.
  // With `nested` the backward runs inside an enclosing OpenMP parallel region.
  template <typename T>
  void check_backward(double tolerance, bool frozen = false, bool nested = false) {
    for (const LayerNormCase& c : *cases_) {
      ForwardInType<T> f(c);
      std::vector<T> dout = convert<T>(c.dout), dinp = convert<T>(c.dinp0);
      std::vector<T> dweight = convert<T>(c.dweight0), dbias = convert<T>(c.dbias0);
      auto backward = [&] {
        layernorm_backward(Context::cpu(), dinp.data(), frozen ? nullptr : dweight.data(),
                           frozen ? nullptr : dbias.data(), dout.data(), f.inp.data(),
                           f.weight.data(), f.mean.data(), f.rstd.data(), c.shape.N, c.shape.C);
      };
      if (nested) {
        run_inside_parallel_region(backward);
      } else {
        backward();
      }
      std::string label =
          c.label(type_name<T>()) + (frozen ? ".frozen" : "") + (nested ? ".nested" : "");
      expect_close(label + ".dinp", dinp, c.dinp, tolerance);
      if (frozen) {
        double untouched = relative_error(dweight, convert<double>(c.dweight0)) +
                           relative_error(dbias, convert<double>(c.dbias0));
        report_error(label + ".dweight/dbias buffers vs initial values", untouched);
        EXPECT_EQ(untouched, 0.0);
      } else {
        expect_close(label + ".dweight", dweight, c.dweight, tolerance);
        expect_close(label + ".dbias", dbias, c.dbias, tolerance);
      }
    }
  }
};

TEST_F(LayerNormReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(LayerNormReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-13); }

TEST_F(LayerNormReference, ResidualForwardMatchesPyTorch) { check_residual_forward<float>(1e-6); }

TEST_F(LayerNormReference, ResidualForwardInDoubleMatchesPyTorch) {
  check_residual_forward<double>(1e-13);
}

TEST_F(LayerNormReference, BackwardAccumulatesLikePyTorch) { check_backward<float>(1e-6); }

TEST_F(LayerNormReference, BackwardInDoubleAccumulatesLikePyTorch) {
  check_backward<double>(1e-13);
}

TEST_F(LayerNormReference, BackwardWithFrozenNormSkipsWeightGradients) {
  check_backward<float>(1e-6, /*frozen=*/true);
}

// The backward must split its rows by the team it gets (omp_get_num_threads()), not by
// omp_get_max_threads(): with fewer threads than requested (an enclosing parallel region,
// OMP_THREAD_LIMIT, OMP_DYNAMIC) it would silently skip the rows of the missing threads.
TEST_F(LayerNormReference, BackwardInsideParallelRegionMatchesPyTorch) {
  check_backward<float>(1e-6, /*frozen=*/false, /*nested=*/true);
}

std::vector<LayerNormForwardCase> make_bf16_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<LayerNormForwardCase> cases;
  ReferenceCase ref("bf16_ops.py", "layernorm_bf16");
  ref.put_scalar("num_cases", std::size(kReferenceShapes));
  for (const LayerNormShape& shape : kReferenceShapes) {
    LayerNormForwardCase c;
    c.shape = shape;
    c.put_inputs(rng, ref, case_prefix(cases.size()));
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) cases[i].get_outputs(ref, case_prefix(i));
  return cases;
}

// Both forwards (plain and fused residual) of the fp32 inputs with output type Out on poisoned
// outputs.
template <typename Out>
struct ForwardsWithOutput {
  std::vector<Out> out, residual_out;
  std::vector<float> mean, rstd, residual, residual_mean, residual_rstd;
  explicit ForwardsWithOutput(const LayerNormForwardCase& c)
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

using LayerNormBf16Reference = SharedReferenceCases<LayerNormForwardCase, make_bf16_cases>;

TEST_F(LayerNormBf16Reference, ForwardMatchesPyTorch) {
  for (const LayerNormForwardCase& c : *cases_) {
    ForwardsWithOutput<bf16> f(c);
    const std::string label = c.label("bf16");
    expect_close(label + ".out", to_float(f.out), c.out, 1e-2);
    expect_close(label + ".mean (fp32)", f.mean, c.mean, 1e-6);
    expect_close(label + ".rstd (fp32)", f.rstd, c.rstd, 1e-6);
  }
}

TEST_F(LayerNormBf16Reference, ResidualForwardMatchesPyTorch) {
  for (const LayerNormForwardCase& c : *cases_) {
    ForwardsWithOutput<bf16> f(c);
    const std::string label = c.label("bf16") + ".residual_layernorm";
    expect_close(label + ".residual (fp32)", f.residual, c.residual, 1e-7);
    expect_close(label + ".out", to_float(f.residual_out), c.residual_out, 1e-2);
  }
}

// The fp32 statistics and residual are those of the fp32 kernel bit for bit, and the bf16 output
// is the fp32 output rounded once; relative to fp32 that costs well under 1e-2.
TEST_F(LayerNormBf16Reference, OutputIsTheFp32OutputRoundedOnce) {
  for (const LayerNormForwardCase& c : *cases_) {
    ForwardsWithOutput<bf16> bf16_run(c);
    ForwardsWithOutput<float> fp32_run(c);
    EXPECT_TRUE(bf16_run.mean == fp32_run.mean && bf16_run.rstd == fp32_run.rstd);
    EXPECT_TRUE(bf16_run.residual == fp32_run.residual);
    EXPECT_TRUE(bf16_run.residual_mean == fp32_run.residual_mean &&
                bf16_run.residual_rstd == fp32_run.residual_rstd);
    EXPECT_TRUE(to_float(bf16_run.out) == rounded_to_bf16(fp32_run.out));
    EXPECT_TRUE(to_float(bf16_run.residual_out) == rounded_to_bf16(fp32_run.residual_out));
    const std::string label = c.label("bf16") + " vs fp32";
    expect_close(label + ".out", to_float(bf16_run.out), convert<double>(fp32_run.out), 1e-2);
    expect_close(label + ".residual_out", to_float(bf16_run.residual_out),
                 convert<double>(fp32_run.residual_out), 1e-2);
  }
}

// The output type of a GPU forward test: fp32, or bf16 (the mixed-precision path; mean, rstd and
// the residual stay fp32).
enum class OutputType { kFp32, kBf16 };

const char* output_type_name(OutputType out_type) {
  return out_type == OutputType::kBf16 ? "bf16" : "fp32";
}

template <typename Out>
constexpr double kGpuOutTolerance = std::is_same_v<Out, bf16> ? 1e-2 : 1e-5;

// The GPU tests' shapes.
constexpr LayerNormShape kGpuShapes[] = {{1, 64}, {1000, 256}, {777, 100}, {300, 3072}};

struct LayerNormGpuCase {
  OutputType out_type;
  LayerNormShape shape;
};

void PrintTo(const LayerNormGpuCase& c, std::ostream* os) {
  *os << output_type_name(c.out_type) << " N=" << c.shape.N << " C=" << c.shape.C;
}

// Every GPU shape with each of `out_types`.
std::vector<LayerNormGpuCase> gpu_cases(std::initializer_list<OutputType> out_types) {
  std::vector<LayerNormGpuCase> cases;
  for (OutputType out_type : out_types) {
    for (const LayerNormShape& shape : kGpuShapes) cases.push_back({out_type, shape});
  }
  return cases;
}

// Test names: fp32_N1_C64, ..., bf16_N1_C64, ...
std::string gpu_case_name(const ::testing::TestParamInfo<LayerNormGpuCase>& info) {
  const LayerNormGpuCase& c = info.param;
  return cat(output_type_name(c.out_type), "_N", c.shape.N, "_C", c.shape.C);
}

// Both backends on the same inputs of one shape, the forwards' output of the case's type.
class LayerNormGpuTest : public GpuTestWithParam<LayerNormGpuCase> {
 protected:
  int N = GetParam().shape.N, C = GetParam().shape.C;
  size_t size = static_cast<size_t>(N) * C;
  std::string label =
      cat(GetParam().out_type == OutputType::kBf16 ? " bf16" : "", " N=", N, " C=", C);
  // Host inputs only: device buffers are made in the test bodies, after SetUp's skip check.
  // Inputs with a large mean, to catch a one-pass variance.
  std::vector<float> inp_host = random_floats(size, 1, 3.0f, 5.0f);
  std::vector<float> weight_host = random_floats(C, 2, 0.5f, 1.5f);
  std::vector<float> bias_host = random_floats(C, 3);
  std::vector<float> a_host = random_floats(size, 4);  // residual = a + b
  std::vector<float> b_host = random_floats(size, 5);

  // Calls check.template operator()<Out>() with Out the output type of this test's case.
  template <typename Check>
  void with_output_type(Check check) {
    if (GetParam().out_type == OutputType::kBf16) {
      check.template operator()<bf16>();
    } else {
      check.template operator()<float>();
    }
  }

  // layernorm_forward on both backends into poisoned outputs: out within kGpuOutTolerance of the
  // CPU's, mean and rstd within fp32 rounding. Returns out.
  template <typename Out>
  Mirrored<Out> expect_forward_matches_cpu() {
    auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
    Mirrored<Out> out(size);
    Mirrored<float> mean(N), rstd(N);
    out.poison();
    mean.poison();
    rstd.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      layernorm_forward(*ctx, out.on(*ctx), mean.on(*ctx), rstd.on(*ctx), inp.on(*ctx),
                        weight.on(*ctx), bias.on(*ctx), N, C);
    }
    expect_close("layernorm.out" + label, out, kGpuOutTolerance<Out>);
    expect_close("layernorm.mean" + label, mean, 1e-6);
    expect_close("layernorm.rstd" + label, rstd, 1e-5);
    return out;
  }

  // residual_layernorm_forward likewise: the fp32 residual and statistics, and out within
  // kGpuOutTolerance. Returns out.
  template <typename Out>
  Mirrored<Out> expect_residual_forward_matches_cpu() {
    auto weight = mirrored(weight_host), bias = mirrored(bias_host);
    auto a = mirrored(a_host), b = mirrored(b_host);
    Mirrored<Out> out(size);
    Mirrored<float> residual(size), mean(N), rstd(N);
    out.poison();
    for (auto* m : {&residual, &mean, &rstd}) m->poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      residual_layernorm_forward(*ctx, residual.on(*ctx), out.on(*ctx), mean.on(*ctx),
                                 rstd.on(*ctx), a.on(*ctx), b.on(*ctx), weight.on(*ctx),
                                 bias.on(*ctx), N, C);
    }
    expect_close("layernorm.residual" + label, residual, 1e-7);
    expect_close("layernorm.residual_out" + label, out, kGpuOutTolerance<Out>);
    expect_close("layernorm.residual_mean" + label, mean, 1e-5);
    expect_close("layernorm.residual_rstd" + label, rstd, 1e-5);
    return out;
  }

  // The GPU's bf16 forward output against the fp32 CPU kernel's.
  void expect_forward_close_to_fp32_cpu(const Mirrored<bf16>& out) {
    std::vector<float> fp32_out(size), fp32_mean(N), fp32_rstd(N);
    layernorm_forward(cpu_, fp32_out.data(), fp32_mean.data(), fp32_rstd.data(), inp_host.data(),
                      weight_host.data(), bias_host.data(), N, C);
    expect_close("layernorm.out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out, 1e-2);
  }

  // The GPU's bf16 residual forward output against the fp32 CPU kernel's.
  void expect_residual_forward_close_to_fp32_cpu(const Mirrored<bf16>& out) {
    std::vector<float> fp32_residual(size), fp32_out(size), fp32_mean(N), fp32_rstd(N);
    residual_layernorm_forward(cpu_, fp32_residual.data(), fp32_out.data(), fp32_mean.data(),
                               fp32_rstd.data(), a_host.data(), b_host.data(), weight_host.data(),
                               bias_host.data(), N, C);
    expect_close("layernorm.residual_out" + label + " vs fp32 cpu", out.cuda.download(), fp32_out,
                 1e-2);
  }
};

// With a bf16 output also against the fp32 CPU kernel.
TEST_P(LayerNormGpuTest, ForwardMatchesCpu) {
  with_output_type([this]<typename Out>() {
    const Mirrored<Out> out = expect_forward_matches_cpu<Out>();
    if constexpr (std::is_same_v<Out, bf16>) expect_forward_close_to_fp32_cpu(out);
  });
}

TEST_P(LayerNormGpuTest, ResidualForwardMatchesCpu) {
  with_output_type([this]<typename Out>() {
    const Mirrored<Out> out = expect_residual_forward_matches_cpu<Out>();
    if constexpr (std::is_same_v<Out, bf16>) expect_residual_forward_close_to_fp32_cpu(out);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormGpuTest,
                         ::testing::ValuesIn(gpu_cases({OutputType::kFp32, OutputType::kBf16})),
                         gpu_case_name);

// The backward, all fp32: the accumulating dinp/dweight/dbias match the CPU backend's, and the
// GPU's dweight/dbias are bitwise reproducible.
class LayerNormBackwardGpuTest : public LayerNormGpuTest {};

TEST_P(LayerNormBackwardGpuTest, AccumulatesLikeCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<float> mean(N), rstd(N);
  std::vector<float> scratch_out(size);
  cpu::layernorm_forward(scratch_out.data(), mean.cpu.data(), rstd.cpu.data(), inp.cpu.data(),
                         weight.cpu.data(), bias.cpu.data(), N, C);
  mean.cuda.upload(mean.cpu.download());
  rstd.cuda.upload(rstd.cpu.download());
  auto dout = mirrored(random_floats(size, 6));
  auto dinp = mirrored(random_floats(size, 7));  // accumulated into
  auto dweight = mirrored(random_floats(C, 8));
  auto dbias = mirrored(random_floats(C, 9));
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_backward(*ctx, dinp.on(*ctx), dweight.on(*ctx), dbias.on(*ctx), dout.on(*ctx),
                       inp.on(*ctx), weight.on(*ctx), mean.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("layernorm.dinp" + label, dinp, 1e-5);
  expect_close("layernorm.dweight" + label, dweight, 1e-5);
  expect_close("layernorm.dbias" + label, dbias, 1e-5);

  // Frozen norm: null dweight and dbias, dinp still accumulates.
  for (const Context* ctx : {&cpu_, &cuda_}) {
    layernorm_backward(*ctx, dinp.on(*ctx), static_cast<float*>(nullptr),
                       static_cast<float*>(nullptr), dout.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                       mean.on(*ctx), rstd.on(*ctx), N, C);
  }
  expect_close("layernorm.dinp (frozen)" + label, dinp, 1e-5);
}

TEST_P(LayerNormBackwardGpuTest, WeightGradientIsBitwiseDeterministic) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  Mirrored<float> mean(N), rstd(N), out(size);
  layernorm_forward(cuda_, out.cuda.data(), mean.cuda.data(), rstd.cuda.data(), inp.cuda.data(),
                    weight.cuda.data(), bias.cuda.data(), N, C);
  auto dout = mirrored(random_floats(size, 10));
  std::vector<float> first_dweight, first_dbias;
  for (int run = 0; run < 3; ++run) {
    Buffer<float> dinp(Device::kCuda, size), dweight(Device::kCuda, C), dbias(Device::kCuda, C);
    dinp.zero(cuda_);
    dweight.zero(cuda_);
    dbias.zero(cuda_);
    layernorm_backward(cuda_, dinp.data(), dweight.data(), dbias.data(), dout.cuda.data(),
                       inp.cuda.data(), weight.cuda.data(), mean.cuda.data(), rstd.cuda.data(), N,
                       C);
    if (run == 0) {
      first_dweight = dweight.download();
      first_dbias = dbias.download();
    } else {
      EXPECT_TRUE(bitwise_equal(dweight.download(), first_dweight));
      EXPECT_TRUE(bitwise_equal(dbias.download(), first_dbias));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormBackwardGpuTest,
                         ::testing::ValuesIn(gpu_cases({OutputType::kFp32})), gpu_case_name);

}  // namespace
}  // namespace recforge::testing
