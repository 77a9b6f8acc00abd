// The fused candidate log-probabilities (kernels/candidate_logprobs.h). The CPU backend against
// PyTorch's log_softmax + gather, with autograd for dhidden and dwte, and against its own
// invariants; the CUDA backend against the CPU backend: several vocabulary chunks with a ragged
// last one, candidates on chunk edges and repeated within a row, the gradient accumulating into
// dwte, and bitwise-reproducible gradients.
#include "kernels/candidate_logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---- The CPU backend against PyTorch ------------------------------------------------------------

// A case scores the vocabulary sub-range [offset, offset + V) of a table with offset + V + kTail
// rows, K candidates per row.
struct Shape {
  int N, C, V, K, offset;
};
constexpr int kTail = 3;
// Odd sizes throughout; N = 203 is not a multiple of the CPU panel, V = 12102 spans several
// panels' widths of cache and is not a multiple of the CUDA chunk.
constexpr Shape kShapes[] = {
    {1, 8, 7, 2, 0}, {37, 33, 5003, 4, 16}, {130, 17, 1337, 6, 5}, {203, 64, 12102, 2, 3}};

int table_rows(const Shape& shape) { return shape.offset + shape.V + kTail; }

struct LogprobCase {
  Shape shape;
  std::vector<float> hidden, wte, dwte0, dlogps;  // wte, dwte0 [table_rows, C]; dlogps [N, K]
  std::vector<int32_t> candidates;                // [N, K]
  std::vector<double> logps, lse, dhidden, dwte;  // PyTorch's
  std::string label(const char* type) const {
    return std::string("candidate_logprobs.") + type + ".N" + std::to_string(shape.N) + ".V" +
           std::to_string(shape.V) + ".K" + std::to_string(shape.K);
  }
};

// Candidates [N, K] in [0, V): row 0 holds the first and the last entry, and with K > 2 row 1
// repeats one candidate in two slots (their gradients add up).
std::vector<int32_t> make_candidates(std::mt19937_64& rng, const Shape& shape) {
  const auto [N, C, V, K, offset] = shape;
  std::vector<int32_t> candidates = random_ints(rng, static_cast<size_t>(N) * K, 0, V);
  candidates[0] = V - 1;
  candidates[1] = 0;
  if (N > 1 && K > 2) candidates[K + 2] = candidates[K + 1];
  return candidates;
}

std::vector<LogprobCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<LogprobCase> cases;
  ReferenceCase ref("dpo.py", "candidate_logprobs");
  for (const Shape& shape : kShapes) {
    const auto [N, C, V, K, offset] = shape;
    const size_t table = static_cast<size_t>(table_rows(shape)) * C;
    LogprobCase c{shape};
    c.hidden = random_normal<float>(rng, static_cast<size_t>(N) * C);
    c.wte = random_normal<float>(rng, table, 3.0 / std::sqrt(C));
    c.dwte0 = random_normal<float>(rng, table, 0.01);
    c.dlogps = random_normal<float>(rng, static_cast<size_t>(N) * K);
    c.candidates = make_candidates(rng, shape);
    std::string p = case_prefix(cases.size());
    ref.put(p + "hidden", c.hidden, {N, C});
    ref.put(p + "wte", c.wte, {table_rows(shape), C});
    ref.put(p + "dwte0", c.dwte0, {table_rows(shape), C});
    ref.put(p + "dlogps", c.dlogps, {N, K});
    ref.put(p + "candidates", c.candidates, {N, K});
    ref.put_scalar(p + "offset", offset);
    ref.put_scalar(p + "V", V);
    cases.push_back(std::move(c));
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = case_prefix(i);
    cases[i].logps = ref.result(p + "logps");
    cases[i].lse = ref.result(p + "lse");
    cases[i].dhidden = ref.result(p + "dhidden");
    cases[i].dwte = ref.result(p + "dwte");
  }
  return cases;
}

// The PyTorch references are computed once and shared by the tests of the suite.
class CandidateLogprobsReference : public SharedReferenceCases<LogprobCase, make_cases> {
 protected:
  // Forward (logps, lse poisoned) then backward from the forward's lse (dhidden poisoned and
  // overwritten, dwte accumulated into dwte0); with `nested` both run inside an enclosing OpenMP
  // parallel region.
  template <typename T>
  void check(const LogprobCase& c, double tolerance, bool nested = false) {
    const auto [N, C, V, K, offset] = c.shape;
    std::vector<T> hidden = convert<T>(c.hidden), wte = convert<T>(c.wte);
    std::vector<T> dlogps = convert<T>(c.dlogps), dwte = convert<T>(c.dwte0);
    std::vector<T> logps(static_cast<size_t>(N) * K, NAN), lse(N, NAN);
    std::vector<T> dhidden(static_cast<size_t>(N) * C, NAN);
    const size_t first = static_cast<size_t>(offset) * C;  // the sub-range's first element
    auto run = [&] {
      candidate_logprobs_forward(Context::cpu(), logps.data(), lse.data(), hidden.data(),
                                 wte.data() + first, c.candidates.data(), N, C, V, K);
      candidate_logprobs_backward(Context::cpu(), dhidden.data(), dwte.data() + first,
                                  dlogps.data(), lse.data(), hidden.data(), wte.data() + first,
                                  c.candidates.data(), N, C, V, K);
    };
    if (nested) {
      run_inside_parallel_region(run);
    } else {
      run();
    }
    std::string label = c.label(type_name<T>()) + (nested ? ".nested" : "");
    expect_close(label + ".logps", logps, c.logps, tolerance);
    expect_close(label + ".lse", lse, c.lse, tolerance);
    expect_close(label + ".dhidden", dhidden, c.dhidden, tolerance);
    expect_close(label + ".dwte", dwte, c.dwte, tolerance);
  }

  static const std::vector<LogprobCase>& cases() { return *cases_; }
};

TEST_F(CandidateLogprobsReference, FloatMatchesPyTorch) {
  for (const LogprobCase& c : cases()) check<float>(c, 1e-5);
}

TEST_F(CandidateLogprobsReference, DoublePrecisionMatchesPyTorch) {
  for (const LogprobCase& c : cases()) check<double>(c, 1e-12);
}

// With fewer threads than omp_get_max_threads() reports, every panel and dwte slice is still
// covered.
TEST_F(CandidateLogprobsReference, InsideParallelRegionMatchesPyTorch) {
  check<float>(cases()[1], 1e-5, /*nested=*/true);
}

// ---- The CPU backend's invariants ---------------------------------------------------------------

// With dlogps one-hot at (n, k), dlogits[n] = onehot − softmax_n sums to zero over the
// vocabulary, so Σ_v dwte[v] = (Σ_v dlogits[n, v]) · hidden[n] = 0, and only row n gets a dhidden.
TEST(CandidateLogprobs, GradientOfOneLogProbSumsToZeroOverTheVocabulary) {
  const int N = 5, C = 6, V = 211, K = 3;
  std::mt19937_64 rng(fresh_seed());
  std::vector<double> hidden = random_normal<double>(rng, N * C);
  std::vector<double> wte = random_normal<double>(rng, V * C);
  std::vector<int32_t> candidates = random_ints(rng, N * K, 0, V);
  std::vector<double> logps(N * K), lse(N), dlogps(N * K, 0.0), dhidden(N * C), dwte(V * C, 0.0);
  candidate_logprobs_forward(Context::cpu(), logps.data(), lse.data(), hidden.data(), wte.data(),
                             candidates.data(), N, C, V, K);
  for (double logp : logps) EXPECT_LT(logp, 0.0);
  dlogps[2 * K + 1] = 1.0;
  candidate_logprobs_backward(Context::cpu(), dhidden.data(), dwte.data(), dlogps.data(),
                              lse.data(), hidden.data(), wte.data(), candidates.data(), N, C, V, K);
  for (int c = 0; c < C; ++c) {
    double column = 0.0;
    for (int v = 0; v < V; ++v) column += dwte[v * C + c];
    EXPECT_NEAR(column, 0.0, 1e-12) << "channel " << c;
  }
  for (int n = 0; n < N; ++n) {
    if (n == 2) continue;
    for (int c = 0; c < C; ++c) EXPECT_EQ(dhidden[n * C + c], 0.0) << "row " << n;
  }
}

TEST(CandidateLogprobs, OutOfRangeCandidateThrows) {
  const int N = 2, C = 4, V = 7, K = 2;
  std::vector<float> hidden(N * C, 0.0f), wte(V * C, 0.0f), logps(N * K), lse(N);
  for (int32_t bad : {V, -1}) {
    std::vector<int32_t> candidates{0, 1, bad, 2};
    try {
      candidate_logprobs_forward(Context::cpu(), logps.data(), lse.data(), hidden.data(),
                                 wte.data(), candidates.data(), N, C, V, K);
      ADD_FAILURE() << "candidate " << bad << " was accepted";
    } catch (const Error& e) {
      std::printf("[  message ] %s\n", e.what());
    }
  }
}

// ---- The CUDA backend against the CPU backend ---------------------------------------------------

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
