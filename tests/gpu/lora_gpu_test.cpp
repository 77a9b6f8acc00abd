// LoRA on the GPU against the CPU backend: the kernel's forward (out, u) and backward (dinp, dA,
// dB) over ranks 1–64 with and without adapter dropout, a zero B giving the base matmul bit for
// bit, and a decoder with every linear layer adapted and a frozen base (hidden states, adapter and
// token-embedding gradients, merged outputs).
#include "kernels/cross_entropy.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "model/decoder.h"
#include "tests/gpu/gpu_test_support.h"

namespace recforge::gpu_test {
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

class DecoderLoraGpuTest : public GpuTest {};

TEST_F(DecoderLoraGpuTest, FrozenBaseStepMatchesTheCpuBackend) {
  ModelConfig config;
  config.vocab_size = 777;
  config.max_len = 64;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  LoraConfig lora;
  lora.rank = 8;
  lora.dropout = 0.1f;
  lora.targets = {"all_linear"};
  PackedBatch host = empty_batch();
  uint32_t seed = 3;
  for (int length : {1, 17, 64, 0, 33, 2}) {
    host.add_sequence(random_ints(length, seed, 0, config.vocab_size - 1),
                      random_ints(length, seed + 1, kIgnoreIndex, config.vocab_size - 1));
    seed += 2;
  }
  const std::vector<float> initial =
      random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f);
  std::vector<float> adapters =
      random_floats(LoraLayout(config, lora).total_size(), 10, -0.1f, 0.1f);
  std::vector<std::vector<float>> hidden, wte_gradient, adapter_gradients, merged;
  for (const Context& ctx : {cpu_, cuda_}) {
    Decoder<float> model(ctx, config, host.num_tokens());
    model.load_parameters(initial);
    model.enable_lora(lora, 1);
    model.load_adapter_parameters(adapters);
    model.set_base_frozen(true);
    DeviceBatch batch(ctx.device(), host, config);
    model.forward(batch, {AttentionMask::kCausal, true, 5});
    const size_t NC = static_cast<size_t>(host.num_tokens()) * config.d_model;
    hidden.emplace_back(NC);
    copy_bytes(hidden.back().data(), Device::kCpu, model.hidden(), ctx.device(), NC * 4);
    model.output_loss(batch, true);
    model.backward(batch);
    std::vector<float> gradients = model.gradients().download();
    wte_gradient.emplace_back(gradients.begin(), gradients.begin() + model.layout().at("wte").size);
    adapter_gradients.push_back(model.adapter_gradients().download());
    model.merge_lora();
    merged.push_back(model.parameters().download());
  }
  const double errors[] = {relative_error(hidden[1], hidden[0]),
                           relative_error(wte_gradient[1], wte_gradient[0]),
                           relative_error(adapter_gradients[1], adapter_gradients[0]),
                           relative_error(merged[1], merged[0])};
  const char* names[] = {"hidden", "wte gradient", "adapter gradients", "merged parameters"};
  for (int i = 0; i < 4; ++i) {
    std::cout << "[ rel_err ] decoder.lora." << names[i] << ": " << errors[i] << std::endl;
    EXPECT_LT(errors[i], 1e-4) << names[i];
  }
}

}  // namespace
}  // namespace recforge::gpu_test
