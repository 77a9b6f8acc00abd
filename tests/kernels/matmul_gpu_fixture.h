// The dense-layer GPU tests' shapes and inputs, and the checks the fp32 and bf16 tests run alike:
// the bias gradient's determinism and operands that start one element into their buffers.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "tests/support/backends.h"

namespace recforge::testing {

struct MatmulShape {
  int N, C, OC;
};

inline void PrintTo(const MatmulShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC;
}

inline const std::vector<MatmulShape> kMatmulShapes = {
    {1, 64, 64}, {512, 256, 768}, {1000, 129, 77}, {3000, 192, 768}};

// Test names: N1_C64_OC64, ...
inline std::string matmul_shape_name(const ::testing::TestParamInfo<MatmulShape>& info) {
  return cat("N", info.param.N, "_C", info.param.C, "_OC", info.param.OC);
}

class MatmulGpuFixture : public GpuTestWithParam<MatmulShape> {
 protected:
  int N = GetParam().N, C = GetParam().C, OC = GetParam().OC;
  std::string label = cat(" N=", N, " C=", C, " OC=", OC);
  std::vector<float> inp_host = random_floats(static_cast<size_t>(N) * C, 1);
  std::vector<float> weight_host = random_floats(static_cast<size_t>(OC) * C, 2);
  std::vector<float> bias_host = random_floats(OC, 3);
  std::vector<float> dout_host = random_floats(static_cast<size_t>(N) * OC, 4);
  // The initial values dweight and dbias accumulate into.
  std::vector<float> dweight0_host = random_floats(static_cast<size_t>(OC) * C, 5);
  std::vector<float> dbias0_host = random_floats(OC, 6);

  // Runs `backward_into(dbias)`, which computes the bias gradient alone on the GPU, three times
  // into a zeroed dbias: every run gives the same bits.
  template <typename BackwardInto>
  void expect_bias_gradient_deterministic(BackwardInto backward_into) {
    std::vector<float> first;
    for (int run = 0; run < 3; ++run) {
      Buffer<float> dbias(Device::kCuda, OC);
      dbias.zero(cuda_);
      backward_into(dbias.data());
      if (run == 0)
        first = dbias.download();
      else
        EXPECT_TRUE(bitwise_equal(dbias.download(), first));
    }
  }
};

class MatmulEdgeGpuFixture : public GpuTest {
 protected:
  // out = inp · weightᵀ + bias on both backends with every operand (stored as T) starting one
  // element into its buffer: cuBLASLt must pick algorithms for sizeof(T)-byte alignment. Prints
  // and checks the CUDA output against the CPU's as `name`.
  template <typename T>
  void expect_unaligned_views_close(const std::string& name, double tolerance) {
    constexpr int N = 100, C = 33, OC = 65;
    auto inp = mirrored(stored_as<T>(random_floats(N * C + 1, 1)));
    auto weight = mirrored(stored_as<T>(random_floats(OC * C + 1, 2)));
    auto bias = mirrored(stored_as<T>(random_floats(OC + 1, 3)));
    Mirrored<T> out(N * OC + 1);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_forward(*ctx, out.on(*ctx) + 1, inp.on(*ctx) + 1, weight.on(*ctx) + 1,
                     bias.on(*ctx) + 1, N, C, OC);
    }
    const std::vector<float> gpu = widened(out.cuda.download()), cpu = widened(out.cpu.download());
    expect_close(name, std::vector<float>(gpu.begin() + 1, gpu.end()),
                 std::vector<float>(cpu.begin() + 1, cpu.end()), tolerance);
  }
};

}  // namespace recforge::testing
