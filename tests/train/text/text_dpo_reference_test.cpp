// DPO over text answers against PyTorch (tests/reference/llama.py text_dpo): a tiny Llama with
// random LoRA adapters, groups of a true answer and rejected ones packed into one batch, random
// reference log-probabilities; the per-sequence policy log-probabilities, the loss and the
// gradient of every adapter tensor, for sigmoid DPO and S-DPO.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/train/text/tiny_text_model.h"
#include "train/text/text_objectives.h"

namespace recforge {
namespace {

using testing::ReferenceCase;

class TextDpoReferenceTest : public ::testing::TestWithParam<DpoLoss> {};

TEST_P(TextDpoReferenceTest, LossAndAdapterGradientsMatchPyTorch) {
  std::mt19937_64 rng(testing::fresh_seed());
  const testing::TinyTextModel tiny(rng, false);
  const int examples = 4, answers = 5, rejected = 3;
  const auto batches =
      dpo_batches(testing::random_text_examples(rng, examples, answers), rejected, 2, 8, 512);
  ASSERT_EQ(batches.size(), 1u);
  const TextBatch& batch = batches[0];
  auto model = tiny.build();
  std::vector<double> reference = answer_log_probs(*model, batch);
  for (double& lp : reference) lp += testing::random_normal<double>(rng, 1, 1.0)[0];

  ReferenceCase ref("llama.py", "text_dpo");
  const int64_t N = batch.host.num_tokens();
  ref.put("tokens", batch.host.tokens, {N});
  ref.put("positions", batch.host.positions, {N});
  ref.put("offsets", batch.host.offsets, {static_cast<int64_t>(batch.host.offsets.size())});
  ref.put("targets", batch.host.targets, {N});
  ref.put("group_sizes", batch.group_sizes, {static_cast<int64_t>(batch.group_sizes.size())});
  ref.put("reference", reference, {static_cast<int64_t>(reference.size())});
  std::ofstream names(ref.dir() / "names.txt"), trained(ref.dir() / "trained.txt");
  auto put_tensors = [&](const ParameterLayout& layout, const std::vector<float>& values) {
    for (const ParameterInfo& info : layout.tensors()) {
      ref.put("param." + info.name, std::span<const float>(values.data() + info.offset, info.size),
              info.shape);
      names << info.name << "\n";
    }
  };
  const ParameterLayout lora_layout = llama_lora_layout(tiny.config, testing::tiny_lora());
  put_tensors(llama_layout(tiny.config), tiny.parameters);
  put_tensors(lora_layout, tiny.adapters);
  for (const ParameterInfo& info : lora_layout.tensors()) trained << info.name << "\n";
  names.close();
  trained.close();
  const float beta = 0.5f;
  const std::pair<const char*, double> scalars[] = {
      {"n_layer", tiny.config.n_layer},
      {"n_head", tiny.config.n_head},
      {"n_kv_head", tiny.config.n_kv_head},
      {"head_dim", tiny.config.head_dim},
      {"rotary_dim", tiny.config.rotary_dim},
      {"rope_base", tiny.config.rope_base},
      {"rms_eps", tiny.config.rms_eps},
      {"causal", 1},
      {"tied", tiny.config.tied_embeddings},
      {"lora_rank", testing::tiny_lora().rank},
      {"lora_scale", testing::tiny_lora().scale()},
      {"beta", beta},
      {"loss_type", GetParam() == DpoLoss::kSdpo ? 1 : 0}};
  for (const auto& [name, value] : scalars) ref.put_scalar(name, value);
  ref.run();

  model->zero_gradients();
  const DpoSums sums = dpo_forward_backward(*model, batch, reference, {GetParam(), beta, 0.0f},
                                            1.0 / examples, true);
  const std::string label = "text_dpo." + dpo_loss_name(GetParam());
  const double expected_loss = ref.result("loss")[0];
  const double loss = sums.loss / sums.examples;
  testing::report_error(label + ".loss", std::abs(loss - expected_loss) / expected_loss);
  EXPECT_NEAR(loss, expected_loss, 1e-5 * expected_loss);
  const std::vector<double> policy = answer_log_probs(*model, batch);  // adapters unchanged
  const double policy_error = testing::relative_error(policy, ref.result("policy"));
  testing::report_error(label + ".policy_log_probs", policy_error);
  EXPECT_LT(policy_error, 1e-5);
  const std::vector<float> gradients = model->adapter_gradients().download();
  for (const ParameterInfo& info : lora_layout.tensors()) {
    const std::span<const float> grad(gradients.data() + info.offset, info.size);
    const double error = testing::relative_error(grad, ref.result("grad." + info.name));
    testing::report_error(label + ".grad." + info.name, error);
    EXPECT_LT(error, 1e-4) << info.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Losses, TextDpoReferenceTest,
                         ::testing::Values(DpoLoss::kSigmoid, DpoLoss::kSdpo),
                         [](const auto& info) { return dpo_loss_name(info.param); });

}  // namespace
}  // namespace recforge
