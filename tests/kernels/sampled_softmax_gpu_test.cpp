// Sampled softmax on the GPU against the CPU backend: logQ correction, τ ≠ 1, duplicated negatives
// and negatives equal to rows' positives, ignored rows, the gradient accumulating into dwte, the
// losses-only mode, several row chunks, and bitwise-reproducible table gradients.
#include "kernels/sampled_softmax.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using SampledSoftmaxGpuTest = GpuTest;

constexpr int kChannels = 64, kVocab = 5000;

// One problem's inputs on both backends.
struct Problem {
  int N, P;
  Mirrored<float> hidden, wte, log_q_positive, log_q_negative;
  Mirrored<int32_t> positives, negatives;
  float loss_scale;

  Problem(int rows, int negatives_count, uint32_t seed)
      : N(rows),
        P(negatives_count),
        hidden(mirrored(random_floats(static_cast<size_t>(rows) * kChannels, seed))),
        wte(mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, seed + 1))),
        log_q_positive(mirrored(random_floats(rows, seed + 2, -9.0f, -4.0f))),
        log_q_negative(mirrored(random_floats(negatives_count, seed + 3, -9.0f, -4.0f))),
        positives(mirrored(positives_with_ignored(rows, seed + 4))),
        negatives(mirrored(shared_negatives(negatives_count, seed + 5))),
        loss_scale(1.0f / count_targets(positives.cpu.download())) {}

  static std::vector<int32_t> positives_with_ignored(int rows, uint32_t seed) {
    std::vector<int32_t> positives = random_ints(rows, seed, 0, kVocab - 1);
    for (int n = 0; n < rows; n += 7) positives[n] = kIgnoreIndex;
    positives[1] = positives[2] = 11;  // also negatives 0 and 1
    positives[3] = kVocab - 1;
    return positives;
  }
  static std::vector<int32_t> shared_negatives(int count, uint32_t seed) {
    std::vector<int32_t> negatives = random_ints(count, seed, 0, kVocab - 1);
    negatives[0] = negatives[1] = 11;  // duplicated, and rows 1 and 2's positive
    negatives[2] = kVocab - 1;
    return negatives;
  }

  SampledSoftmaxInputs<float> on(const Context& ctx, float temperature) {
    return {hidden.on(ctx),
            wte.on(ctx),
            positives.on(ctx),
            negatives.on(ctx),
            log_q_positive.on(ctx),
            log_q_negative.on(ctx),
            N,
            kChannels,
            kVocab,
            P,
            temperature};
  }
};

// Runs both backends on `problem` and compares losses, dhidden and dwte.
void expect_backends_agree(const Context& cpu, const Context& cuda, Problem& problem,
                           const std::string& name) {
  const int N = problem.N;
  Mirrored<float> losses(N), dhidden(static_cast<size_t>(N) * kChannels);
  auto dwte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 99, -1e-3f, 1e-3f));
  losses.poison();
  dhidden.poison();  // overwritten
  for (const Context* ctx : {&cpu, &cuda}) {
    sampled_softmax_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx), dwte.on(*ctx),
                                     problem.on(*ctx, 0.7f), problem.loss_scale);
  }
  expect_close(name + ".losses", losses, 1e-5);
  expect_close(name + ".dhidden", dhidden, 1e-4);
  expect_close(name + ".dwte", dwte, 1e-4);
}

TEST_F(SampledSoftmaxGpuTest, LossesAndGradientsMatchCpu) {
  Problem problem(300, 200, 1);
  expect_backends_agree(cpu_, cuda_, problem, "sampled_softmax.P200");
}

// 4100 rows × 4096 negatives exceed the 64 MB logits tile: the rows run in two chunks.
TEST_F(SampledSoftmaxGpuTest, SeveralRowChunksMatchCpu) {
  Problem problem(4100, 4096, 20);
  expect_backends_agree(cpu_, cuda_, problem, "sampled_softmax.P4096 (2 chunks)");
}

TEST_F(SampledSoftmaxGpuTest, LossesOnlyMatchCpu) {
  Problem problem(300, 200, 30);
  Mirrored<float> losses(problem.N);
  losses.poison();
  float* const none = nullptr;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    sampled_softmax_forward_backward(*ctx, losses.on(*ctx), none, none, problem.on(*ctx, 1.0f),
                                     1.0f);
  }
  expect_close("sampled_softmax.losses (losses only)", losses, 1e-5);
}

TEST_F(SampledSoftmaxGpuTest, TableGradientIsBitwiseReproducible) {
  Problem problem(300, 200, 40);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Buffer<float> dhidden(Device::kCuda, static_cast<size_t>(problem.N) * kChannels);
    Buffer<float> dwte(Device::kCuda, std::vector<float>(kVocab * kChannels, 0.0f));
    Buffer<float> losses(Device::kCuda, problem.N);
    sampled_softmax_forward_backward(cuda_, losses.data(), dhidden.data(), dwte.data(),
                                     problem.on(cuda_, 0.7f), problem.loss_scale);
    std::vector<float> result = dwte.download();
    if (run == 0) {
      first = result;
    } else {
      EXPECT_TRUE(bitwise_equal(first, result));
    }
  }
}

}  // namespace
}  // namespace recforge::testing
