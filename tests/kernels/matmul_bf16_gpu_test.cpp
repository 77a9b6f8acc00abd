// The dense layer with bf16 operands on the GPU (cuBLASLt, bf16 inputs, fp32 accumulation) against
// the CPU backend on the same bf16 inputs, for every storage combination: forward with an fp32 or
// bf16 output, with and without bias; backward with an fp32 or bf16 dinp and every combination of
// null gradients, dweight and dbias accumulating into random initial values. Each result is also
// compared with the fp32 layer on the CPU (the unrounded inputs).
#include "kernels/matmul.h"
#include "tests/kernels/matmul_gpu_fixture.h"

namespace recforge::testing {
namespace {

using testing::to_bf16;

constexpr double kTolerance = 1e-2;  // bf16 spacing is 2⁻⁸; expected ~1e-3

// Prints and checks ‖cuda − cpu‖/‖cpu‖ and ‖cuda − fp32‖/‖fp32‖ (NaN fails both).
template <typename T>
void expect_close(const std::string& name, const Mirrored<T>& values,
                  const std::vector<float>& fp32) {
  const std::vector<float> gpu = widened(values.cuda.download());
  const double vs_cpu = relative_error(gpu, widened(values.cpu.download()));
  const double vs_fp32 = relative_error(gpu, fp32);
  std::cout << "[ rel_err ] " << name << ": " << vs_cpu << " vs CPU, " << vs_fp32 << " vs fp32"
            << std::endl;
  EXPECT_LT(vs_cpu, kTolerance) << name;
  EXPECT_LT(vs_fp32, kTolerance) << name;
}

class MatmulBf16GpuTest : public MatmulGpuFixture {
 protected:
  // The fp32 layer on the CPU from the unrounded inputs.
  std::vector<float> fp32_forward(bool with_bias) const {
    std::vector<float> out(static_cast<size_t>(N) * OC);
    matmul_forward(cpu_, out.data(), inp_host.data(), weight_host.data(),
                   with_bias ? bias_host.data() : nullptr, N, C, OC);
    return out;
  }
  struct Fp32Gradients {
    std::vector<float> dinp, dweight, dbias;
  };
  Fp32Gradients fp32_backward() const {
    Fp32Gradients g{std::vector<float>(static_cast<size_t>(N) * C), dweight0_host, dbias0_host};
    matmul_backward(cpu_, g.dinp.data(), g.dweight.data(), g.dbias.data(), dout_host.data(),
                    inp_host.data(), weight_host.data(), N, C, OC);
    return g;
  }

  template <typename Out>
  void check_forward() {
    auto inp = mirrored(to_bf16(inp_host)), weight = mirrored(to_bf16(weight_host));
    auto bias = mirrored(stored_as<Out>(bias_host));  // the output's type
    for (bool with_bias : {true, false}) {
      Mirrored<Out> out(static_cast<size_t>(N) * OC);
      out.poison();
      for (const Context* ctx : {&cpu_, &cuda_}) {
        matmul_forward(*ctx, out.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                       with_bias ? bias.on(*ctx) : nullptr, N, C, OC);
      }
      expect_close(
          cat("matmul.bf16 ", dtype_name<Out>(), " out", with_bias ? "" : " (no bias)", label), out,
          fp32_forward(with_bias));
    }
  }

  template <typename Dinp>
  void check_backward() {
    auto inp = mirrored(to_bf16(inp_host)), weight = mirrored(to_bf16(weight_host));
    auto dout = mirrored(to_bf16(dout_host));
    const Fp32Gradients fp32 = fp32_backward();
    // Bit i of `mask` requests gradient i (dinp, dweight, dbias).
    for (int mask = 0; mask < 8; ++mask) {
      Mirrored<Dinp> dinp(static_cast<size_t>(N) * C);
      dinp.poison();                           // overwritten
      auto dweight = mirrored(dweight0_host);  // accumulated into
      auto dbias = mirrored(dbias0_host);
      for (const Context* ctx : {&cpu_, &cuda_}) {
        matmul_backward(*ctx, mask & 1 ? dinp.on(*ctx) : nullptr,
                        mask & 2 ? dweight.on(*ctx) : nullptr, mask & 4 ? dbias.on(*ctx) : nullptr,
                        dout.on(*ctx), inp.on(*ctx), weight.on(*ctx), N, C, OC);
      }
      const std::string which = cat(" (", dtype_name<Dinp>(), " dinp) mask=", mask, label);
      if (mask & 1) expect_close("matmul.bf16 dinp" + which, dinp, fp32.dinp);
      // Untouched (equal to the initial values on both sides) when not requested.
      expect_close("matmul.bf16 dweight" + which, dweight, mask & 2 ? fp32.dweight : dweight0_host);
      expect_close("matmul.bf16 dbias" + which, dbias, mask & 4 ? fp32.dbias : dbias0_host);
    }
  }
};

TEST_P(MatmulBf16GpuTest, ForwardWithFp32OutputMatchesCpu) { check_forward<float>(); }

TEST_P(MatmulBf16GpuTest, ForwardWithBf16OutputMatchesCpu) { check_forward<bf16>(); }

TEST_P(MatmulBf16GpuTest, BackwardWithFp32DinpMatchesCpu) { check_backward<float>(); }

TEST_P(MatmulBf16GpuTest, BackwardWithBf16DinpMatchesCpu) { check_backward<bf16>(); }

TEST_P(MatmulBf16GpuTest, BiasGradientIsBitwiseDeterministic) {
  auto dout = mirrored(to_bf16(dout_host));
  expect_bias_gradient_deterministic([&](float* dbias) {
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias,
                    dout.cuda.data(), static_cast<const bf16*>(nullptr),
                    static_cast<const bf16*>(nullptr), N, C, OC);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulBf16GpuTest, ::testing::ValuesIn(kMatmulShapes),
                         matmul_shape_name);

using MatmulBf16EdgeGpuTest = MatmulEdgeGpuFixture;

TEST_F(MatmulBf16EdgeGpuTest, UnalignedViewsMatchCpu) {
  // bf16 operands starting one element (2 bytes) into their buffers: away from the 16-byte
  // tensor-core loads.
  expect_unaligned_views_close<bf16>("matmul.bf16 out unaligned", kTolerance);
}

}  // namespace
}  // namespace recforge::testing
