// Column blocks joined and split: the CPU backend against torch.cat / torch.split
// (tests/reference/kernels.py), exactly, in float and double, with the Llama block's q | k | v
// widths (SmolLM2: 576 | 192 | 192) and odd ones; validation of the part list; the CUDA backend
// against the CPU backend, bit for bit.
#include "kernels/columns.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

constexpr int kRows = 41;

struct ColumnsCase {
  std::vector<int> widths;
  std::vector<std::vector<float>> parts;  // [kRows, widths[k]] each
  std::vector<float> packed;              // [kRows, Σ widths]
  std::vector<double> concat;
  std::vector<std::vector<double>> split;

  int total_width() const {
    int total = 0;
    for (int w : widths) total += w;
    return total;
  }
};

ColumnsCase reference_case(std::mt19937_64& rng, std::vector<int> widths) {
  ColumnsCase c{std::move(widths)};
  ReferenceCase ref("kernels.py", "columns");
  ref.put_scalar("count", c.widths.size());
  for (size_t k = 0; k < c.widths.size(); ++k) {
    c.parts.push_back(random_normal<float>(rng, static_cast<size_t>(kRows) * c.widths[k]));
    ref.put("part" + std::to_string(k), c.parts.back(), {kRows, c.widths[k]});
  }
  c.packed = random_normal<float>(rng, static_cast<size_t>(kRows) * c.total_width());
  ref.put("packed", c.packed, {kRows, c.total_width()});
  ref.run();
  c.concat = ref.result("concat");
  for (size_t k = 0; k < c.widths.size(); ++k) c.split.push_back(ref.result(cat("split", k)));
  return c;
}

std::vector<ColumnsCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  return {reference_case(rng, {576, 192, 192}), reference_case(rng, {1, 7, 3, 5}),
          reference_case(rng, {13})};
}

class ColumnsReference : public SharedReferenceCases<ColumnsCase, make_cases> {
 protected:
  template <typename T>
  void check_concat() {
    for (const ColumnsCase& c : *cases_) {
      std::vector<std::vector<T>> parts;
      ColumnParts<const T> view;
      for (size_t k = 0; k < c.widths.size(); ++k) parts.push_back(convert<T>(c.parts[k]));
      for (size_t k = 0; k < c.widths.size(); ++k) {
        view.data[k] = parts[k].data();
        view.widths[k] = c.widths[k];
      }
      view.count = static_cast<int>(c.widths.size());
      std::vector<T> out = poisoned<T>(c.packed.size());
      concat_columns(Context::cpu(), out.data(), view, kRows);
      const double error = relative_error(out, c.concat);
      report_error(cat("columns.", type_name<T>(), ".concat.parts", view.count), error);
      EXPECT_EQ(error, 0.0);
    }
  }

  template <typename T>
  void check_split() {
    for (const ColumnsCase& c : *cases_) {
      const std::vector<T> packed = convert<T>(c.packed);
      std::vector<std::vector<T>> parts;
      ColumnParts<T> view;
      for (size_t k = 0; k < c.widths.size(); ++k) parts.push_back(poisoned<T>(c.parts[k].size()));
      for (size_t k = 0; k < c.widths.size(); ++k) {
        view.data[k] = parts[k].data();
        view.widths[k] = c.widths[k];
      }
      view.count = static_cast<int>(c.widths.size());
      split_columns(Context::cpu(), view, packed.data(), kRows);
      for (size_t k = 0; k < c.widths.size(); ++k) {
        const double error = relative_error(parts[k], c.split[k]);
        report_error(cat("columns.", type_name<T>(), ".split.parts", view.count, ".part", k),
                     error);
        EXPECT_EQ(error, 0.0) << k;
      }
    }
  }
};

TEST_F(ColumnsReference, ConcatMatchesTorchCatExactly) { check_concat<float>(); }

TEST_F(ColumnsReference, ConcatInDoubleMatchesTorchCatExactly) { check_concat<double>(); }

TEST_F(ColumnsReference, SplitMatchesTorchSplitExactly) { check_split<float>(); }

TEST_F(ColumnsReference, SplitInDoubleMatchesTorchSplitExactly) { check_split<double>(); }

TEST(ColumnsValidation, EmptyOrTooManyOrZeroWidthPartsThrow) {
  std::vector<float> data(8);
  ColumnParts<const float> parts;
  EXPECT_THROW(concat_columns(Context::cpu(), data.data(), parts, 1), Error);  // no parts
  parts.count = 1;
  parts.data[0] = data.data();
  parts.widths[0] = 0;
  EXPECT_THROW(concat_columns(Context::cpu(), data.data(), parts, 1), Error);
  parts.widths[0] = 2;
  parts.count = kMaxColumnParts + 1;
  EXPECT_THROW(concat_columns(Context::cpu(), data.data(), parts, 1), Error);
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend: copies, so bit for bit.

class ColumnsGpuTest : public GpuTest {
 protected:
  static constexpr int N = 1000;
  static constexpr int kWidths[] = {576, 192, 192, 3};
  static constexpr int kWidth = 576 + 192 + 192 + 3;
};

TEST_F(ColumnsGpuTest, ConcatAndSplitMatchCpuBitForBit) {
  std::vector<Mirrored<float>> parts, split;
  for (int k = 0; k < 4; ++k) {
    parts.push_back(mirrored(random_floats(static_cast<size_t>(N) * kWidths[k], k + 1)));
    split.emplace_back(static_cast<size_t>(N) * kWidths[k]);
    split.back().poison();
  }
  Mirrored<float> packed(static_cast<size_t>(N) * kWidth);
  packed.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    ColumnParts<const float> in;
    ColumnParts<float> out;
    for (int k = 0; k < 4; ++k) {
      in.data[k] = parts[k].on(*ctx);
      out.data[k] = split[k].on(*ctx);
      in.widths[k] = out.widths[k] = kWidths[k];
    }
    in.count = out.count = 4;
    concat_columns(*ctx, packed.on(*ctx), in, N);
    split_columns(*ctx, out, packed.on(*ctx), N);
  }
  EXPECT_TRUE(bitwise_equal(packed.cuda.download(), packed.cpu.download()));
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(bitwise_equal(split[k].cuda.download(), split[k].cpu.download())) << k;
    EXPECT_TRUE(bitwise_equal(split[k].cuda.download(), parts[k].cpu.download())) << k;
  }
}

}  // namespace
}  // namespace recforge::testing
