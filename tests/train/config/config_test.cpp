// The run configuration loader: every key is read, defaults fill the rest, and every kind of
// mistake stops with the file, line and key path; overrides change the tree before it is checked;
// to_yaml writes a file that reads back to the same configuration.
#include "train/config/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kernels/check.h"

namespace recforge {
namespace {

// The error parse_config throws, or "" when the text is accepted.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, "test.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kFullConfig = R"(run:
  output_dir: runs/beauty
  seed: 7
  device: cpu
  threads: 4
  log_every_steps: 10
data: {path: data/beauty, max_len: 200, split: leave_one_out, sliding_windows: true}
model:
  d_model: 128
  n_layer: 3
  n_head: 2
  mlp_ratio: 2
  dropout: 0.1
  precision: fp32
stages:
  - name: pretrain
    objective:
      type: nbp
      mask_ratio: 0.5
      next_k: 3
      next_k_weights: [1.0, 0.5, 0.25]
      lambda: 2
      loss: sampled_softmax
      negatives: 64
      sampling: popularity
      temperature: 0.07
    train:
      batch_size: 128
      token_budget: 4096
      lr: 3e-4
      warmup_steps: 100
      schedule: cosine
      min_lr_ratio: 0.1
      epochs: 20
      max_steps: 5000
      weight_decay: 0.01
      beta1: 0.8
      beta2: 0.95
      eps: 1e-6
      grad_clip: 0.5
      grad_accum: 2
    eval:
      every_steps: 500
      metric: hr@20
      patience: 5
      protocol: sampled
      sampled_negatives: 99
      sampled_by: popularity
      exclude_history: false
      ks: [5, 20]
      batch_size: 64
  - name: finetune
    init: runs/base/checkpoints/pretrain-step100
    data: data/newer
    objective:
      type: dpo
      task: rating
      like_threshold: 3
      examples_per_user: 5
      dpo: {loss: sdpo, beta: 0.5, label_smoothing: 0.1, rejected: 3, pairs: rating,
            chosen_min_rating: 5, rejected_max_rating: 1, precompute_reference: false,
            pairs_per_user: 2, disable_dropout: false}
    finetune:
      method: lora
      lora: {rank: 4, alpha: 8, rslora: true, dropout: 0.05, targets: [qkv, mlp_fc]}
      new_items_init: random
      known_items: frozen
      known_items_lr_scale: 0.1
    train: {lr: 1e-4}
distributed: {backend: none}
)";

TEST(Config, ReadsEveryKeyOfAFullFile) {
  RunConfig c = parse_config(kFullConfig, "full.yaml", {});
  EXPECT_EQ(c.run.output_dir, "runs/beauty");
  EXPECT_EQ(c.run.seed, 7u);
  EXPECT_EQ(c.run.device, DeviceChoice::kCpu);
  EXPECT_EQ(c.run.threads, 4);
  EXPECT_EQ(c.run.log_every_steps, 10);
  EXPECT_EQ(c.data.path, "data/beauty");
  EXPECT_EQ(c.data.max_len, 200);
  EXPECT_TRUE(c.data.sliding_windows);
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.model.n_layer, 3);
  EXPECT_EQ(c.model.mlp_ratio, 2);
  EXPECT_FLOAT_EQ(c.model.dropout, 0.1f);
  ASSERT_EQ(c.stages.size(), 2u);
  const StageSection& s = c.stages[0];
  EXPECT_EQ(s.objective.type, ObjectiveType::kNbp);
  EXPECT_FLOAT_EQ(s.objective.mask_ratio, 0.5f);
  EXPECT_EQ(s.objective.next_k, 3);
  EXPECT_EQ(s.objective.next_k_weights, (std::vector<float>{1.0f, 0.5f, 0.25f}));
  EXPECT_FLOAT_EQ(s.objective.lambda, 2.0f);
  EXPECT_EQ(s.objective.loss, ItemLossType::kSampledSoftmax);
  EXPECT_EQ(s.objective.negatives, 64);
  EXPECT_EQ(s.objective.sampling, NegativeSampling::kPopularity);
  EXPECT_FLOAT_EQ(s.objective.temperature, 0.07f);
  EXPECT_EQ(s.train.batch_size, 128);
  EXPECT_EQ(s.train.token_budget, 4096);
  EXPECT_FLOAT_EQ(s.train.lr, 3e-4f);
  EXPECT_EQ(s.train.warmup_steps, 100);
  EXPECT_EQ(s.train.schedule, LrSchedule::kCosine);
  EXPECT_FLOAT_EQ(s.train.min_lr_ratio, 0.1f);
  EXPECT_EQ(s.train.epochs, 20);
  EXPECT_EQ(s.train.max_steps, 5000);
  EXPECT_FLOAT_EQ(s.train.weight_decay, 0.01f);
  EXPECT_FLOAT_EQ(s.train.beta1, 0.8f);
  EXPECT_FLOAT_EQ(s.train.beta2, 0.95f);
  EXPECT_FLOAT_EQ(s.train.eps, 1e-6f);
  EXPECT_FLOAT_EQ(s.train.grad_clip, 0.5f);
  EXPECT_EQ(s.train.grad_accum, 2);
  EXPECT_EQ(s.eval.every_steps, 500);
  EXPECT_EQ(s.eval.metric.key, "hr@20");
  EXPECT_EQ(s.eval.patience, 5);
  EXPECT_EQ(s.eval.protocol, EvalProtocol::kSampled);
  EXPECT_EQ(s.eval.sampled_negatives, 99);
  EXPECT_EQ(s.eval.sampled_by, NegativeSampling::kPopularity);
  EXPECT_FALSE(s.eval.exclude_history);
  EXPECT_EQ(s.eval.ks, (std::vector<int>{5, 20}));
  EXPECT_EQ(s.eval.batch_size, 64);
  EXPECT_EQ(c.stages[1].name, "finetune");
  EXPECT_FLOAT_EQ(c.stages[1].train.lr, 1e-4f);
  EXPECT_EQ(c.distributed.backend, CommBackend::kNone);
}

TEST(Config, ReadsFineTuningStageKeys) {
  const StageSection s = parse_config(kFullConfig, "full.yaml", {}).stages[1];
  EXPECT_EQ(s.init.from, InitFrom::kCheckpoint);
  EXPECT_EQ(s.init.checkpoint, "runs/base/checkpoints/pretrain-step100");
  EXPECT_EQ(s.data, "data/newer");
  EXPECT_EQ(s.objective.type, ObjectiveType::kDpo);
  EXPECT_EQ(s.objective.task, SftTask::kRating);
  EXPECT_EQ(s.objective.like_threshold, 3);
  EXPECT_EQ(s.objective.examples_per_user, 5);
  EXPECT_EQ(s.objective.dpo.loss, DpoLoss::kSdpo);
  EXPECT_FLOAT_EQ(s.objective.dpo.beta, 0.5f);
  EXPECT_FLOAT_EQ(s.objective.dpo.label_smoothing, 0.1f);
  EXPECT_EQ(s.objective.dpo.rejected, 3);
  EXPECT_EQ(s.objective.dpo.pairs, PairSource::kRating);
  EXPECT_EQ(s.objective.dpo.chosen_min_rating, 5);
  EXPECT_EQ(s.objective.dpo.rejected_max_rating, 1);
  EXPECT_FALSE(s.objective.dpo.precompute_reference);
  EXPECT_EQ(s.objective.dpo.pairs_per_user, 2);
  EXPECT_FALSE(s.objective.dpo.disable_dropout);
  EXPECT_EQ(s.finetune.method, FinetuneMethod::kLora);
  EXPECT_EQ(s.finetune.lora.rank, 4);
  EXPECT_FLOAT_EQ(s.finetune.lora.alpha, 8.0f);
  EXPECT_TRUE(s.finetune.lora.rslora);
  EXPECT_FLOAT_EQ(s.finetune.lora.dropout, 0.05f);
  EXPECT_EQ(s.finetune.lora.targets, (std::vector<std::string>{"qkv", "mlp_fc"}));
  EXPECT_EQ(s.finetune.new_items_init, NewItemsInit::kRandom);
  EXPECT_EQ(s.finetune.known_items, KnownItems::kFrozen);
  EXPECT_FLOAT_EQ(s.finetune.known_items_lr_scale, 0.1f);
}

TEST(ConfigErrors, FirstStageCannotStartFromAPreviousStage) {
  EXPECT_NE(
      error_of("stages:\n  - {name: a, init: previous}\n").find("stages[0].init: the first stage"),
      std::string::npos);
}

TEST(ConfigErrors, LoraNeedsWeightsToAdapt) {
  const std::string error =
      error_of("stages:\n  - {name: a}\n  - {name: b, init: scratch, finetune: {method: lora}}\n");
  EXPECT_NE(error.find("stages[1].finetune: LoRA adapts existing weights"), std::string::npos)
      << error;
}

TEST(ConfigErrors, Bf16CannotReachALoraStage) {
  EXPECT_EQ(error_of("model: {precision: bf16}\nstages:\n  - {name: a}\n  - {name: tune, "
                     "finetune: {method: lora}}\n"),
            "test.yaml:1: model: model.precision bf16 cannot run stage \"tune\" (finetune.method "
            "lora): LoRA runs in fp32 only, set model.precision: fp32");
}

TEST(ConfigErrors, UnknownPrecisionListsTheChoices) {
  EXPECT_EQ(error_of("model: {precision: fp16}\nstages: [{}]\n"),
            "test.yaml:1: model.precision: expected one of: fp32, bf16, got \"fp16\"");
}

TEST(ConfigErrors, UnknownLoraTargetListsTheChoices) {
  const std::string error = error_of(
      "stages:\n  - {name: a}\n  - {name: b, finetune: {method: lora, lora: {targets: [mlp]}}}\n");
  EXPECT_NE(error.find("stages[1].finetune.lora.targets: expected a non-empty list of: qkv"),
            std::string::npos)
      << error;
}

const char* kTextRun = R"(model: {pretrained: model.gguf, precision: bf16}
prompts: {task: candidate_choice, train: val.json, train_count: 100, shots: 16, valid: val.json,
          valid_first: 100, test: test.json, test_limit: 50, template: "H {history} C {candidates}"}
stages:
  - name: sft
    objective: {type: sft}
    finetune: {method: lora, lora: {rank: 4, targets: [q_proj, v_proj]}}
    eval: {metric: hr@1}
  - name: sdpo
    objective: {type: dpo, dpo: {loss: sdpo, rejected: 8}}
    finetune: {method: lora, lora: {rank: 4, targets: [q_proj, v_proj]}}
    eval: {metric: hr@1}
)";

TEST(TextRunConfig, ReadsPromptsAndAllowsABf16BaseUnderLora) {
  const RunConfig c = parse_config(kTextRun, "text.yaml", {});
  EXPECT_TRUE(c.text_run());
  EXPECT_EQ(c.prompts.task, TextTask::kCandidateChoice);
  EXPECT_EQ(c.prompts.shots, 16);
  EXPECT_EQ(c.prompts.template_text, "H {history} C {candidates}");
  EXPECT_EQ(c.stages[1].objective.dpo.rejected, 8);
  EXPECT_EQ(parse_config(to_yaml(c), "resolved.yaml", {}), c);
}

TEST(TextRunConfigErrors, NeedsTrainingPrompts) {
  std::string text = kTextRun;
  text.replace(text.find("train: val.json, "), 17, "");
  const std::string error = error_of(text);
  EXPECT_NE(error.find("set prompts.train"), std::string::npos) << error;
}

TEST(TextRunConfigErrors, RefusesAPreTrainingStage) {
  const std::string error = error_of(kTextRun, {"stages.sft.objective.type=mbp_nbp"});
  EXPECT_NE(error.find("a pretrained model's stages are sft or dpo, got mbp_nbp"),
            std::string::npos)
      << error;
}

TEST(TextRunConfigErrors, RefusesADecoderLoraTarget) {
  const std::string error = error_of(kTextRun, {"stages.sft.finetune.lora.targets=[qkv]",
                                                "stages.sdpo.finetune.lora.targets=[qkv]"});
  EXPECT_NE(error.find("LoRA target \"qkv\" is not a Llama layer"), std::string::npos) << error;
}

TEST(TextRunConfigErrors, StagesShareOneAdapterShape) {
  const std::string error = error_of(kTextRun, {"stages.sdpo.finetune.lora.rank=8"});
  EXPECT_NE(error.find("finetune.lora must match the first stage's"), std::string::npos) << error;
}

TEST(TextRunConfigErrors, RefusesAMetricTheTaskDoesNotReport) {
  const std::string error = error_of(kTextRun, {"stages.sft.eval.metric=auc"});
  EXPECT_NE(error.find("eval.metric auc is not a candidate_choice metric (expected hr@1)"),
            std::string::npos)
      << error;
}

TEST(TextRunConfigErrors, RefusesFullFineTuning) {
  const std::string error = error_of(kTextRun, {"stages.sft.finetune.method=full"});
  EXPECT_NE(error.find("trains LoRA adapters"), std::string::npos) << error;
}

TEST(ConfigErrors, AnItemModelRefusesALlamaTargetAndTooManyRejected) {
  EXPECT_NE(error_of("stages:\n  - {name: a}\n  - {name: b, finetune: {method: lora, lora: "
                     "{targets: [q_proj]}}}\n")
                .find("is a pretrained model's"),
            std::string::npos);
  EXPECT_NE(error_of("stages:\n  - {name: a, objective: {type: dpo, dpo: {rejected: 8}}}\n")
                .find("above 7, the most an item model takes"),
            std::string::npos);
}

TEST(Config, MissingKeysTakeTheDefaults) {
  RunConfig c = parse_config("stages:\n  - name: pretrain\n", "min.yaml", {});
  RunConfig expected;
  expected.stages.resize(1);
  EXPECT_EQ(c, expected);
}

TEST(Config, EmptySectionKeepsTheDefaults) {
  RunConfig c = parse_config("model:\nstages: [{name: a, eval: }]\n", "t.yaml", {});
  EXPECT_EQ(c.model, ModelSection{});
  EXPECT_EQ(c.stages[0].eval, EvalSection{});
}

TEST(ConfigErrors, APathThatIsNotUtf8IsRefusedNamingItsKey) {
  const std::string error = error_of("stages: [{}]\n", {"data.path=data/\xff"});
  EXPECT_NE(error.find("data.path: not valid UTF-8 (byte 255 at offset 5)"), std::string::npos)
      << error;
  EXPECT_NE(error_of("run: {output_dir: \"runs/\xc3\"}\nstages: [{}]\n").find("run.output_dir"),
            std::string::npos);
}

TEST(ConfigErrors, AStageWithoutADatasetIsRefusedBeforeARun) {
  const RunConfig c = parse_config("stages: [{name: a}]\n", "t.yaml", {});
  try {
    require_datasets(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.path is missing"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(require_datasets(parse_config("stages: [{name: a, data: d}]\n", "t.yaml", {})));
}

TEST(ConfigErrors, UnknownTopLevelKeyNamesLineAndChoices) {
  EXPECT_EQ(error_of("stages: [{}]\n\nmodle: {}\n"),
            "test.yaml:3: modle: unknown key (expected one of: run, data, model, stages, "
            "distributed, prompts)");
}

TEST(ConfigErrors, UnknownNestedKeyNamesItsPath) {
  EXPECT_EQ(error_of("model:\n  d_model: 64\n  n_heads: 2\nstages: [{}]\n"),
            "test.yaml:3: model.n_heads: unknown key (expected one of: d_model, n_layer, n_head, "
            "mlp_ratio, dropout, init_std, embedding_init_std, precision, pretrained, max_tokens)");
}

TEST(ConfigErrors, UnknownKeyInASecondStageNamesStageIndexAndLine) {
  std::string error = error_of(
      "stages:\n"
      "  - name: a\n"
      "  - name: b\n"
      "    train:\n"
      "      lr: 1e-3\n"
      "      lrr: 2\n");
  EXPECT_EQ(error.rfind("test.yaml:6: stages[1].train.lrr: unknown key (expected one of: "
                        "batch_size, token_budget, lr, ",
                        0),
            0u)
      << error;
}

TEST(ConfigErrors, UnknownKeyInsideObjective) {
  EXPECT_EQ(error_of("stages:\n  - objective: {type: mbp, mask: 0.3}\n")
                .rfind("test.yaml:2: stages[0].objective.mask: unknown key", 0),
            0u);
}

TEST(ConfigErrors, WrongTypeQuotesTheValue) {
  EXPECT_EQ(error_of("stages:\n  - train:\n      lr: abc\n"),
            "test.yaml:3: stages[0].train.lr: expected a finite number, got \"abc\"");
  EXPECT_EQ(error_of("model: {n_layer: 2.5}\nstages: [{}]\n"),
            "test.yaml:1: model.n_layer: expected a 32-bit integer, got \"2.5\"");
  EXPECT_EQ(error_of("data: {sliding_windows: maybe}\nstages: [{}]\n"),
            "test.yaml:1: data.sliding_windows: expected true or false, got \"maybe\"");
  EXPECT_EQ(error_of("run: {seed: -1}\nstages: [{}]\n"),
            "test.yaml:1: run.seed: expected a non-negative integer, got \"-1\"");
}

TEST(ConfigErrors, ListWhereAMapIsExpected) {
  EXPECT_EQ(error_of("stages:\n  - train: [1, 2]\n"),
            "test.yaml:2: stages[0].train: expected a map, got a list");
}

TEST(ConfigErrors, ScalarWhereAListIsExpected) {
  EXPECT_EQ(error_of("stages:\n  - eval: {ks: 10}\n"),
            "test.yaml:2: stages[0].eval.ks: expected a list, got \"10\"");
}

TEST(ConfigErrors, OutOfRangeValuesNameTheRange) {
  EXPECT_EQ(error_of("model: {dropout: 1.0}\nstages: [{}]\n"),
            "test.yaml:1: model.dropout: expected a value in [0, 1), got 1");
  EXPECT_EQ(error_of("stages: [{objective: {next_k: 9}}]\n"),
            "test.yaml:1: stages[0].objective.next_k: expected a value in [1, 8], got 9");
  EXPECT_EQ(error_of("stages: [{train: {lr: 0}}]\n"),
            "test.yaml:1: stages[0].train.lr: expected a value > 0, got 0");
  EXPECT_EQ(error_of("stages: [{objective: {mask_ratio: 0}}]\n"),
            "test.yaml:1: stages[0].objective.mask_ratio: expected a value in (0, 1], got 0");
  EXPECT_EQ(error_of("stages: [{eval: {ks: [10, 0]}}]\n"),
            "test.yaml:1: stages[0].eval.ks: expected a non-empty list of distinct cutoffs >= 1, "
            "got [10, 0]");
}

TEST(ConfigErrors, NextKWeightsMustMatchNextK) {
  EXPECT_EQ(error_of("stages:\n  - objective:\n      next_k: 2\n      next_k_weights: [1, 1, 1]\n"),
            "test.yaml:4: stages[0].objective.next_k_weights: expected next_k (2) weights or "
            "none, got 3");
  EXPECT_EQ(error_of("stages: [{objective: {next_k: 2, next_k_weights: [1, 0.5]}}]\n"), "");
}

TEST(ConfigErrors, DModelMustBeAMultipleOfNHead) {
  EXPECT_EQ(error_of("model:\n  d_model: 96\n  n_head: 5\nstages: [{}]\n"),
            "test.yaml:2: model.d_model: expected a multiple of n_head (5), got 96");
}

TEST(ConfigErrors, BadEnumListsTheChoices) {
  EXPECT_EQ(error_of("stages: [{train: {schedule: cosin}}]\n"),
            "test.yaml:1: stages[0].train.schedule: expected one of: constant, cosine, linear, "
            "got \"cosin\"");
  EXPECT_EQ(error_of("run: {device: gpu}\nstages: [{}]\n"),
            "test.yaml:1: run.device: expected one of: cpu, cuda, auto, got \"gpu\"");
}

TEST(ConfigErrors, DuplicateKeyNamesBothLines) {
  EXPECT_EQ(error_of("model:\n  d_model: 64\n  n_head: 2\n  d_model: 128\nstages: [{}]\n"),
            "test.yaml:4: model.d_model: duplicate key (first given at line 2)");
}

TEST(ConfigErrors, MissingOrEmptyStages) {
  EXPECT_EQ(error_of("model: {d_model: 64}\n"),
            "test.yaml:1: stages: missing (a run needs a list of at least one stage)");
  EXPECT_EQ(error_of(""), "test.yaml: stages: missing (a run needs a list of at least one stage)");
  EXPECT_EQ(error_of("stages: []\n"),
            "test.yaml:1: stages: expected a list of at least one stage, got an empty list");
}

TEST(ConfigErrors, StageNamesAreUniqueAndWellFormed) {
  EXPECT_EQ(error_of("stages:\n  - name: a\n  - name: a\n"),
            "test.yaml:3: stages[1].name: duplicate stage name \"a\" (also stages[0])");
  EXPECT_EQ(error_of("stages:\n  - name: \"\"\n"),
            "test.yaml:2: stages[0].name: expected a name of letters, digits, '_' or '-' that "
            "starts with a letter, got \"\"");
  EXPECT_NE(error_of("stages: [{name: '0'}]\n"), "");
}

TEST(ConfigErrors, MetricMustUseACutoffFromKs) {
  EXPECT_EQ(error_of("stages:\n  - eval:\n      ks: [1, 5]\n      metric: ndcg@10\n"),
            "test.yaml:4: stages[0].eval.metric: expected ndcg@K, hr@K (K in ks = [1, 5]), mrr, "
            "auc, accuracy, rmse or mae, got \"ndcg@10\"");
  EXPECT_EQ(error_of("stages: [{eval: {ks: [1, 5], metric: mrr}}]\n"), "");
  EXPECT_NE(error_of("stages: [{eval: {metric: recall@10}}]\n"), "");
}

TEST(ConfigErrors, InvalidYamlNamesTheLine) {
  EXPECT_EQ(error_of("stages:\n  - name: [a\n").rfind("test.yaml:", 0), 0u);
  EXPECT_NE(error_of("stages:\n  - name: [a\n").find("invalid YAML"), std::string::npos);
}

TEST(ConfigErrors, TopLevelMustBeAMap) {
  EXPECT_EQ(error_of("- 1\n- 2\n"), "test.yaml:1: expected a map of sections, got a list");
}

TEST(ConfigOverrides, SetAStageValueByIndex) {
  RunConfig c = parse_config(kFullConfig, "full.yaml", {"stages.1.train.lr=3e-4"});
  EXPECT_FLOAT_EQ(c.stages[1].train.lr, 3e-4f);
  EXPECT_FLOAT_EQ(c.stages[0].train.lr, 3e-4f);  // from the file
}

TEST(ConfigOverrides, SetAStageValueByName) {
  RunConfig c = parse_config(kFullConfig, "full.yaml", {"stages.finetune.train.epochs=3"});
  EXPECT_EQ(c.stages[1].train.epochs, 3);
  EXPECT_EQ(c.stages[0].train.epochs, 20);
}

TEST(ConfigOverrides, AStageWithoutANameAnswersToTheDefaultName) {
  RunConfig c = parse_config("stages: [{}]\n", "t.yaml", {"stages.pretrain.train.lr=0.5"});
  EXPECT_FLOAT_EQ(c.stages[0].train.lr, 0.5f);
}

TEST(ConfigOverrides, FlowValuesAndMissingSections) {
  RunConfig c = parse_config("stages: [{}]\n", "t.yaml",
                             {"stages.0.eval.ks=[1,10]", "model.dropout=0", "run.seed=9"});
  EXPECT_EQ(c.stages[0].eval.ks, (std::vector<int>{1, 10}));
  EXPECT_EQ(c.model.dropout, 0.0f);
  EXPECT_EQ(c.run.seed, 9u);
}

TEST(ConfigOverrides, LaterOverridesWin) {
  RunConfig c = parse_config("stages: [{}]\n", "t.yaml", {"run.threads=2", "run.threads=3"});
  EXPECT_EQ(c.run.threads, 3);
}

TEST(ConfigOverrides, UnknownKeyNamesTheOverride) {
  std::string error = error_of(kFullConfig, {"stages.0.train.lrr=1"});
  EXPECT_EQ(
      error.rfind("override \"stages.0.train.lrr=1\": stages[0].train.lrr: unknown key (expected "
                  "one of: batch_size,",
                  0),
      0u)
      << error;
  EXPECT_EQ(error_of(kFullConfig, {"trainer.lr=1"})
                .rfind("override \"trainer.lr=1\": trainer: unknown key", 0),
            0u);
}

TEST(ConfigOverrides, BadValuesAreCheckedLikeTheFile) {
  EXPECT_EQ(error_of(kFullConfig, {"stages.pretrain.train.lr=abc"}),
            "override \"stages.pretrain.train.lr=abc\": stages[0].train.lr: expected a finite "
            "number, got \"abc\"");
  EXPECT_EQ(error_of(kFullConfig, {"model.dropout=2"}),
            "override \"model.dropout=2\": model.dropout: expected a value in [0, 1), got 2");
}

TEST(ConfigOverrides, BadAddressesAreErrors) {
  EXPECT_EQ(error_of(kFullConfig, {"stages.5.train.lr=1"}),
            "override \"stages.5.train.lr=1\": stages has 2 entries, there is no index 5");
  EXPECT_EQ(error_of(kFullConfig, {"stages.sft.train.lr=1"}),
            "override \"stages.sft.train.lr=1\": stages has no entry named \"sft\"");
  EXPECT_EQ(error_of(kFullConfig, {"run.seed.x=1"}),
            "override \"run.seed.x=1\": run.seed is \"7\", not a map");
  EXPECT_EQ(error_of(kFullConfig, {"run.seed"}), "override \"run.seed\": expected key.path=value");
  EXPECT_EQ(error_of(kFullConfig, {"run..seed=1"}),
            "override \"run..seed=1\": empty key in the path");
}

TEST(ConfigRoundTrip, ToYamlReadsBackToTheSameConfig) {
  RunConfig c = parse_config(kFullConfig, "full.yaml", {});
  c.run.output_dir = "runs/with \"quotes\", colons: and\ttabs";
  c.data.path = "";
  c.stages[0].train.lr = 0.1f + 0.2f;  // a float with no short decimal form
  c.stages[1].objective.next_k_weights = {};
  RunConfig back = parse_config(to_yaml(c), "resolved.yaml", {});
  EXPECT_EQ(back, c) << to_yaml(c);
}

TEST(ConfigRoundTrip, ToYamlWritesEveryKeyIncludingDefaults) {
  RunConfig c;
  c.stages.resize(1);
  std::string text = to_yaml(c);
  for (const char* key : {"output_dir:", "sliding_windows:", "precision:", "next_k_weights: []",
                          "min_lr_ratio:", "sampled_by:", "ks: [1, 5, 10, 20]", "backend:"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing from\n" << text;
  }
  EXPECT_EQ(parse_config(text, "resolved.yaml", {}), c);
}

TEST(ConfigFile, LoadConfigNamesTheFileInMessages) {
  std::filesystem::path file = std::filesystem::temp_directory_path() / "recforge_config_test.yaml";
  {
    std::ofstream out(file);
    out << "stages:\n  - train: {lr: -1}\n";
  }
  try {
    load_config(file, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() + ":2: stages[0].train.lr: expected a value > 0, got -1");
  }
  std::filesystem::remove(file);
  EXPECT_THROW(load_config(file, {}), Error);
}

TEST(ShippedConfigs, EveryFileInConfigsLoads) {
  int loaded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(RECFORGE_CONFIGS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path(), {}));
    ++loaded;
  }
  EXPECT_GE(loaded, 3);
}

}  // namespace
}  // namespace recforge
