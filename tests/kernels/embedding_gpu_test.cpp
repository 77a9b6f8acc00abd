// Embedding forward and the deterministic scatter backward on the GPU against the CPU backend.
#include <memory>

#include "kernels/embedding.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

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
