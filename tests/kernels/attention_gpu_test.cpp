// Flash attention on the GPU against the CPU backend, for every head size, both masks, and a
// packed batch whose sequences have lengths 0, 1, tile-boundary sizes and several hundred.
#include "kernels/attention.h"
#include "tests/kernels/attention_gpu_fixture.h"

namespace recforge::testing {
namespace {

using AttentionGpuTest = AttentionGpuFixture;

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
  const std::vector<float> gpu = dqkv.cuda.download();
  expect_parts_close(label(), gpu, dqkv.cpu.download(), 1e-4);

  // A second run, on poisoned output, gives the same bits.
  Mirrored<float> again(qkv_size());
  again.poison();
  attention_backward(cuda_, again.cuda.data(), delta.cuda.data(), dout.cuda.data(), qkv.cuda.data(),
                     out.cuda.data(), lse.cuda.data(), seqs(cuda_), shape());
  EXPECT_TRUE(bitwise_equal(again.cuda.download(), gpu));
}

INSTANTIATE_TEST_SUITE_P(HeadSizesAndMasks, AttentionGpuTest, ::testing::ValuesIn(kAttentionCases),
                         attention_case_name);

class AttentionEdgeGpuTest : public GpuTest {};

TEST_F(AttentionEdgeGpuTest, SingleTokenSequencesAttendToThemselves) {
  // A sequence of one token: out = v, and its gradient is dv = dout, dq = dk = 0.
  const SingleTokenAttention<float> run(cuda_);
  constexpr int B = run.B, C = run.C;
  for (int n = 0; n < B; ++n) {
    for (int c = 0; c < C; ++c) {
      EXPECT_NEAR(run.out[n * C + c], run.qkv[(3 * n + 2) * C + c], 1e-6);
      EXPECT_NEAR(run.dqkv[(3 * n + 0) * C + c], 0.0f, 1e-5);  // dP − D up to rounding
      EXPECT_NEAR(run.dqkv[(3 * n + 1) * C + c], 0.0f, 1e-5);
      EXPECT_NEAR(run.dqkv[(3 * n + 2) * C + c], run.dout[n * C + c], 1e-5);
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
}  // namespace recforge::testing
