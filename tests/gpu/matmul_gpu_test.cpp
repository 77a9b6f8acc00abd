// Dense layer on the GPU (cuBLASLt, fp32) against the CPU backend (OpenBLAS): forward with and
// without bias, backward with every combination of null gradients, and the N = 0 edge.
#include "kernels/matmul.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
namespace {

struct MatmulShape {
  int N, C, OC;
};

void PrintTo(const MatmulShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC;
}

class MatmulGpuTest : public GpuTestWithParam<MatmulShape> {
 protected:
  int N = GetParam().N, C = GetParam().C, OC = GetParam().OC;
  std::string label = cat(" N=", N, " C=", C, " OC=", OC);
  std::vector<float> inp_host = random_floats(static_cast<size_t>(N) * C, 1);
  std::vector<float> weight_host = random_floats(static_cast<size_t>(OC) * C, 2);
  std::vector<float> bias_host = random_floats(OC, 3);
  std::vector<float> dout_host = random_floats(static_cast<size_t>(N) * OC, 4);
};

TEST_P(MatmulGpuTest, ForwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), bias = mirrored(bias_host);
  for (bool with_bias : {true, false}) {
    Mirrored<float> out(static_cast<size_t>(N) * OC);
    out.poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_forward(*ctx, out.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                     with_bias ? bias.on(*ctx) : static_cast<float*>(nullptr), N, C, OC);
    }
    expect_close(std::string("matmul.out ") + (with_bias ? "bias" : "no bias") + label, out, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BackwardMatchesCpu) {
  auto inp = mirrored(inp_host), weight = mirrored(weight_host), dout = mirrored(dout_host);
  // Bit i of `mask` requests gradient i (dinp, dweight, dbias).
  for (int mask = 0; mask < 8; ++mask) {
    Mirrored<float> dinp(static_cast<size_t>(N) * C);
    auto dweight = mirrored(random_floats(static_cast<size_t>(OC) * C, 5));  // accumulated into
    auto dbias = mirrored(random_floats(OC, 6));
    dinp.poison();  // overwritten
    for (const Context* ctx : {&cpu_, &cuda_}) {
      matmul_backward(*ctx, mask & 1 ? dinp.on(*ctx) : nullptr,
                      mask & 2 ? dweight.on(*ctx) : nullptr, mask & 4 ? dbias.on(*ctx) : nullptr,
                      dout.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, OC);
    }
    const std::string which = cat(" mask=", mask, label);
    if (mask & 1) expect_close("matmul.dinp" + which, dinp, 1e-5);
    expect_close("matmul.dweight" + which, dweight, 1e-5);  // untouched when not requested
    expect_close("matmul.dbias" + which, dbias, 1e-5);
  }
}

TEST_P(MatmulGpuTest, BiasGradientIsBitwiseDeterministic) {
  auto dout = mirrored(dout_host), inp = mirrored(inp_host), weight = mirrored(weight_host);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Buffer<float> dbias(Device::kCuda, OC);
    dbias.zero(cuda_);
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias.data(),
                    dout.cuda.data(), inp.cuda.data(), weight.cuda.data(), N, C, OC);
    if (run == 0)
      first = dbias.download();
    else
      EXPECT_TRUE(bitwise_equal(dbias.download(), first));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulGpuTest,
                         ::testing::Values(MatmulShape{1, 64, 64}, MatmulShape{512, 256, 768},
                                           MatmulShape{1000, 129, 77}, MatmulShape{3000, 192, 768}),
                         [](const auto& info) {
                           return cat("N", info.param.N, "_C", info.param.C, "_OC", info.param.OC);
                         });

class MatmulEdgeGpuTest : public GpuTest {};

TEST_F(MatmulEdgeGpuTest, EmptyBatchDoesNothing) {
  auto weight = mirrored(random_floats(32 * 16, 1));
  auto dweight = mirrored(random_floats(32 * 16, 2));
  auto dbias = mirrored(random_floats(32, 3));
  std::vector<float> dweight_before = dweight.cuda.download(), dbias_before = dbias.cuda.download();
  float* const none = nullptr;
  matmul_forward(cuda_, none, none, weight.cuda.data(), none, 0, 16, 32);
  matmul_backward(cuda_, none, dweight.cuda.data(), dbias.cuda.data(), none, none,
                  weight.cuda.data(), 0, 16, 32);
  EXPECT_TRUE(bitwise_equal(dweight.cuda.download(), dweight_before));
  EXPECT_TRUE(bitwise_equal(dbias.cuda.download(), dbias_before));
}

TEST_F(MatmulEdgeGpuTest, UnalignedViewsMatchCpu) {
  // Operands starting one float into their buffers: cuBLASLt must pick algorithms for 4-byte
  // alignment.
  constexpr int N = 100, C = 33, OC = 65;
  auto inp = mirrored(random_floats(N * C + 1, 1));
  auto weight = mirrored(random_floats(OC * C + 1, 2));
  auto bias = mirrored(random_floats(OC + 1, 3));
  Mirrored<float> out(N * OC + 1);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    matmul_forward(*ctx, out.on(*ctx) + 1, inp.on(*ctx) + 1, weight.on(*ctx) + 1, bias.on(*ctx) + 1,
                   N, C, OC);
  }
  std::vector<float> gpu = out.cuda.download(), cpu = out.cpu.download();
  double error = relative_error(std::vector<float>(gpu.begin() + 1, gpu.end()),
                                std::vector<float>(cpu.begin() + 1, cpu.end()));
  std::cout << "[ rel_err ] matmul.out unaligned: " << error << std::endl;
  EXPECT_LT(error, 1e-5);
}

}  // namespace
}  // namespace recforge::gpu_test
