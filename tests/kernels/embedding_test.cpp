// Token and position embedding (kernels/embedding.h): the forward and the deterministic scatter
// backward accumulating into both tables. The CPU against PyTorch (tests/reference/kernels.py) in
// fp32 and fp64 over packed sequences with repeated tokens, a null position gradient, and the
// backward's run-to-run bits. The GPU against the CPU backend on the same inputs: the forward, the
// backward (the CPU's bits exactly, run to run too, tables skipped when null) with popular tokens.
#include "kernels/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---- CPU ----

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
  in.tokens = random_ints(rng, kN, 0, kV);
  // Positions restart at 0 for each packed sequence of random length in [1, P].
  std::uniform_int_distribution<int> length(1, kP);
  while (in.positions.size() < kN) {
    int sequence_length = length(rng);
    for (int p = 0; p < sequence_length && in.positions.size() < kN; ++p) {
      in.positions.push_back(p);
    }
  }
  in.wte = random_normal<float>(rng, kV * kC);
  in.wpe = random_normal<float>(rng, kP * kC);
  in.dout = random_normal<float>(rng, kN * kC);
  in.dwte0 = random_normal<float>(rng, kV * kC);
  in.dwpe0 = random_normal<float>(rng, kP * kC);
  return in;
}

struct EmbeddingData {
  EmbeddingInputs in;
  std::vector<double> out, dwte, dwpe;
};

EmbeddingData make_data() {
  std::mt19937_64 rng(fresh_seed());
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
  double untouched = relative_error(dwpe, convert<double>(data_->in.dwpe0));
  report_error("embedding.float.dwpe buffer vs its initial values (dwpe null)", untouched);
  EXPECT_EQ(untouched, 0.0);
}

TEST(EmbeddingDeterminism, BackwardIsBitwiseReproducible) {
  std::mt19937_64 rng(fresh_seed());
  EmbeddingInputs in = make_inputs(rng);
  std::vector<float> dwte_a, dwpe_a, dwte_b, dwpe_b;
  run_backward(in, dwte_a, dwpe_a);
  run_backward(in, dwte_b, dwpe_b);
  double difference = relative_error(dwte_a, convert<double>(dwte_b)) +
                      relative_error(dwpe_a, convert<double>(dwpe_b));
  report_error("embedding.float.backward run-to-run difference", difference);
  EXPECT_EQ(std::memcmp(dwte_a.data(), dwte_b.data(), dwte_a.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(dwpe_a.data(), dwpe_b.data(), dwpe_a.size() * sizeof(float)), 0);
}

// ---- GPU against the CPU ----

using EmbeddingGpuTest = GpuTest;

constexpr int kTokens = 3000, kChannels = 96, kVocab = 500, kPositions = 64;

// A ScatterIndex whose arrays live on the GPU.
struct DeviceScatterIndex {
  Buffer<int32_t> keys, starts, rows;
  int num_groups;
  explicit DeviceScatterIndex(const ScatterIndexHost& host)
      : keys(Device::kCuda, std::span<const int32_t>(host.keys)),
        starts(Device::kCuda, std::span<const int32_t>(host.starts)),
        rows(Device::kCuda, std::span<const int32_t>(host.rows)),
        num_groups(static_cast<int>(host.keys.size())) {}
  ScatterIndex view() const { return {keys.data(), starts.data(), rows.data(), num_groups}; }
};

std::vector<int32_t> positions_of(int n) {
  std::vector<int32_t> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i % kPositions;
  return positions;
}

TEST_F(EmbeddingGpuTest, ForwardMatchesCpu) {
  auto tokens = mirrored(random_ints(kTokens, 1, 0, kVocab - 1));
  auto positions = mirrored(positions_of(kTokens));
  auto wte = mirrored(random_floats(kVocab * kChannels, 2));
  auto wpe = mirrored(random_floats(kPositions * kChannels, 3));
  Mirrored<float> out(static_cast<size_t>(kTokens) * kChannels);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    embedding_forward(*ctx, out.on(*ctx), tokens.on(*ctx), positions.on(*ctx), wte.on(*ctx),
                      wpe.on(*ctx), kTokens, kChannels);
  }
  expect_close("embedding.out", out, 1e-7);
}

class EmbeddingBackwardGpuTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    // Few distinct tokens, so groups hold many rows each (a popular item).
    std::vector<int32_t> tokens = random_ints(kTokens, 4, 0, 40);
    token_host = build_scatter_index(tokens, kVocab);
    position_host = build_scatter_index(positions_of(kTokens), kPositions);
    token_device = std::make_unique<DeviceScatterIndex>(token_host);
    position_device = std::make_unique<DeviceScatterIndex>(position_host);
  }
  ScatterIndexHost token_host, position_host;
  std::unique_ptr<DeviceScatterIndex> token_device, position_device;
  std::vector<float> dout = random_floats(static_cast<size_t>(kTokens) * kChannels, 5);
  std::vector<float> dwte_start = random_floats(kVocab * kChannels, 6);
  std::vector<float> dwpe_start = random_floats(kPositions * kChannels, 7);
};

TEST_F(EmbeddingBackwardGpuTest, AccumulatesLikeCpu) {
  auto dout_m = mirrored(dout);
  auto dwte = mirrored(dwte_start);
  auto dwpe = mirrored(dwpe_start);
  embedding_backward(cpu_, dwte.cpu.data(), dwpe.cpu.data(), dout_m.cpu.data(), token_host.view(),
                     position_host.view(), kChannels);
  embedding_backward(cuda_, dwte.cuda.data(), dwpe.cuda.data(), dout_m.cuda.data(),
                     token_device->view(), position_device->view(), kChannels);
  expect_close("embedding.dwte", dwte, 1e-6);
  expect_close("embedding.dwpe", dwpe, 1e-6);
  // Same additions in the same order (no products to contract): the CPU's bits exactly.
  EXPECT_TRUE(bitwise_equal(dwte.cuda.download(), dwte.cpu.download()));
  EXPECT_TRUE(bitwise_equal(dwpe.cuda.download(), dwpe.cpu.download()));
}

TEST_F(EmbeddingBackwardGpuTest, IsBitwiseDeterministic) {
  Buffer<float> dout_gpu(Device::kCuda, std::span<const float>(dout));
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Buffer<float> dwte(Device::kCuda, std::span<const float>(dwte_start));
    embedding_backward(cuda_, dwte.data(), static_cast<float*>(nullptr), dout_gpu.data(),
                       token_device->view(), position_device->view(), kChannels);
    if (run == 0)
      first = dwte.download();
    else
      EXPECT_TRUE(bitwise_equal(dwte.download(), first));
  }
}

TEST_F(EmbeddingBackwardGpuTest, NullTablesAreSkipped) {
  auto dout_m = mirrored(dout);
  auto dwpe = mirrored(dwpe_start);
  embedding_backward(cpu_, static_cast<float*>(nullptr), dwpe.cpu.data(), dout_m.cpu.data(),
                     token_host.view(), position_host.view(), kChannels);
  embedding_backward(cuda_, static_cast<float*>(nullptr), dwpe.cuda.data(), dout_m.cuda.data(),
                     token_device->view(), position_device->view(), kChannels);
  expect_close("embedding.dwpe (null dwte)", dwpe, 1e-6);
}

}  // namespace
}  // namespace recforge::testing
