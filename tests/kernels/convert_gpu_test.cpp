// fp32 ↔ bf16 conversion on the GPU against the CPU backend, bit for bit: the rounding specials,
// random patterns over every exponent (NaN payloads included), all 65536 bf16 patterns, sizes that
// leave a tail after the last 8-element vector, and views that are not 16-byte aligned (the
// element-by-element path).
#include "kernels/convert.h"
#include "tests/support/backends.h"
#include "tests/support/bf16_cases.h"

namespace recforge::testing {
namespace {

using ConvertGpuTest = GpuTest;

// The specials, random finite patterns, then random patterns of any kind (NaNs with payloads, ±∞).
std::vector<float> float_inputs() {
  std::mt19937_64 rng(7);
  std::vector<uint32_t> bits = testing::bf16_rounding_specials();
  std::vector<uint32_t> finite = testing::random_float_patterns(rng, (1 << 20) + 5);
  bits.insert(bits.end(), finite.begin(), finite.end());
  for (int i = 0; i < 4099; ++i) bits.push_back(static_cast<uint32_t>(rng()));
  return testing::as_floats(bits);
}

// All bf16 patterns, twice, and a few more so the count is not a multiple of 8.
std::vector<bf16> bf16_inputs() {
  std::vector<bf16> patterns;
  for (int copy = 0; copy < 2; ++copy) {
    for (uint32_t b = 0; b < (1u << 16); ++b) patterns.push_back(bf16{static_cast<uint16_t>(b)});
  }
  for (uint16_t b : {0x7FC1, 0x8001, 0x3F80}) patterns.push_back(bf16{b});
  return patterns;
}

// Converts src[offset:] into dst[offset:] on both backends, dst poisoned first, and expects the
// CUDA copy to equal the CPU copy byte for byte. Offsets 1 and 3 misalign the views.
template <typename Dst, typename Src>
void expect_bit_identical(const std::vector<Src>& src_host, const Context& cpu,
                          const Context& gpu) {
  auto src = mirrored(src_host);
  for (size_t offset : {0, 1, 3}) {
    Mirrored<Dst> dst(src_host.size());
    dst.poison();
    const auto n = static_cast<int64_t>(src_host.size() - offset);
    for (const Context* ctx : {&cpu, &gpu}) {
      convert(*ctx, dst.on(*ctx) + offset, src.on(*ctx) + offset, n);
    }
    const std::vector<Dst> on_gpu = dst.cuda.download(), on_cpu = dst.cpu.download();
    size_t mismatches = 0;
    for (size_t i = 0; i < on_gpu.size(); ++i) {
      if (std::memcmp(&on_gpu[i], &on_cpu[i], sizeof(Dst)) != 0) ++mismatches;
    }
    std::cout << "[ mismatch ] convert to " << dtype_name<Dst>() << " offset " << offset << ": "
              << mismatches << " of " << n << std::endl;
    EXPECT_EQ(mismatches, 0u) << "offset " << offset;
  }
}

TEST_F(ConvertGpuTest, FloatToBf16IsBitIdenticalToCpu) {
  expect_bit_identical<bf16>(float_inputs(), cpu_, cuda_);
}

TEST_F(ConvertGpuTest, Bf16ToFloatIsBitIdenticalToCpu) {
  expect_bit_identical<float>(bf16_inputs(), cpu_, cuda_);
}

TEST_F(ConvertGpuTest, ShortRangesTakeTheTailPath) {
  const std::vector<float> inputs = float_inputs();
  for (size_t n : {1, 7, 9, 15}) {
    expect_bit_identical<bf16>(std::vector<float>(inputs.begin(), inputs.begin() + n + 3), cpu_,
                               cuda_);
  }
}

}  // namespace
}  // namespace recforge::testing
