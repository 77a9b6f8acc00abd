// LoRA (kernels/lora.h), the adapter's kernel: forward (out, u) and backward (dinp, dA, dB) over
// ranks 1–64 with and without adapter dropout, and a zero B giving the base matmul bit for bit.
// The CPU against PyTorch (tests/reference/lora.py) in fp32 and fp64, also inside an enclosing
// parallel region, and its argument checks; the GPU against the CPU backend on the same inputs.
#include "kernels/lora.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/dropout.h"
#include "kernels/matmul.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

struct LoraShape {
  int N, C, OC, r;
  float p;      // adapter dropout
  float scale;  // s
};

void PrintTo(const LoraShape& s, std::ostream* os) {
  *os << "N=" << s.N << " C=" << s.C << " OC=" << s.OC << " r=" << s.r << " p=" << s.p;
}

// ---- CPU ----

// Odd sizes (uneven per-thread slices), every rank the decoder uses, with and without dropout.
constexpr LoraShape kReferenceShapes[] = {{257, 96, 97, 1, 0.0f, 16.0f},
                                          {257, 97, 193, 8, 0.25f, 2.0f},
                                          {131, 64, 191, 16, 0.0f, 0.5f},
                                          {200, 129, 65, 64, 0.1f, 0.25f},
                                          {33, 65, 127, 8, 0.5f, 5.656854f}};

struct LoraCase {
  LoraShape shape;
  DropoutParams dropout;
  std::vector<float> inp, weight, bias, a, b, dout, da0, db0;
  std::vector<double> out, u, dinp, da, db;
};

// The dropout multipliers (0 or 1/(1 − p)) of every input element, from the CPU dropout op.
std::vector<float> keep_scale(const LoraShape& s, const DropoutParams& dropout) {
  std::vector<float> ones(static_cast<size_t>(s.N) * s.C, 1.0f);
  dropout_forward(Context::cpu(), ones.data(), ones.data(), static_cast<int64_t>(ones.size()),
                  dropout);
  return ones;
}

std::vector<LoraCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  ReferenceCase ref("lora.py", "lora");
  ref.put_scalar("num_cases", std::size(kReferenceShapes));
  std::vector<LoraCase> cases;
  for (const LoraShape& s : kReferenceShapes) {
    const std::string p = case_prefix(cases.size());
    LoraCase c{s, {s.p, rng(), rng()}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    c.inp = random_normal<float>(rng, static_cast<size_t>(s.N) * s.C);
    c.weight = random_normal<float>(rng, static_cast<size_t>(s.OC) * s.C, 0.1);
    c.bias = random_normal<float>(rng, s.OC);
    c.a = random_normal<float>(rng, static_cast<size_t>(s.r) * s.C, 1.0 / std::sqrt(s.C));
    c.b = random_normal<float>(rng, static_cast<size_t>(s.OC) * s.r, 0.1);
    c.dout = random_normal<float>(rng, static_cast<size_t>(s.N) * s.OC);
    c.da0 = random_normal<float>(rng, c.a.size());
    c.db0 = random_normal<float>(rng, c.b.size());
    ref.put(p + "inp", c.inp, {s.N, s.C});
    ref.put(p + "weight", c.weight, {s.OC, s.C});
    ref.put(p + "bias", c.bias, {s.OC});
    ref.put(p + "a", c.a, {s.r, s.C});
    ref.put(p + "b", c.b, {s.OC, s.r});
    ref.put(p + "dout", c.dout, {s.N, s.OC});
    ref.put(p + "da0", c.da0, {s.r, s.C});
    ref.put(p + "db0", c.db0, {s.OC, s.r});
    ref.put(p + "keep_scale", keep_scale(s, c.dropout), {s.N, s.C});
    ref.put_scalar(p + "scale", s.scale);
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = case_prefix(i);
    cases[i].out = ref.result(p + "out");
    cases[i].u = ref.result(p + "u");
    cases[i].dinp = ref.result(p + "dinp");
    cases[i].da = ref.result(p + "da");
    cases[i].db = ref.result(p + "db");
  }
  return cases;
}

std::string label_of(const LoraShape& s, const char* type) {
  return concat("lora.", type, " N=", s.N, " C=", s.C, " OC=", s.OC, " r=", s.r, " p=", s.p);
}

// One case run through the kernels in element type T, every output and scratch poisoned first.
template <typename T>
struct LoraRun {
  const LoraShape& s;
  std::vector<T> inp, weight, bias, a, b, dout;
  std::vector<T> out, u, dropped, du, dinp, da, db;
  LoraWeights<T> lora;

  explicit LoraRun(const LoraCase& c)
      : s(c.shape),
        inp(convert<T>(c.inp)),
        weight(convert<T>(c.weight)),
        bias(convert<T>(c.bias)),
        a(convert<T>(c.a)),
        b(convert<T>(c.b)),
        dout(convert<T>(c.dout)),
        out(static_cast<size_t>(s.N) * s.OC, NAN),
        u(static_cast<size_t>(s.N) * s.r, NAN),
        dropped(static_cast<size_t>(s.N) * s.C, NAN),
        du(static_cast<size_t>(s.N) * s.r, NAN),
        dinp(static_cast<size_t>(s.N) * s.C, NAN),
        da(convert<T>(c.da0)),
        db(convert<T>(c.db0)),
        lora{a.data(), b.data(), s.r, s.scale, c.dropout} {}

  void forward() {
    lora_forward(Context::cpu(), out.data(), u.data(), dropped.data(), inp.data(), weight.data(),
                 bias.data(), lora, s.N, s.C, s.OC);
  }
  void backward() {
    lora_backward(Context::cpu(), dinp.data(), da.data(), db.data(), du.data(), dropped.data(),
                  dout.data(), inp.data(), u.data(), weight.data(), lora, s.N, s.C, s.OC);
  }
  void check(const LoraCase& c, double tolerance) const {
    const std::string label = label_of(s, type_name<T>());
    expect_close(label + " out", out, c.out, tolerance);
    expect_close(label + " u", u, c.u, tolerance);
    expect_close(label + " dinp", dinp, c.dinp, tolerance);
    expect_close(label + " dA", da, c.da, tolerance);
    expect_close(label + " dB", db, c.db, tolerance);
  }
};

// The PyTorch references are computed once and shared by the tests of the suite.
class LoraReference : public SharedReferenceCases<LoraCase, make_cases> {
 protected:
  template <typename T>
  void check_all(double tolerance) {
    for (const LoraCase& c : *cases_) {
      LoraRun<T> run(c);
      run.forward();
      run.backward();
      run.check(c, tolerance);
    }
  }
};

TEST_F(LoraReference, ForwardAndBackwardMatchPyTorch) { check_all<float>(2e-6); }

TEST_F(LoraReference, ForwardAndBackwardInDoubleMatchPyTorch) { check_all<double>(1e-13); }

// A nested parallel region gets one thread: the kernel's barriers and work split must still hold.
TEST_F(LoraReference, MatchesPyTorchInsideAParallelRegion) {
  for (const LoraCase& c : *cases_) {
    LoraRun<float> run(c);
    run_inside_parallel_region([&] {
      run.forward();
      run.backward();
    });
    run.check(c, 2e-6);
  }
}

// A fresh adapter (B = 0) leaves the layer exactly as it was.
TEST_F(LoraReference, ZeroBGivesTheBaseMatmulBitwise) {
  for (const LoraCase& c : *cases_) {
    LoraRun<float> run(c);
    std::fill(run.b.begin(), run.b.end(), 0.0f);
    run.forward();
    std::vector<float> base(run.out.size(), NAN);
    matmul_forward(Context::cpu(), base.data(), run.inp.data(), run.weight.data(), run.bias.data(),
                   c.shape.N, c.shape.C, c.shape.OC);
    size_t differing = 0;
    for (size_t i = 0; i < base.size(); ++i) {
      differing += std::memcmp(&base[i], &run.out[i], sizeof(float)) != 0;
    }
    report_error(label_of(c.shape, "float") + " B=0 outputs differing from matmul",
                 static_cast<double>(differing));
    EXPECT_EQ(differing, 0u);
  }
}

TEST(Lora, RejectsBadArguments) {
  std::vector<float> x(64, 1.0f), out(64), u(64);
  LoraWeights<float> lora{x.data(), x.data(), 0, 1.0f, {}};
  EXPECT_THROW(lora_forward(Context::cpu(), out.data(), u.data(), static_cast<float*>(nullptr),
                            x.data(), x.data(), static_cast<float*>(nullptr), lora, 2, 4, 4),
               Error);  // rank 0
  lora.rank = 2;
  lora.dropout.p = 0.1f;
  EXPECT_THROW(lora_forward(Context::cpu(), out.data(), u.data(), static_cast<float*>(nullptr),
                            x.data(), x.data(), static_cast<float*>(nullptr), lora, 2, 4, 4),
               Error);  // dropout without its scratch
  lora.dropout.p = 1.0f;
  EXPECT_THROW(lora_forward(Context::cpu(), out.data(), u.data(), u.data(), x.data(), x.data(),
                            static_cast<float*>(nullptr), lora, 2, 4, 4),
               Error);  // p outside [0, 1)
}

// ---- GPU against the CPU ----

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
    return {a.on(ctx), b.on(ctx), s.r, s.scale, dropout};
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

INSTANTIATE_TEST_SUITE_P(Shapes, LoraGpuTest,
                         ::testing::Values(LoraShape{1, 64, 64, 1, 0.0f, 1.5f},
                                           LoraShape{1000, 129, 77, 8, 0.1f, 1.5f},
                                           LoraShape{777, 256, 768, 16, 0.0f, 1.5f},
                                           LoraShape{3000, 192, 65, 64, 0.25f, 1.5f}),
                         [](const auto& info) {
                           const LoraShape& s = info.param;
                           return cat("N", s.N, "_C", s.C, "_OC", s.OC, "_r", s.r,
                                      s.p > 0 ? "_dropout" : "");
                         });

}  // namespace
}  // namespace recforge::testing
