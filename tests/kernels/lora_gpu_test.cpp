// LoRA on the GPU against the CPU backend: the kernel's forward (out, u) and backward (dinp, dA,
// dB) over ranks 1–64 with and without adapter dropout, and a zero B giving the base matmul bit
// for bit.
#include "kernels/cross_entropy.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

struct LoraShape {
  int N, C, OC, r;
  float p;
};

void PrintTo(const LoraShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC << " r=" << s.r << " p=" << s.p;
}

class LoraGpuTest : public GpuTestWithParam<LoraShape> {
 protected:
  const LoraShape s = GetParam();
  const size_t NC = static_cast<size_t>(s.N) * s.C, NOC = static_cast<size_t>(s.N) * s.OC;
  const size_t Nr = static_cast<size_t>(s.N) * s.r;
  const std::string label = cat(" N=", s.N, " C=", s.C, " OC=", s.OC, " r=", s.r, " p=", s.p);
  Mirrored<float> inp = mirrored(random_floats(NC, 1));
  Mirrored<float> weight = mirrored(random_floats(static_cast<size_t>(s.OC) * s.C, 2, -0.1f, 0.1f));
  Mirrored<float> bias = mirrored(random_floats(s.OC, 3));
  Mirrored<float> a = mirrored(random_floats(static_cast<size_t>(s.r) * s.C, 4, -0.1f, 0.1f));
  Mirrored<float> b = mirrored(random_floats(static_cast<size_t>(s.OC) * s.r, 5));
  Mirrored<float> dout = mirrored(random_floats(NOC, 6));
  Mirrored<float> out{NOC}, u{Nr}, dropped{NC}, du{Nr}, dinp{NC};
  const DropoutParams dropout{s.p, 1234, 99};

  LoraWeights<float> weights(const Context& ctx) {
    return {a.on(ctx), b.on(ctx), s.r, 1.5f, dropout};
  }
  void forward() {
    for (Mirrored<float>* x : {&out, &u, &dropped}) x->poison();
    for (const Context* ctx : {&cpu_, &cuda_}) {
      lora_forward(*ctx, out.on(*ctx), u.on(*ctx), dropped.on(*ctx), inp.on(*ctx), weight.on(*ctx),
                   bias.on(*ctx), weights(*ctx), s.N, s.C, s.OC);
    }
  }
};

TEST_P(LoraGpuTest, ForwardAndBackwardMatchCpu) {
  forward();
  expect_close("lora.out" + label, out, 1e-5);
  expect_close("lora.u" + label, u, 1e-5);
  auto da = mirrored(random_floats(static_cast<size_t>(s.r) * s.C, 7));  // accumulated into
  auto db = mirrored(random_floats(static_cast<size_t>(s.OC) * s.r, 8));
  for (Mirrored<float>* x : {&dinp, &du, &dropped}) x->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    lora_backward(*ctx, dinp.on(*ctx), da.on(*ctx), db.on(*ctx), du.on(*ctx), dropped.on(*ctx),
                  dout.on(*ctx), inp.on(*ctx), u.on(*ctx), weight.on(*ctx), weights(*ctx), s.N, s.C,
                  s.OC);
  }
  expect_close("lora.dinp" + label, dinp, 1e-5);
  expect_close("lora.dA" + label, da, 1e-5);
  expect_close("lora.dB" + label, db, 1e-5);
}

TEST_P(LoraGpuTest, ZeroBGivesTheBaseMatmulBitwise) {
  b = mirrored(std::vector<float>(static_cast<size_t>(s.OC) * s.r, 0.0f));
  forward();
  Buffer<float> base(Device::kCuda, NOC);
  matmul_forward(cuda_, base.data(), inp.cuda.data(), weight.cuda.data(), bias.cuda.data(), s.N,
                 s.C, s.OC);
  EXPECT_TRUE(bitwise_equal(out.cuda.download(), base.download())) << label;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LoraGpuTest,
    ::testing::Values(LoraShape{1, 64, 64, 1, 0.0f}, LoraShape{1000, 129, 77, 8, 0.1f},
                      LoraShape{777, 256, 768, 16, 0.0f}, LoraShape{3000, 192, 65, 64, 0.25f}),
    [](const auto& info) {
      const LoraShape& s = info.param;
      return cat("N", s.N, "_C", s.C, "_OC", s.OC, "_r", s.r, s.p > 0 ? "_dropout" : "");
    });

}  // namespace
}  // namespace recforge::testing
