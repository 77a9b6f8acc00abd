// Flash attention on the GPU against the CPU backend, for every head size, both masks, and a
// packed batch whose sequences have lengths 0, 1, tile-boundary sizes and several hundred.
#include <algorithm>
#include <memory>
#include <numeric>

#include "kernels/attention.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
namespace {

struct AttentionCase {
  int head_size;
  AttentionMask mask;
};

std::string mask_name(AttentionMask mask) {
  return mask == AttentionMask::kCausal ? "causal" : "bidirectional";
}

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << mask_name(c.mask) << " HS=" << c.head_size;
}

// Sequence lengths of the packed batch: empty sequences, single tokens, tile edges (31..33, 63..65,
// 128, 129) and long ones.
const std::vector<int> kLengths = {0, 1, 300, 17, 64, 65, 0, 129, 1, 33, 200, 31, 128, 63, 0};
constexpr int kHeads = 3;

class AttentionGpuTest : public GpuTestWithParam<AttentionCase> {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    std::vector<int32_t> offsets(kLengths.size() + 1, 0);
    std::partial_sum(kLengths.begin(), kLengths.end(), offsets.begin() + 1);
    offsets_ = std::make_unique<Mirrored<int32_t>>(std::span<const int32_t>(offsets));
    num_tokens_ = offsets.back();
    max_length_ = *std::max_element(kLengths.begin(), kLengths.end());
  }
  PackedSequences seqs(const Context& ctx) {
    return {offsets_->on(ctx), static_cast<int>(kLengths.size()), num_tokens_, max_length_};
  }
  AttentionShape shape() const { return {kHeads, GetParam().head_size, GetParam().mask}; }
  std::string label() const {
    return cat(" ", mask_name(GetParam().mask), " HS=", GetParam().head_size);
  }
  size_t qkv_size() const { return static_cast<size_t>(num_tokens_) * 3 * shape().channels(); }
  size_t out_size() const { return static_cast<size_t>(num_tokens_) * shape().channels(); }
  size_t lse_size() const { return static_cast<size_t>(num_tokens_) * kHeads; }

  std::unique_ptr<Mirrored<int32_t>> offsets_;
  int num_tokens_ = 0, max_length_ = 0;
};

TEST_P(AttentionGpuTest, ForwardMatchesCpu) {
  auto qkv = mirrored(random_floats(qkv_size(), 1, -2.0f, 2.0f));
  Mirrored<float> out(out_size()), lse(lse_size());
  out.poison();
  lse.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
  }
  expect_close("attention.out" + label(), out, 1e-5);
  expect_close("attention.lse" + label(), lse, 1e-5);
}

TEST_P(AttentionGpuTest, BackwardMatchesCpuAndIsDeterministic) {
  auto qkv = mirrored(random_floats(qkv_size(), 2, -2.0f, 2.0f));
  auto dout = mirrored(random_floats(out_size(), 3));
  Mirrored<float> out(out_size()), lse(lse_size()), delta(lse_size()), dqkv(qkv_size());
  for (auto* m : {&out, &lse, &delta, &dqkv}) m->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
    attention_backward(*ctx, dqkv.on(*ctx), delta.on(*ctx), dout.on(*ctx), qkv.on(*ctx),
                       out.on(*ctx), lse.on(*ctx), seqs(*ctx), shape());
  }
  expect_close("attention.delta" + label(), delta, 1e-5);
  expect_close("attention.dqkv" + label(), dqkv, 1e-4);

  // Each of dq, dk, dv separately: a bug confined to one part must not hide in the total.
  const std::vector<float> gpu = dqkv.cuda.download(), cpu = dqkv.cpu.download();
  const size_t C = shape().channels();
  for (int part = 0; part < 3; ++part) {
    std::vector<float> gpu_part, cpu_part;
    for (size_t n = 0; n < static_cast<size_t>(num_tokens_); ++n) {
      size_t at = (3 * n + part) * C;
      gpu_part.insert(gpu_part.end(), gpu.begin() + at, gpu.begin() + at + C);
      cpu_part.insert(cpu_part.end(), cpu.begin() + at, cpu.begin() + at + C);
    }
    double error = relative_error(gpu_part, cpu_part);
    std::cout << "[ rel_err ] attention.d"
              << "qkv"[part] << label() << ": " << error << std::endl;
    EXPECT_LT(error, 1e-4) << "part " << part;
  }

  // A second run, on poisoned output, gives the same bits.
  Mirrored<float> again(qkv_size());
  again.poison();
  attention_backward(cuda_, again.cuda.data(), delta.cuda.data(), dout.cuda.data(), qkv.cuda.data(),
                     out.cuda.data(), lse.cuda.data(), seqs(cuda_), shape());
  EXPECT_TRUE(bitwise_equal(again.cuda.download(), gpu));
}

INSTANTIATE_TEST_SUITE_P(HeadSizesAndMasks, AttentionGpuTest,
                         ::testing::Values(AttentionCase{32, AttentionMask::kCausal},
                                           AttentionCase{64, AttentionMask::kCausal},
                                           AttentionCase{128, AttentionMask::kCausal},
                                           AttentionCase{32, AttentionMask::kBidirectional},
                                           AttentionCase{64, AttentionMask::kBidirectional},
                                           AttentionCase{128, AttentionMask::kBidirectional}),
                         [](const auto& info) {
                           return cat(mask_name(info.param.mask), "_HS", info.param.head_size);
                         });

class AttentionEdgeGpuTest : public GpuTest {};

TEST_F(AttentionEdgeGpuTest, SingleTokenSequencesAttendToThemselves) {
  // A sequence of one token: out = v, and its gradient is dv = dout, dq = dk = 0.
  constexpr int HS = 64, NH = 2, C = HS * NH, B = 4;
  std::vector<int32_t> offsets = {0, 1, 2, 3, 4};
  Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(offsets));
  const PackedSequences seqs{offsets_gpu.data(), B, B, 1};
  const AttentionShape shape{NH, HS, AttentionMask::kCausal};
  std::vector<float> qkv_host = random_floats(static_cast<size_t>(B) * 3 * C, 1);
  std::vector<float> dout_host = random_floats(static_cast<size_t>(B) * C, 2);
  Buffer<float> qkv(Device::kCuda, std::span<const float>(qkv_host));
  Buffer<float> dout(Device::kCuda, std::span<const float>(dout_host));
  Buffer<float> out(Device::kCuda, B * C), lse(Device::kCuda, B * NH), delta(Device::kCuda, B * NH);
  Buffer<float> dqkv(Device::kCuda, B * 3 * C);
  fill_bytes(Device::kCuda, dqkv.data(), 0xFF, dqkv.bytes());
  attention_forward(cuda_, out.data(), lse.data(), qkv.data(), seqs, shape);
  attention_backward(cuda_, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                     lse.data(), seqs, shape);
  std::vector<float> out_host = out.download(), dqkv_host = dqkv.download();
  for (int n = 0; n < B; ++n) {
    for (int c = 0; c < C; ++c) {
      EXPECT_NEAR(out_host[n * C + c], qkv_host[(3 * n + 2) * C + c], 1e-6);
      EXPECT_NEAR(dqkv_host[(3 * n + 0) * C + c], 0.0f, 1e-5);  // dP − D up to rounding
      EXPECT_NEAR(dqkv_host[(3 * n + 1) * C + c], 0.0f, 1e-5);
      EXPECT_NEAR(dqkv_host[(3 * n + 2) * C + c], dout_host[n * C + c], 1e-5);
    }
  }
}

TEST_F(AttentionEdgeGpuTest, EmptyBatchDoesNothing) {
  std::vector<int32_t> offsets = {0, 0, 0};
  Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(offsets));
  const PackedSequences seqs{offsets_gpu.data(), 2, 0, 0};
  const AttentionShape shape{2, 32, AttentionMask::kBidirectional};
  float* const none = nullptr;
  attention_forward(cuda_, none, none, none, seqs, shape);
  attention_backward(cuda_, none, none, none, none, none, none, seqs, shape);
  cuda_.synchronize();
}

}  // namespace
}  // namespace recforge::gpu_test
