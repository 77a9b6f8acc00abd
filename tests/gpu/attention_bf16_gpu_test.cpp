// Flash attention with bf16 storage on the GPU: against the CPU backend's bf16 path on the same
// inputs, and against the fp32 CPU kernel on the unrounded inputs, for every head size and both
// masks over a packed batch with lengths 0, 1, tile-boundary sizes and several hundred.
#include <algorithm>
#include <memory>
#include <numeric>

#include "kernels/attention.h"
#include "tests/gpu/bf16_gpu_support.h"

namespace recforge::gpu_test {
namespace {

using testing::to_bf16;

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

const std::vector<int> kLengths = {0, 1, 300, 17, 64, 65, 0, 129, 1, 33, 200, 31, 128, 63, 0};
constexpr int kHeads = 3;

class AttentionBf16GpuTest : public GpuTestWithParam<AttentionCase> {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    std::vector<int32_t> offsets(kLengths.size() + 1, 0);
    std::partial_sum(kLengths.begin(), kLengths.end(), offsets.begin() + 1);
    offsets_ = std::make_unique<Mirrored<int32_t>>(std::span<const int32_t>(offsets));
    num_tokens_ = offsets.back();
    max_length_ = *std::max_element(kLengths.begin(), kLengths.end());
    const size_t C = shape().channels();
    qkv_ = random_floats(num_tokens_ * 3 * C, 11, -2.0f, 2.0f);
    dout_ = random_floats(num_tokens_ * C, 12);
  }
  PackedSequences seqs(const Context& ctx) {
    return {offsets_->on(ctx), static_cast<int>(kLengths.size()), num_tokens_, max_length_};
  }
  AttentionShape shape() const { return {kHeads, GetParam().head_size, GetParam().mask}; }
  std::string label() const {
    return cat(" bf16 ", mask_name(GetParam().mask), " HS=", GetParam().head_size);
  }
  size_t out_size() const { return static_cast<size_t>(num_tokens_) * shape().channels(); }
  size_t lse_size() const { return static_cast<size_t>(num_tokens_) * kHeads; }

  // The fp32 CPU kernel's out and dqkv on the unrounded inputs.
  std::pair<std::vector<float>, std::vector<float>> fp32_cpu() {
    std::vector<float> out(out_size()), lse(lse_size()), delta(lse_size()), dqkv(qkv_.size());
    attention_forward(cpu_, out.data(), lse.data(), qkv_.data(), seqs(cpu_), shape());
    attention_backward(cpu_, dqkv.data(), delta.data(), dout_.data(), qkv_.data(), out.data(),
                       lse.data(), seqs(cpu_), shape());
    return {out, dqkv};
  }

  std::unique_ptr<Mirrored<int32_t>> offsets_;
  int num_tokens_ = 0, max_length_ = 0;
  std::vector<float> qkv_, dout_;
};

TEST_P(AttentionBf16GpuTest, ForwardMatchesCpu) {
  auto qkv = mirrored(to_bf16(qkv_));
  Mirrored<bf16> out(out_size());
  Mirrored<float> lse(lse_size());
  out.poison();
  lse.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
  }
  expect_close("attention.out" + label(), out, 1e-2);
  expect_close("attention.lse" + label(), lse, 1e-5);
  expect_close("attention.out" + label() + " vs fp32 cpu", out.cuda.download(), fp32_cpu().first,
               1e-2);
}

TEST_P(AttentionBf16GpuTest, BackwardMatchesCpuAndIsDeterministic) {
  auto qkv = mirrored(to_bf16(qkv_));
  auto dout = mirrored(to_bf16(dout_));
  Mirrored<bf16> out(out_size()), dqkv(qkv_.size());
  Mirrored<float> lse(lse_size()), delta(lse_size());
  out.poison();
  dqkv.poison();
  lse.poison();
  delta.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    attention_forward(*ctx, out.on(*ctx), lse.on(*ctx), qkv.on(*ctx), seqs(*ctx), shape());
    attention_backward(*ctx, dqkv.on(*ctx), delta.on(*ctx), dout.on(*ctx), qkv.on(*ctx),
                       out.on(*ctx), lse.on(*ctx), seqs(*ctx), shape());
  }
  // delta reads the stored bf16 out, whose two copies may differ by a rounding flip.
  expect_close("attention.delta" + label(), delta, 1e-3);
  const std::vector<float> gpu = widened(dqkv.cuda.download());
  const std::vector<float> cpu = widened(dqkv.cpu.download());
  expect_close("attention.dqkv" + label(), gpu, cpu, 1e-2);
  expect_close("attention.dqkv" + label() + " vs fp32 cpu", gpu, fp32_cpu().second, 1e-2);

  // Each of dq, dk, dv separately: a bug confined to one part must not hide in the total.
  const size_t C = shape().channels();
  for (int part = 0; part < 3; ++part) {
    std::vector<float> gpu_part, cpu_part;
    for (size_t n = 0; n < static_cast<size_t>(num_tokens_); ++n) {
      const size_t at = (3 * n + part) * C;
      gpu_part.insert(gpu_part.end(), gpu.begin() + at, gpu.begin() + at + C);
      cpu_part.insert(cpu_part.end(), cpu.begin() + at, cpu.begin() + at + C);
    }
    expect_close(cat("attention.d", "qkv"[part], label()), gpu_part, cpu_part, 1e-2);
  }

  // A second run, on poisoned output, gives the same bits.
  Mirrored<bf16> again(qkv_.size());
  again.poison();
  attention_backward(cuda_, again.cuda.data(), delta.cuda.data(), dout.cuda.data(), qkv.cuda.data(),
                     out.cuda.data(), lse.cuda.data(), seqs(cuda_), shape());
  EXPECT_TRUE(bitwise_equal(again.cuda.download(), dqkv.cuda.download()));
}

INSTANTIATE_TEST_SUITE_P(HeadSizesAndMasks, AttentionBf16GpuTest,
                         ::testing::Values(AttentionCase{32, AttentionMask::kCausal},
                                           AttentionCase{64, AttentionMask::kCausal},
                                           AttentionCase{128, AttentionMask::kCausal},
                                           AttentionCase{32, AttentionMask::kBidirectional},
                                           AttentionCase{64, AttentionMask::kBidirectional},
                                           AttentionCase{128, AttentionMask::kBidirectional}),
                         [](const auto& info) {
                           return cat(mask_name(info.param.mask), "_HS", info.param.head_size);
                         });

class AttentionBf16EdgeGpuTest : public GpuTest {};

// A one-token sequence attends to itself with probability exactly 1: out = v and dv = dout keep
// their bf16 bits; dq and dk are 0 up to the rounding of dout·v − D.
TEST_F(AttentionBf16EdgeGpuTest, SingleTokenSequencesPassValuesThrough) {
  constexpr int HS = 64, NH = 2, C = HS * NH, B = 4;
  std::vector<int32_t> offsets = {0, 1, 2, 3, 4};
  Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(offsets));
  const PackedSequences seqs{offsets_gpu.data(), B, B, 1};
  const AttentionShape shape{NH, HS, AttentionMask::kCausal};
  const std::vector<bf16> qkv_host = to_bf16(random_floats(static_cast<size_t>(B) * 3 * C, 1));
  const std::vector<bf16> dout_host = to_bf16(random_floats(static_cast<size_t>(B) * C, 2));
  Buffer<bf16> qkv(Device::kCuda, std::span<const bf16>(qkv_host));
  Buffer<bf16> dout(Device::kCuda, std::span<const bf16>(dout_host));
  Buffer<bf16> out(Device::kCuda, B * C), dqkv(Device::kCuda, B * 3 * C);
  Buffer<float> lse(Device::kCuda, B * NH), delta(Device::kCuda, B * NH);
  fill_bytes(Device::kCuda, out.data(), 0xFF, out.bytes());
  fill_bytes(Device::kCuda, dqkv.data(), 0xFF, dqkv.bytes());
  attention_forward(cuda_, out.data(), lse.data(), qkv.data(), seqs, shape);
  attention_backward(cuda_, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                     lse.data(), seqs, shape);
  const std::vector<bf16> out_host = out.download(), dqkv_host = dqkv.download();
  for (int n = 0; n < B; ++n) {
    for (int c = 0; c < C; ++c) {
      EXPECT_EQ(out_host[n * C + c].bits, qkv_host[(3 * n + 2) * C + c].bits);
      EXPECT_NEAR(bf16_to_float(dqkv_host[(3 * n + 0) * C + c]), 0.0f, 1e-5);
      EXPECT_NEAR(bf16_to_float(dqkv_host[(3 * n + 1) * C + c]), 0.0f, 1e-5);
      EXPECT_EQ(dqkv_host[(3 * n + 2) * C + c].bits, dout_host[n * C + c].bits);
    }
  }
}

}  // namespace
}  // namespace recforge::gpu_test
