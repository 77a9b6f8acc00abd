// The dense layer with bf16 operands on the GPU (cuBLASLt, bf16 inputs, fp32 accumulation) against
// the CPU backend on the same bf16 inputs, for every storage combination: forward with an fp32 or
// bf16 output, with and without bias; backward with an fp32 or bf16 dinp and every combination of
// null gradients, dweight and dbias accumulating into random initial values. Each result is also
// compared with the fp32 layer on the CPU (the unrounded inputs).
#include <type_traits>

#include "kernels/convert.h"
#include "kernels/matmul.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
namespace {

constexpr double kTolerance = 1e-2;  // bf16 spacing is 2⁻⁸; expected ~1e-3

std::vector<bf16> to_bf16(const std::vector<float>& values) {
  std::vector<bf16> out(values.size());
  convert(Context::cpu(), out.data(), values.data(), static_cast<int64_t>(values.size()));
  return out;
}

template <typename T>
std::vector<float> to_float(const std::vector<T>& values) {
  if constexpr (std::is_same_v<T, bf16>) {
    std::vector<float> out(values.size());
    convert(Context::cpu(), out.data(), values.data(), static_cast<int64_t>(values.size()));
    return out;
  } else {
    return values;
  }
}

// Host values as storage type T (bf16 values rounded once).
template <typename T>
std::vector<T> stored_as(const std::vector<float>& values) {
  if constexpr (std::is_same_v<T, bf16>) {
    return to_bf16(values);
  } else {
    return values;
  }
}

// Prints and checks ‖cuda − cpu‖/‖cpu‖ and ‖cuda − fp32‖/‖fp32‖ (NaN fails both).
template <typename T>
void expect_close(const std::string& name, const Mirrored<T>& values,
                  const std::vector<float>& fp32) {
  const std::vector<float> gpu = to_float(values.cuda.download());
  const double vs_cpu = relative_error(gpu, to_float(values.cpu.download()));
  const double vs_fp32 = relative_error(gpu, fp32);
  std::cout << "[ rel_err ] " << name << ": " << vs_cpu << " vs CPU, " << vs_fp32 << " vs fp32"
            << std::endl;
  EXPECT_LT(vs_cpu, kTolerance) << name;
  EXPECT_LT(vs_fp32, kTolerance) << name;
}

struct MatmulShape {
  int N, C, OC;
};

void PrintTo(const MatmulShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC;
}

class MatmulBf16GpuTest : public GpuTestWithParam<MatmulShape> {
 protected:
  int N = GetParam().N, C = GetParam().C, OC = GetParam().OC;
  std::string label = cat(" N=", N, " C=", C, " OC=", OC);
  std::vector<float> inp_host = random_floats(static_cast<size_t>(N) * C, 1);
  std::vector<float> weight_host = random_floats(static_cast<size_t>(OC) * C, 2);
  std::vector<float> bias_host = random_floats(OC, 3);
  std::vector<float> dout_host = random_floats(static_cast<size_t>(N) * OC, 4);
  std::vector<float> dweight0_host = random_floats(static_cast<size_t>(OC) * C, 5);
  std::vector<float> dbias0_host = random_floats(OC, 6);

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
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Buffer<float> dbias(Device::kCuda, OC);
    dbias.zero(cuda_);
    matmul_backward(cuda_, static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias.data(),
                    dout.cuda.data(), static_cast<const bf16*>(nullptr),
                    static_cast<const bf16*>(nullptr), N, C, OC);
    if (run == 0)
      first = dbias.download();
    else
      EXPECT_TRUE(bitwise_equal(dbias.download(), first));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulBf16GpuTest,
                         ::testing::Values(MatmulShape{1, 64, 64}, MatmulShape{512, 256, 768},
                                           MatmulShape{1000, 129, 77}, MatmulShape{3000, 192, 768}),
                         [](const auto& info) {
                           return cat("N", info.param.N, "_C", info.param.C, "_OC", info.param.OC);
                         });

class MatmulBf16EdgeGpuTest : public GpuTest {};

TEST_F(MatmulBf16EdgeGpuTest, UnalignedViewsMatchCpu) {
  // bf16 operands starting one element (2 bytes) into their buffers: cuBLASLt must pick algorithms
  // for 2-byte alignment, away from the 16-byte tensor-core loads.
  constexpr int N = 100, C = 33, OC = 65;
  auto inp = mirrored(to_bf16(random_floats(N * C + 1, 1)));
  auto weight = mirrored(to_bf16(random_floats(OC * C + 1, 2)));
  auto bias = mirrored(to_bf16(random_floats(OC + 1, 3)));
  Mirrored<bf16> out(N * OC + 1);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    matmul_forward(*ctx, out.on(*ctx) + 1, inp.on(*ctx) + 1, weight.on(*ctx) + 1, bias.on(*ctx) + 1,
                   N, C, OC);
  }
  std::vector<float> gpu = to_float(out.cuda.download()), cpu = to_float(out.cpu.download());
  double error = relative_error(std::vector<float>(gpu.begin() + 1, gpu.end()),
                                std::vector<float>(cpu.begin() + 1, cpu.end()));
  std::cout << "[ rel_err ] matmul.bf16 out unaligned: " << error << std::endl;
  EXPECT_LT(error, kTolerance);
}

}  // namespace
}  // namespace recforge::gpu_test
