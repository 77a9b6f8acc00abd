// Rotary position embeddings (rotate-half layout): the CPU backend against PyTorch computing
// transformers' LlamaRotaryEmbedding (tests/reference/kernels.py: fp32 inverse frequencies and
// angles, q·cos + rotate_half(q)·sin) in float and double, forward and backward, full and partial
// rotary dimensions, positions per token including 0 and ones near 8000; the inverse frequencies
// bit for bit; the CUDA backend against the CPU backend.
#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/math.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int kTokens = 67;

// SmolLM2's (3 kv heads of 64, base 1e5), a partial rotary dimension, a large base and head, and a
// small head rotating a quarter of its channels.
constexpr RopeShape kReferenceShapes[] = {
    {3, 64, 64, 100000.0f}, {2, 64, 32, 10000.0f}, {4, 128, 128, 500000.0f}, {1, 32, 8, 10000.0f}};

// Positions of kTokens tokens: 0, 1, 7999, 8000, 8191, then random ones up to 8192.
std::vector<int32_t> token_positions(std::mt19937_64& rng) {
  std::vector<int32_t> positions = random_ints(rng, kTokens, 0, 8192);
  const int32_t fixed[] = {0, 1, 7999, 8000, 8191};
  std::copy(std::begin(fixed), std::end(fixed), positions.begin());
  return positions;
}

struct RopeCase {
  RopeShape shape;
  std::vector<int32_t> positions;
  std::vector<float> x, dout;  // [N, H, HS]
  std::vector<double> out, dx, inv_freq;

  std::string label(const char* type) const {
    return std::string("rope.") + type + ".H" + std::to_string(shape.num_heads) + ".HS" +
           std::to_string(shape.head_size) + ".R" + std::to_string(shape.rotary_dim);
  }
  size_t size() const { return static_cast<size_t>(kTokens) * shape.num_heads * shape.head_size; }
};

std::vector<RopeCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<RopeCase> cases;
  ReferenceCase ref("kernels.py", "rope");
  ref.put_scalar("num_cases", std::size(kReferenceShapes));
  for (const RopeShape& shape : kReferenceShapes) {
    RopeCase c{shape, token_positions(rng)};
    c.x = random_normal<float>(rng, c.size());
    c.dout = random_normal<float>(rng, c.size());
    const std::string p = case_prefix(cases.size());
    const std::vector<int64_t> dims{kTokens, shape.num_heads, shape.head_size};
    ref.put(p + "x", c.x, dims);
    ref.put(p + "dout", c.dout, dims);
    ref.put(p + "positions", c.positions, {kTokens});
    ref.put_scalar(p + "R", shape.rotary_dim);
    ref.put_scalar(p + "base", shape.base);
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = case_prefix(i);
    cases[i].out = ref.result(p + "out");
    cases[i].dx = ref.result(p + "dx");
    cases[i].inv_freq = ref.result(p + "inv_freq");
  }
  return cases;
}

class RopeReference : public SharedReferenceCases<RopeCase, make_cases> {
 protected:
  template <typename T>
  void check_forward(double tolerance) {
    for (const RopeCase& c : *cases_) {
      std::vector<T> x = convert<T>(c.x);
      rope_forward(Context::cpu(), x.data(), c.positions.data(), kTokens, c.shape);
      expect_close(c.label(type_name<T>()) + ".out", x, c.out, tolerance);
    }
  }

  template <typename T>
  void check_backward(double tolerance) {
    for (const RopeCase& c : *cases_) {
      std::vector<T> dx = convert<T>(c.dout);
      rope_backward(Context::cpu(), dx.data(), c.positions.data(), kTokens, c.shape);
      expect_close(c.label(type_name<T>()) + ".dx", dx, c.dx, tolerance);
    }
  }
};

// Both backends' inverse frequencies are transformers' fp32 values exactly: any difference would
// grow with the position (θ = p · inv_freq).
TEST_F(RopeReference, InverseFrequenciesMatchTransformersBitForBit) {
  for (const RopeCase& c : *cases_) {
    std::vector<float> inv_freq;
    for (int i = 0; i < c.shape.rotary_dim / 2; ++i) {
      inv_freq.push_back(rope_inv_freq(i, c.shape.rotary_dim, c.shape.base));
    }
    const double error = relative_error(inv_freq, c.inv_freq);
    report_error(c.label("float") + ".inv_freq", error);
    EXPECT_EQ(error, 0.0) << c.label("float");
  }
}

TEST_F(RopeReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(RopeReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-13); }

TEST_F(RopeReference, BackwardMatchesPyTorch) { check_backward<float>(1e-6); }

TEST_F(RopeReference, BackwardInDoubleMatchesPyTorch) { check_backward<double>(1e-13); }

// Channels R .. HS − 1 pass through bit for bit, and position 0 is the identity.
TEST(RopePassThrough, UnrotatedChannelsAndPositionZeroAreUntouched) {
  const RopeShape shape{2, 64, 32, 10000.0f};
  const int N = 3;
  std::mt19937_64 rng(fresh_seed());
  const std::vector<float> x = random_normal<float>(rng, N * 2 * 64);
  const std::vector<int32_t> positions{0, 5, 8000};
  std::vector<float> rotated = x;
  rope_forward(Context::cpu(), rotated.data(), positions.data(), N, shape);
  for (int n = 0; n < N; ++n) {
    for (int h = 0; h < shape.num_heads; ++h) {
      for (int d = 0; d < shape.head_size; ++d) {
        const size_t at = (static_cast<size_t>(n) * shape.num_heads + h) * shape.head_size + d;
        if (n == 0 || d >= shape.rotary_dim) ASSERT_EQ(rotated[at], x[at]) << n << " " << d;
      }
    }
  }
}

TEST(RopeValidation, OddRotaryDimensionThrows) {
  std::vector<float> x(64);
  const int32_t position = 0;
  EXPECT_THROW(rope_forward(Context::cpu(), x.data(), &position, 1, {1, 64, 31, 10000.0f}), Error);
  EXPECT_THROW(rope_forward(Context::cpu(), x.data(), &position, 1, {1, 64, 66, 10000.0f}), Error);
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend.

constexpr RopeShape kGpuShapes[] = {
    {9, 64, 64, 100000.0f}, {3, 64, 32, 10000.0f}, {4, 128, 128, 500000.0f}};

void PrintTo(const RopeShape& s, std::ostream* os) {
  *os << "H=" << s.num_heads << " HS=" << s.head_size << " R=" << s.rotary_dim;
}

std::string gpu_case_name(const ::testing::TestParamInfo<RopeShape>& info) {
  return cat("H", info.param.num_heads, "_HS", info.param.head_size, "_R", info.param.rotary_dim);
}

class RopeGpuTest : public GpuTestWithParam<RopeShape> {
 protected:
  static constexpr int N = 1000;
  RopeShape shape = GetParam();
  size_t size = static_cast<size_t>(N) * shape.num_heads * shape.head_size;
  std::string label = cat(" H=", shape.num_heads, " HS=", shape.head_size, " R=", shape.rotary_dim);
  std::vector<int32_t> positions_host = random_ints(N, 1, 0, 8192);

  // rope_forward (or rope_backward) on both backends, in place on the same values.
  void check(bool backward) {
    auto x = mirrored(random_floats(size, 2, -2.0f, 2.0f));
    auto positions = mirrored(positions_host);
    for (const Context* ctx : {&cpu_, &cuda_}) {
      if (backward) {
        rope_backward(*ctx, x.on(*ctx), positions.on(*ctx), N, shape);
      } else {
        rope_forward(*ctx, x.on(*ctx), positions.on(*ctx), N, shape);
      }
    }
    expect_close(cat("rope.", backward ? "dx" : "out", label), x, 1e-6);
  }
};

TEST_P(RopeGpuTest, ForwardMatchesCpu) { check(/*backward=*/false); }

TEST_P(RopeGpuTest, BackwardMatchesCpu) { check(/*backward=*/true); }

INSTANTIATE_TEST_SUITE_P(Shapes, RopeGpuTest, ::testing::ValuesIn(kGpuShapes), gpu_case_name);

}  // namespace
}  // namespace recforge::testing
