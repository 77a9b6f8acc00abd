// SwiGLU, out = silu(gate)·up: the CPU backend against PyTorch (F.silu(gate)·up and its autograd,
// tests/reference/kernels.py) in float and double, including gates far into both tails; the CUDA
// backend against the CPU backend.
#include "kernels/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int kRows = 37, kWidth = 1536;  // SmolLM2's MLP width

struct SwigluCase {
  std::vector<float> gate, up, dout;
  std::vector<double> out, dgate, dup;
};

// Gates of scale 3, with some far into the tails (±20, ±90) where σ saturates.
std::vector<SwigluCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  const size_t size = static_cast<size_t>(kRows) * kWidth;
  SwigluCase c;
  c.gate = random_normal<float>(rng, size, 3.0);
  const float tails[] = {-90.0f, -20.0f, 20.0f, 90.0f};
  for (size_t i = 0; i < std::size(tails); ++i) c.gate[i * 101] = tails[i];
  c.up = random_normal<float>(rng, size);
  c.dout = random_normal<float>(rng, size);
  ReferenceCase ref("kernels.py", "swiglu");
  ref.put("gate", c.gate, {kRows, kWidth});
  ref.put("up", c.up, {kRows, kWidth});
  ref.put("dout", c.dout, {kRows, kWidth});
  ref.run();
  c.out = ref.result("out");
  c.dgate = ref.result("dgate");
  c.dup = ref.result("dup");
  return {c};
}

class SwigluReference : public SharedReferenceCases<SwigluCase, make_cases> {
 protected:
  template <typename T>
  void check_forward(double tolerance) {
    const SwigluCase& c = cases_->front();
    std::vector<T> gate = convert<T>(c.gate), up = convert<T>(c.up), out = poisoned<T>(gate.size());
    swiglu_forward(Context::cpu(), out.data(), gate.data(), up.data(),
                   static_cast<int64_t>(gate.size()));
    expect_close(std::string("swiglu.") + type_name<T>() + ".out", out, c.out, tolerance);
  }

  template <typename T>
  void check_backward(double tolerance) {
    const SwigluCase& c = cases_->front();
    std::vector<T> gate = convert<T>(c.gate), up = convert<T>(c.up), dout = convert<T>(c.dout);
    std::vector<T> dgate = poisoned<T>(gate.size()), dup = poisoned<T>(gate.size());
    swiglu_backward(Context::cpu(), dgate.data(), dup.data(), dout.data(), gate.data(), up.data(),
                    static_cast<int64_t>(gate.size()));
    const std::string label = std::string("swiglu.") + type_name<T>();
    expect_close(label + ".dgate", dgate, c.dgate, tolerance);
    expect_close(label + ".dup", dup, c.dup, tolerance);
  }
};

TEST_F(SwigluReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(SwigluReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-13); }

TEST_F(SwigluReference, BackwardMatchesPyTorch) { check_backward<float>(1e-6); }

TEST_F(SwigluReference, BackwardInDoubleMatchesPyTorch) { check_backward<double>(1e-13); }

// Extreme gates give finite values: silu(−1000) = 0 (not NaN), silu(1000) = 1000.
TEST(SwigluTails, ExtremeGatesStayFinite) {
  const std::vector<float> gate{-1000.0f, -100.0f, 100.0f, 1000.0f}, up(4, 1.0f), dout(4, 1.0f);
  std::vector<float> out(4), dgate(4), dup(4);
  const Context ctx = Context::cpu();
  swiglu_forward(ctx, out.data(), gate.data(), up.data(), 4);
  swiglu_backward(ctx, dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), 4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(std::isfinite(out[i]) && std::isfinite(dgate[i]) && std::isfinite(dup[i])) << i;
  }
  EXPECT_NEAR(out[0], 0.0f, 1e-30f);
  EXPECT_EQ(out[3], 1000.0f);
  EXPECT_EQ(dgate[3], 1.0f);
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend.

class SwigluGpuTest : public GpuTest {
 protected:
  static constexpr int64_t n = 1000 * 1536 + 7;
  std::vector<float> gate_host = random_floats(n, 1, -12.0f, 12.0f);
  std::vector<float> up_host = random_floats(n, 2);
};

TEST_F(SwigluGpuTest, ForwardMatchesCpu) {
  auto gate = mirrored(gate_host), up = mirrored(up_host);
  Mirrored<float> out(n);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    swiglu_forward(*ctx, out.on(*ctx), gate.on(*ctx), up.on(*ctx), n);
  }
  expect_close("swiglu.out", out, 1e-5);
}

TEST_F(SwigluGpuTest, BackwardMatchesCpu) {
  auto gate = mirrored(gate_host), up = mirrored(up_host), dout = mirrored(random_floats(n, 3));
  Mirrored<float> dgate(n), dup(n);
  dgate.poison();
  dup.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    swiglu_backward(*ctx, dgate.on(*ctx), dup.on(*ctx), dout.on(*ctx), gate.on(*ctx), up.on(*ctx),
                    n);
  }
  expect_close("swiglu.dgate", dgate, 1e-5);
  expect_close("swiglu.dup", dup, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
