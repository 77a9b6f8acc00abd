// GELU (tanh approximation), forward and backward, with fp32 storage and with bf16 storage (the
// forward on bf16, the backward as (dinp, inp, dout) = (bf16, bf16, fp32)). The CPU backend against
// PyTorch (tests/reference/kernels.py for fp32, bf16_ops.py running the bf16 policy) and the bf16
// path against the fp32 kernel on the unrounded inputs; the CUDA backend against the CPU backend on
// the same inputs.
#include "kernels/gelu.h"

#include <gtest/gtest.h>

#include <cstring>
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

constexpr int64_t kReferenceSize = 10007;

// The reference tests' inputs, drawn as fp32 (a bf16 run rounds inp; dout stays fp32).
struct GeluInputs {
  std::vector<float> inp, dout;
};

GeluInputs draw_inputs(std::mt19937_64& rng) {
  GeluInputs x;
  x.inp = random_normal<float>(rng, kReferenceSize, 2.0);
  x.dout = random_normal<float>(rng, kReferenceSize);
  return x;
}

// out = gelu(inp) on the CPU backend into a poisoned out, inp stored as T.
template <typename T>
std::vector<T> cpu_forward(const std::vector<float>& inp_host) {
  std::vector<T> inp = stored_as<T>(inp_host), out = poisoned<T>(inp.size());
  gelu_forward(Context::cpu(), out.data(), inp.data(), inp.size());
  return out;
}

// dinp = gelu'(inp) · dout on the CPU backend into a poisoned dinp, inp stored as T.
template <typename T>
std::vector<T> cpu_backward(const std::vector<float>& inp_host, const std::vector<float>& dout) {
  std::vector<T> inp = stored_as<T>(inp_host), dinp = poisoned<T>(inp.size());
  gelu_backward(Context::cpu(), dinp.data(), inp.data(), dout.data(), inp.size());
  return dinp;
}

TEST(GeluReference, ForwardAndBackwardMatchPyTorch) {
  std::mt19937_64 rng(fresh_seed());
  const GeluInputs x = draw_inputs(rng);
  ReferenceCase ref("kernels.py", "gelu");
  ref.put("inp", x.inp, {kReferenceSize});
  ref.put("dout", x.dout, {kReferenceSize});
  ref.run();
  expect_close("gelu.out", cpu_forward<float>(x.inp), ref.result("out"), 1e-6);
  expect_close("gelu.dinp", cpu_backward<float>(x.inp, x.dout), ref.result("dinp"), 1e-6);
}

struct GeluBf16Case {
  GeluInputs inputs;
  std::vector<double> out, dinp;
};

std::vector<GeluBf16Case> make_bf16_cases() {
  std::mt19937_64 rng(fresh_seed());
  GeluBf16Case c{draw_inputs(rng)};
  ReferenceCase ref("bf16_ops.py", "gelu_bf16");
  ref.put("inp", rounded_to_bf16(c.inputs.inp), {kReferenceSize});
  ref.put("dout", c.inputs.dout, {kReferenceSize});
  ref.run();
  c.out = ref.result("out");
  c.dinp = ref.result("dinp");
  return {std::move(c)};
}

using GeluBf16Reference = SharedReferenceCases<GeluBf16Case, make_bf16_cases>;

TEST_F(GeluBf16Reference, ForwardMatchesPyTorch) {
  const GeluInputs& x = cases_->front().inputs;
  expect_close("gelu.bf16.out", to_float(cpu_forward<bf16>(x.inp)), cases_->front().out, 1e-2);
}

TEST_F(GeluBf16Reference, BackwardWithFp32GradientMatchesPyTorch) {
  const GeluInputs& x = cases_->front().inputs;
  expect_close("gelu.bf16.dinp", to_float(cpu_backward<bf16>(x.inp, x.dout)), cases_->front().dinp,
               1e-2);
}

TEST_F(GeluBf16Reference, StaysWithinBf16PrecisionOfFp32) {
  const GeluInputs& x = cases_->front().inputs;
  expect_close("gelu.bf16 vs fp32.out", to_float(cpu_forward<bf16>(x.inp)),
               convert<double>(cpu_forward<float>(x.inp)), 1e-2);
  expect_close("gelu.bf16 vs fp32.dinp", to_float(cpu_backward<bf16>(x.inp, x.dout)),
               convert<double>(cpu_backward<float>(x.inp, x.dout)), 1e-2);
}

TEST_F(GeluBf16Reference, InPlaceForwardGivesTheSameBits) {
  const GeluInputs& x = cases_->front().inputs;
  std::vector<bf16> values = to_bf16(x.inp);
  gelu_forward(Context::cpu(), values.data(), values.data(), values.size());
  EXPECT_EQ(
      std::memcmp(values.data(), cpu_forward<bf16>(x.inp).data(), values.size() * sizeof(bf16)), 0);
}

// What differs between the fp32 and the bf16 GPU tests. Both sizes also exercise the grid-stride
// loop's reuse of threads.
template <typename T>
struct GeluGpuTraits;

template <>
struct GeluGpuTraits<float> {
  static constexpr const char* kName = "fp32";
  static constexpr const char* kLabelTag = "";
  static constexpr int64_t kSize = 1 << 20;
  static constexpr double kTolerance = 1e-5;
};

template <>
struct GeluGpuTraits<bf16> {
  static constexpr const char* kName = "bf16";
  static constexpr const char* kLabelTag = " bf16";
  static constexpr int64_t kSize = (1 << 20) + 3;
  static constexpr double kTolerance = 1e-2;
};

// Test names: GeluGpuTest/fp32, GeluGpuTest/bf16.
struct StorageTypeName {
  template <typename T>
  static std::string GetName(int) {
    return GeluGpuTraits<T>::kName;
  }
};

// GELU on both backends from the same inputs stored as T (float, or bf16 for the mixed-precision
// path; dout stays fp32).
template <typename T>
class GeluGpuTest : public GpuTest {
 protected:
  using Traits = GeluGpuTraits<T>;

  // The printed label of an output: "gelu.out", "gelu.out bf16", ...
  static std::string label(const char* output, const char* suffix = "") {
    return cat("gelu.", output, Traits::kLabelTag, suffix);
  }

  // out = gelu(inp) into a poisoned out, inp stored as T.
  Mirrored<T> forward(const std::vector<float>& inp_host) {
    const int64_t n = static_cast<int64_t>(inp_host.size());
    auto inp = mirrored(stored_as<T>(inp_host));
    Mirrored<T> out(n);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, out.on(*ctx), inp.on(*ctx), n);
    return out;
  }

  // dinp = gelu'(inp) · dout into a poisoned dinp, inp stored as T.
  Mirrored<T> backward(const std::vector<float>& inp_host, const std::vector<float>& dout_host) {
    const int64_t n = static_cast<int64_t>(inp_host.size());
    auto inp = mirrored(stored_as<T>(inp_host));
    auto dout = mirrored(dout_host);
    Mirrored<T> dinp(n);
    dinp.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      gelu_backward(*ctx, dinp.on(*ctx), inp.on(*ctx), dout.on(*ctx), n);
    }
    return dinp;
  }

  // x = gelu(x) in place, x stored as T.
  Mirrored<T> forward_in_place(const std::vector<float>& x_host) {
    const int64_t n = static_cast<int64_t>(x_host.size());
    auto x = mirrored(stored_as<T>(x_host));
    for (const Context* ctx : {&cpu_, &cuda_}) gelu_forward(*ctx, x.on(*ctx), x.on(*ctx), n);
    return x;
  }
};

using StorageTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(GeluGpuTest, StorageTypes, StorageTypeName);

// With bf16 storage also against the fp32 CPU kernel on the unrounded inputs.
TYPED_TEST(GeluGpuTest, ForwardMatchesCpu) {
  using Traits = GeluGpuTraits<TypeParam>;
  const std::vector<float> inp = random_floats(Traits::kSize, 1, -6.0f, 6.0f);
  const Mirrored<TypeParam> out = this->forward(inp);
  expect_close(this->label("out"), out, Traits::kTolerance);
  if constexpr (std::is_same_v<TypeParam, bf16>) {
    expect_close(this->label("out", " vs fp32 cpu"), out.cuda.download(), cpu_forward<float>(inp),
                 1e-2);
  }
}

TYPED_TEST(GeluGpuTest, BackwardWithFp32GradientMatchesCpu) {
  using Traits = GeluGpuTraits<TypeParam>;
  const std::vector<float> inp = random_floats(Traits::kSize, 2, -6.0f, 6.0f);
  const std::vector<float> dout = random_floats(Traits::kSize, 3);
  const Mirrored<TypeParam> dinp = this->backward(inp, dout);
  expect_close(this->label("dinp"), dinp, Traits::kTolerance);
  if constexpr (std::is_same_v<TypeParam, bf16>) {
    expect_close(this->label("dinp", " vs fp32 cpu"), dinp.cuda.download(),
                 cpu_backward<float>(inp, dout), 1e-2);
  }
}

TYPED_TEST(GeluGpuTest, InPlaceForward) {
  expect_close(this->label("out", " in place"),
               this->forward_in_place(random_floats(1000, 4, -3.0f, 3.0f)),
               GeluGpuTraits<TypeParam>::kTolerance);
}

}  // namespace
}  // namespace recforge::testing
