// Flash attention with bf16 storage on the GPU: against the CPU backend's bf16 path on the same
// inputs, and against the fp32 CPU kernel on the unrounded inputs, for every head size and both
// masks over a packed batch with lengths 0, 1, tile-boundary sizes and several hundred.
#include "kernels/attention.h"
#include "tests/kernels/attention_gpu_fixture.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using testing::to_bf16;

class AttentionBf16GpuTest : public AttentionGpuFixture {
 protected:
  void SetUp() override {
    AttentionGpuFixture::SetUp();
    if (IsSkipped()) return;
    qkv_ = random_floats(qkv_size(), 11, -2.0f, 2.0f);
    dout_ = random_floats(out_size(), 12);
  }
  // " bf16 causal HS=64".
  std::string label() const { return " bf16" + AttentionGpuFixture::label(); }

  // The fp32 CPU kernel's out and dqkv on the unrounded inputs.
  std::pair<std::vector<float>, std::vector<float>> fp32_cpu() {
    std::vector<float> out(out_size()), lse(lse_size()), delta(lse_size()), dqkv(qkv_.size());
    attention_forward(cpu_, out.data(), lse.data(), qkv_.data(), seqs(cpu_), shape());
    attention_backward(cpu_, dqkv.data(), delta.data(), dout_.data(), qkv_.data(), out.data(),
                       lse.data(), seqs(cpu_), shape());
    return {out, dqkv};
  }

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
  expect_parts_close(label(), gpu, cpu, 1e-2);

  // A second run, on poisoned output, gives the same bits.
  Mirrored<bf16> again(qkv_.size());
  again.poison();
  attention_backward(cuda_, again.cuda.data(), delta.cuda.data(), dout.cuda.data(), qkv.cuda.data(),
                     out.cuda.data(), lse.cuda.data(), seqs(cuda_), shape());
  EXPECT_TRUE(bitwise_equal(again.cuda.download(), dqkv.cuda.download()));
}

INSTANTIATE_TEST_SUITE_P(HeadSizesAndMasks, AttentionBf16GpuTest,
                         ::testing::ValuesIn(kAttentionCases), attention_case_name);

class AttentionBf16EdgeGpuTest : public GpuTest {};

// A one-token sequence attends to itself with probability exactly 1: out = v and dv = dout keep
// their bf16 bits; dq and dk are 0 up to the rounding of dout·v − D.
TEST_F(AttentionBf16EdgeGpuTest, SingleTokenSequencesPassValuesThrough) {
  const SingleTokenAttention<bf16> run(cuda_);
  constexpr int B = run.B, C = run.C;
  for (int n = 0; n < B; ++n) {
    for (int c = 0; c < C; ++c) {
      EXPECT_EQ(run.out[n * C + c].bits, run.qkv[(3 * n + 2) * C + c].bits);
      EXPECT_NEAR(bf16_to_float(run.dqkv[(3 * n + 0) * C + c]), 0.0f, 1e-5);
      EXPECT_NEAR(bf16_to_float(run.dqkv[(3 * n + 1) * C + c]), 0.0f, 1e-5);
      EXPECT_EQ(run.dqkv[(3 * n + 2) * C + c].bits, run.dout[n * C + c].bits);
    }
  }
}

}  // namespace
}  // namespace recforge::testing
