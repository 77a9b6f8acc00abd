// Cached attention (generation with a key/value cache): the CPU backend against PyTorch
// (tests/reference/kernels.py) in float and double, for prefill chunks and single decode steps,
// grouped and ungrouped heads, every head size; the CUDA backend against the CPU backend on the
// same inputs, its output poisoned first.
#include "kernels/cached_attention.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

struct CachedCase {
  CachedAttentionShape shape;
  int start, n;
  std::vector<float> q, k_cache, v_cache;
  std::vector<double> out;

  std::string label() const {
    return cat("cached_attention.H", shape.num_heads, "_KV", shape.num_kv_heads, "_HS",
               shape.head_size, "_start", start, "_n", n);
  }
  size_t q_size() const { return static_cast<size_t>(n) * shape.num_heads * shape.head_size; }
  size_t cache_size() const {
    return static_cast<size_t>(start + n) * shape.num_kv_heads * shape.head_size;
  }
};

std::vector<CachedCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<CachedCase> cases;
  for (CachedAttentionShape shape : {CachedAttentionShape{9, 3, 64}, CachedAttentionShape{4, 4, 32},
                                     CachedAttentionShape{2, 1, 128}}) {
    for (auto [start, n] : {std::pair{0, 13}, std::pair{20, 1}, std::pair{7, 5}}) {
      CachedCase c{shape, start, n};
      c.q = random_normal<float>(rng, c.q_size());
      c.k_cache = random_normal<float>(rng, c.cache_size());
      c.v_cache = random_normal<float>(rng, c.cache_size());
      cases.push_back(std::move(c));
    }
  }
  ReferenceCase ref("kernels.py", "cached_attention");
  ref.put_scalar("num_cases", static_cast<double>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const CachedCase& c = cases[i];
    const std::string p = cat("c", i, "_");
    const int64_t H = c.shape.num_heads, KV = c.shape.num_kv_heads, HS = c.shape.head_size;
    ref.put(p + "q", c.q, {c.n, H, HS});
    ref.put(p + "k_cache", c.k_cache, {c.start + c.n, KV, HS});
    ref.put(p + "v_cache", c.v_cache, {c.start + c.n, KV, HS});
    ref.put_scalar(p + "start", c.start);
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) cases[i].out = ref.result(cat("c", i, "_out"));
  return cases;
}

class CachedAttentionReference : public SharedReferenceCases<CachedCase, make_cases> {
 protected:
  template <typename T>
  void check(double tolerance) {
    for (const CachedCase& c : *cases_) {
      const std::vector<T> q = convert<T>(c.q), k = convert<T>(c.k_cache),
                           v = convert<T>(c.v_cache);
      std::vector<T> out(c.q_size(), T(NAN));
      cached_attention_forward(Context::cpu(), out.data(), q.data(), k.data(), v.data(), c.start,
                               c.n, c.shape);
      const double error = relative_error(out, c.out);
      report_error(c.label() + "." + type_name<T>(), error);
      EXPECT_LT(error, tolerance) << c.label();
    }
  }
};

TEST_F(CachedAttentionReference, FloatMatchesPyTorch) { check<float>(1e-6); }
TEST_F(CachedAttentionReference, DoubleMatchesPyTorch) { check<double>(1e-12); }

TEST(CachedAttentionValidation, UngroupableHeadsThrow) {
  float x = 0.0f;
  EXPECT_THROW(cached_attention_forward(Context::cpu(), &x, &x, &x, &x, 0, 1,
                                        CachedAttentionShape{4, 3, 64}),
               Error);
}

class CachedAttentionGpuTest : public GpuTest {};

TEST_F(CachedAttentionGpuTest, MatchesCpu) {
  for (auto [start, n] : {std::pair{0, 37}, std::pair{300, 1}}) {
    const CachedAttentionShape shape{9, 3, 64};
    const size_t q_size = static_cast<size_t>(n) * 9 * 64, cache = (start + n) * 3 * 64;
    auto q = mirrored(random_floats(q_size, 1)), k = mirrored(random_floats(cache, 2)),
         v = mirrored(random_floats(cache, 3));
    auto out = mirrored(std::vector<float>(q_size));
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      cached_attention_forward(*ctx, out.on(*ctx), q.on(*ctx), k.on(*ctx), v.on(*ctx), start, n,
                               shape);
    }
    expect_close(cat("cached_attention.gpu.start", start, "_n", n), out, 1e-5);
  }
}

}  // namespace
}  // namespace recforge::testing
