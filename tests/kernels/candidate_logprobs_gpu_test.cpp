// The fused candidate log-probabilities on the GPU against the CPU backend: several vocabulary
// chunks with a ragged last one, candidates on chunk edges and repeated within a row, the gradient
// accumulating into dwte, and bitwise-reproducible gradients.
#include "kernels/candidate_logprobs.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using CandidateLogprobsGpuTest = GpuTest;

constexpr int kChannels = 64;

// Candidates [N, K] in [0, V): the first and last entries, the edge of the first two 8192-entry
// chunks and a repeat in row 1.
std::vector<int32_t> edge_candidates(int N, int V, int K, uint32_t seed) {
  std::vector<int32_t> candidates = random_ints(static_cast<size_t>(N) * K, seed, 0, V - 1);
  candidates[0] = 0;
  candidates[1] = V - 1;
  if (N < 2) return candidates;
  if (V > 8192) {
    candidates[K] = 8192;
    candidates[K + 1] = 8191;
  }
  if (K > 2) candidates[K + 2] = candidates[K];
  return candidates;
}

// Forward and backward on both backends with the same inputs; outputs poisoned beforehand.
void expect_matches_cpu(const Context& cpu, const Context& cuda, int N, int V, int K,
                        uint32_t seed) {
  const size_t table = static_cast<size_t>(V) * kChannels;
  auto hidden = mirrored(random_floats(static_cast<size_t>(N) * kChannels, seed));
  auto wte = mirrored(random_floats(table, seed + 1));
  auto candidates = mirrored(edge_candidates(N, V, K, seed + 2));
  auto dlogps = mirrored(random_floats(static_cast<size_t>(N) * K, seed + 3));
  auto dwte = mirrored(random_floats(table, seed + 4, -1e-3f, 1e-3f));
  Mirrored<float> logps(static_cast<size_t>(N) * K), lse(N);
  Mirrored<float> dhidden(static_cast<size_t>(N) * kChannels);
  logps.poison();
  lse.poison();
  dhidden.poison();
  for (const Context* ctx : {&cpu, &cuda}) {
    candidate_logprobs_forward(*ctx, logps.on(*ctx), lse.on(*ctx), hidden.on(*ctx), wte.on(*ctx),
                               candidates.on(*ctx), N, kChannels, V, K);
    candidate_logprobs_backward(*ctx, dhidden.on(*ctx), dwte.on(*ctx), dlogps.on(*ctx),
                                lse.on(*ctx), hidden.on(*ctx), wte.on(*ctx), candidates.on(*ctx), N,
                                kChannels, V, K);
  }
  const std::string label = cat("candidate_logprobs.N", N, ".V", V, ".K", K);
  expect_close(label + ".logps", logps, 1e-5);
  expect_close(label + ".lse", lse, 1e-5);
  expect_close(label + ".dhidden", dhidden, 1e-4);
  expect_close(label + ".dwte", dwte, 1e-4);
}

TEST_F(CandidateLogprobsGpuTest, ThreeChunksMatchCpu) {
  expect_matches_cpu(cpu_, cuda_, 300, 20000, 4, 1);
}

TEST_F(CandidateLogprobsGpuTest, SmallOddShapesMatchCpu) {
  expect_matches_cpu(cpu_, cuda_, 33, 101, 2, 10);
  expect_matches_cpu(cpu_, cuda_, 1, 5003, 3, 20);
}

TEST_F(CandidateLogprobsGpuTest, GradientsAreBitwiseReproducible) {
  constexpr int N = 257, V = 9000, K = 4;
  auto hidden = mirrored(random_floats(static_cast<size_t>(N) * kChannels, 30));
  auto wte = mirrored(random_floats(static_cast<size_t>(V) * kChannels, 31));
  auto candidates = mirrored(edge_candidates(N, V, K, 32));
  auto dlogps = mirrored(random_floats(static_cast<size_t>(N) * K, 33));
  Mirrored<float> logps(static_cast<size_t>(N) * K), lse(N);
  std::vector<float> runs[2][2];
  for (auto& run : runs) {
    Mirrored<float> dhidden(static_cast<size_t>(N) * kChannels);
    auto dwte = mirrored(std::vector<float>(static_cast<size_t>(V) * kChannels, 0.0f));
    candidate_logprobs_forward(cuda_, logps.on(cuda_), lse.on(cuda_), hidden.on(cuda_),
                               wte.on(cuda_), candidates.on(cuda_), N, kChannels, V, K);
    candidate_logprobs_backward(cuda_, dhidden.on(cuda_), dwte.on(cuda_), dlogps.on(cuda_),
                                lse.on(cuda_), hidden.on(cuda_), wte.on(cuda_),
                                candidates.on(cuda_), N, kChannels, V, K);
    run[0] = dhidden.cuda.download();
    run[1] = dwte.cuda.download();
  }
  EXPECT_TRUE(bitwise_equal(runs[0][0], runs[1][0])) << "dhidden";
  EXPECT_TRUE(bitwise_equal(runs[0][1], runs[1][1])) << "dwte";
}

}  // namespace
}  // namespace recforge::testing
