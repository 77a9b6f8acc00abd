#include "kernels/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::type_name;

constexpr int kN = 600;  // tokens in the packed batch
constexpr int kC = 96;   // channels
constexpr int kV = 211;  // vocabulary: N > V, so many tokens repeat
constexpr int kP = 128;  // positions

struct EmbeddingInputs {
  std::vector<int32_t> tokens, positions;
  std::vector<float> wte, wpe, dout, dwte0, dwpe0;  // dwte0, dwpe0: the gradients before backward
};

EmbeddingInputs make_inputs(std::mt19937_64& rng) {
  EmbeddingInputs in;
  in.tokens = testing::random_ints(rng, kN, 0, kV);
  // Positions restart at 0 for each packed sequence of random length in [1, P].
  std::uniform_int_distribution<int> length(1, kP);
  while (in.positions.size() < kN) {
    int sequence_length = length(rng);
    for (int p = 0; p < sequence_length && in.positions.size() < kN; ++p) {
      in.positions.push_back(p);
    }
  }
  in.wte = testing::random_normal<float>(rng, kV * kC);
  in.wpe = testing::random_normal<float>(rng, kP * kC);
  in.dout = testing::random_normal<float>(rng, kN * kC);
  in.dwte0 = testing::random_normal<float>(rng, kV * kC);
  in.dwpe0 = testing::random_normal<float>(rng, kP * kC);
  return in;
}

struct EmbeddingData {
  EmbeddingInputs in;
  std::vector<double> out, dwte, dwpe;
};

EmbeddingData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  EmbeddingData data{make_inputs(rng)};
  const EmbeddingInputs& in = data.in;
  ReferenceCase ref("kernels.py", "embedding");
  ref.put("tokens", in.tokens, {kN});
  ref.put("positions", in.positions, {kN});
  ref.put("wte", in.wte, {kV, kC});
  ref.put("wpe", in.wpe, {kP, kC});
  ref.put("dout", in.dout, {kN, kC});
  ref.put("dwte0", in.dwte0, {kV, kC});
  ref.put("dwpe0", in.dwpe0, {kP, kC});
  ref.run();
  data.out = ref.result("out");
  data.dwte = ref.result("dwte");
  data.dwpe = ref.result("dwpe");
  return data;
}

// Runs the backward from the initial gradients dwte0/dwpe0 into `dwte`, `dwpe` (skipped when
// `with_dwpe` is false).
template <typename T>
void run_backward(const EmbeddingInputs& in, std::vector<T>& dwte, std::vector<T>& dwpe,
                  bool with_dwpe = true) {
  ScatterIndexHost token_index = build_scatter_index(in.tokens, kV);
  ScatterIndexHost position_index = build_scatter_index(in.positions, kP);
  dwte = convert<T>(in.dwte0);
  dwpe = convert<T>(in.dwpe0);
  std::vector<T> dout = convert<T>(in.dout);
  embedding_backward(Context::cpu(), dwte.data(), with_dwpe ? dwpe.data() : nullptr, dout.data(),
                     token_index.view(), position_index.view(), kC);
}

// The PyTorch reference is computed once and shared by the tests of the suite.
class EmbeddingReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<EmbeddingData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }

  template <typename T>
  void check_forward(double tolerance) {
    const EmbeddingInputs& in = data_->in;
    std::vector<T> wte = convert<T>(in.wte), wpe = convert<T>(in.wpe);
    std::vector<T> out(kN * kC, NAN);
    embedding_forward(Context::cpu(), out.data(), in.tokens.data(), in.positions.data(), wte.data(),
                      wpe.data(), kN, kC);
    expect_close(std::string("embedding.") + type_name<T>() + ".out", out, data_->out, tolerance);
  }

  template <typename T>
  void check_backward(double tolerance) {
    std::vector<T> dwte, dwpe;
    run_backward(data_->in, dwte, dwpe);
    std::string prefix = std::string("embedding.") + type_name<T>();
    expect_close(prefix + ".dwte", dwte, data_->dwte, tolerance);
    expect_close(prefix + ".dwpe", dwpe, data_->dwpe, tolerance);
  }

  static inline std::unique_ptr<EmbeddingData> data_;
};

TEST_F(EmbeddingReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(EmbeddingReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-14); }

TEST_F(EmbeddingReference, BackwardAccumulatesIntoTablesLikePyTorch) {
  check_backward<float>(1e-6);
}

TEST_F(EmbeddingReference, BackwardInDoubleAccumulatesIntoTablesLikePyTorch) {
  check_backward<double>(1e-14);
}

TEST_F(EmbeddingReference, NullPositionGradientIsSkipped) {
  std::vector<float> dwte, dwpe;
  run_backward(data_->in, dwte, dwpe, /*with_dwpe=*/false);
  expect_close("embedding.float.dwte (dwpe null)", dwte, data_->dwte, 1e-6);
  double untouched = testing::relative_error(dwpe, convert<double>(data_->in.dwpe0));
  testing::report_error("embedding.float.dwpe buffer vs its initial values (dwpe null)", untouched);
  EXPECT_EQ(untouched, 0.0);
}

TEST(EmbeddingDeterminism, BackwardIsBitwiseReproducible) {
  std::mt19937_64 rng(testing::fresh_seed());
  EmbeddingInputs in = make_inputs(rng);
  std::vector<float> dwte_a, dwpe_a, dwte_b, dwpe_b;
  run_backward(in, dwte_a, dwpe_a);
  run_backward(in, dwte_b, dwpe_b);
  double difference = testing::relative_error(dwte_a, convert<double>(dwte_b)) +
                      testing::relative_error(dwpe_a, convert<double>(dwpe_b));
  testing::report_error("embedding.float.backward run-to-run difference", difference);
  EXPECT_EQ(std::memcmp(dwte_a.data(), dwte_b.data(), dwte_a.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(dwpe_a.data(), dwpe_b.data(), dwpe_a.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace recforge
