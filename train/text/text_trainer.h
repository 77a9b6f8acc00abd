// The training loop of a pretrained language model (model.pretrained) on text prompts: the
// stages (sft, dpo) of a configuration in order, all training one set of LoRA adapters on a
// frozen base (fp32 or bf16 storage), each stage starting from the previous one's best adapters.
//   data     prompts.train's slice (and its few-shot draw), rendered (text_examples.h) and packed
//            into micro-batches once (text_batches.h); each epoch shuffles their order
//   steps    grad_accum micro-batches, AdamW over the adapters, the learning-rate schedule,
//            global-norm clipping; DPO's reference log-probabilities come from the adapters as the
//            stage starts, over the same micro-batches, before its first step
//   eval     prompts.valid every eval.every_steps steps (0: each epoch) on eval.metric (auc,
//            accuracy, hr@1), the best adapters kept, early stopping after eval.patience
//   end      the best adapters on prompts.test: final_metrics-<stage>.json; adapter-<stage>/ in
//            PEFT's layout
// A stage's init: auto or previous continues from the previous stage's best adapters, scratch from
// fresh ones, and a checkpoint names an earlier stage (its best adapters: SFT once, then DPO and
// S-DPO each from it) or a PEFT adapter directory.
// Run directory: config.resolved.yaml, metrics.jsonl, checkpoints/<stage>-latest/ (adapters,
// AdamW's moments, trainer_state.json: written as a whole or not at all), checkpoints/
// <stage>-best/, adapter-<stage>/, final_metrics-<stage>.json. A stop request (SIGINT, SIGTERM)
// saves the latest checkpoint after the current step; --resume continues from it, with the same
// micro-batch order and dropout seeds. One process (data parallelism is not wired for text runs).
#pragma once

#include <memory>
#include <string>

#include "model/llama/model.h"
#include "model/text/tokenizer.h"
#include "train/config/config.h"
#include "train/trainer.h"

namespace recforge {

TrainStatus train_text(const RunConfig& config, const TrainerOptions& options);

// model.pretrained: a path, or a known model name (smollm2-135m-instruct) looked up in
// $RECFORGE_MODEL_DIR or ~/.cache/recforge/models, where tools/fetch-model.sh puts it.
std::string resolve_pretrained(const std::string& name);

// A pretrained model (resolve_pretrained's names) for scoring, its base frozen in `precision`,
// with the PEFT adapters of `adapter` when it is not empty.
struct TextModel {
  LlamaConfig config;
  Tokenizer tokenizer;
  std::unique_ptr<LlamaModel<float>> model;
};
TextModel load_text_model(const std::string& name, const std::string& adapter, Device device,
                          Precision precision, int max_tokens);

}  // namespace recforge
