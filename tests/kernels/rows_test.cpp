// Row gather and scatter (kernels/rows.h): the CPU against PyTorch's index_select and index_copy,
// the GPU against the CPU on the same inputs, outputs poisoned first.
#include "kernels/rows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int kN = 517, kC = 96, kR = 203;

// kR distinct rows of [0, kN) in a random order.
std::vector<int32_t> distinct_rows(uint64_t seed) {
  std::vector<int32_t> rows(kN);
  std::iota(rows.begin(), rows.end(), 0);
  std::shuffle(rows.begin(), rows.end(), std::mt19937_64(seed));
  rows.resize(kR);
  return rows;
}

TEST(RowsReference, GatherAndScatterMatchPyTorch) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<float> inp = random_normal<float>(rng, kN * kC);
  const std::vector<float> src = random_normal<float>(rng, kR * kC);
  const std::vector<int32_t> rows = distinct_rows(seed);
  ReferenceCase ref("kernels.py", "rows");
  ref.put("inp", inp, {kN, kC});
  ref.put("src", src, {kR, kC});
  ref.put("rows", rows, {kR});
  ref.run();
  const Context ctx = Context::cpu();
  std::vector<float> gathered = poisoned<float>(kR * kC), scattered = poisoned<float>(kN * kC);
  gather_rows(ctx, gathered.data(), inp.data(), rows.data(), kR, kC);
  scatter_rows(ctx, scattered.data(), src.data(), rows.data(), kR, kN, kC);
  expect_close("rows.gathered", gathered, ref.result("gathered"), 1e-7);
  expect_close("rows.scattered", scattered, ref.result("scattered"), 1e-7);
}

TEST(Rows, GatherOfIntegersCopiesThemExactly) {
  const std::vector<int32_t> matrix = {10, 11, 12, 20, 21, 22, 30, 31, 32};
  const std::vector<int32_t> rows = {2, 0, 2};
  std::vector<int32_t> out(9, -1);
  gather_rows(Context::cpu(), out.data(), matrix.data(), rows.data(), 3, 3);
  EXPECT_EQ(out, (std::vector<int32_t>{30, 31, 32, 10, 11, 12, 30, 31, 32}));
}

using RowsGpuTest = GpuTest;

TEST_F(RowsGpuTest, GatherAndScatterMatchCpu) {
  auto inp = mirrored(random_floats(kN * kC, 1));
  auto src = mirrored(random_floats(kR * kC, 2));
  auto rows = mirrored(distinct_rows(3));
  Mirrored<float> gathered(kR * kC), scattered(kN * kC);
  gathered.poison();
  scattered.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    gather_rows(*ctx, gathered.on(*ctx), inp.on(*ctx), rows.on(*ctx), kR, kC);
    scatter_rows(*ctx, scattered.on(*ctx), src.on(*ctx), rows.on(*ctx), kR, kN, kC);
  }
  EXPECT_TRUE(bitwise_equal(gathered.cuda.download(), gathered.cpu.download()));
  EXPECT_TRUE(bitwise_equal(scattered.cuda.download(), scattered.cpu.download()));
}

TEST_F(RowsGpuTest, GatherOfIntegersMatchesCpu) {
  auto matrix = mirrored(random_ints(kN * 8, 4, 0, 1 << 20));
  auto rows = mirrored(random_ints(kR, 5, 0, kN - 1));
  Mirrored<int32_t> out(kR * 8);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    gather_rows(*ctx, out.on(*ctx), matrix.on(*ctx), rows.on(*ctx), kR, 8);
  }
  EXPECT_EQ(out.cuda.download(), out.cpu.download());
}

}  // namespace
}  // namespace recforge::testing
