// What one stage of a run trains, behind one interface, so the trainer (train/trainer.cpp) keeps a
// single loop — micro-batches, gradient accumulation, schedule, AdamW, validation, checkpoints,
// resume — for every objective: pre-training (MBP/NBP), supervised fine-tuning tasks and DPO.
//
// A task owns its training examples (windows, prompts, preference pairs) and knows how many tokens
// each takes; the trainer orders them (a seeded shuffle per epoch) and cuts micro-batches; the
// task runs the forward and backward passes of one optimizer step's micro-batches, and evaluates
// the model on the validation or test part.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/dist/data_parallel.h"

namespace recforge {

using Metrics = std::map<std::string, double>;

// One micro-batch: indices of the task's examples.
using MicroBatch = std::span<const uint32_t>;

struct StepLosses {
  double loss = 0.0;     // the optimized loss of the step
  nlohmann::json parts;  // named parts and statistics, logged beside it (e.g. loss_mbp, rewards/…)
  int64_t tokens = 0;    // tokens processed, forward passes counted
};

class StageTask {
 public:
  virtual ~StageTask() = default;

  virtual size_t num_examples() const = 0;
  virtual int32_t example_tokens(size_t example) const = 0;
  // The most tokens one forward pass of this task packs (sizes the model's activations).
  virtual int max_tokens() const = 0;

  // Runs forward and backward over this process's shard of every micro-batch of one optimizer
  // step; gradients accumulate in the model (zeroed by the caller before). Every micro-batch
  // takes its passes even when the shard is empty, and the very last backward is told it is the
  // step's last (Decoder::backward), so the model starts the gradient reduction there. The losses
  // returned are this shard's share of the step's (they add up across the ranks).
  virtual StepLosses forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                                      int64_t step, const DataShard& shard) = 0;

  // Called once before the first training step of the stage (and again after a resume).
  virtual void prepare(Decoder<float>&) {}

  // Validation (selection) or test metrics, by name ("ndcg@10", "auc", "rmse", ...).
  virtual Metrics evaluate(Decoder<float>& model, Split which) = 0;
  // Everything the stage reports at its best checkpoint, test metrics included.
  virtual nlohmann::json final_report(Decoder<float>& model) = 0;

  // Recorded in checkpoints so eval/recommend read the model as it was trained:
  // {"inference": "causal" | "masked", "prompt": [tokens before the history]}.
  virtual nlohmann::json inference_state() const = 0;
};

// The task of config.stages[stage_index] (its objective.type) over `data`.
std::unique_ptr<StageTask> make_stage_task(const RunConfig& config, size_t stage_index,
                                           const Context& ctx, const Dataset& data,
                                           const LeaveOneOutSplit& split,
                                           const Distributed& distributed);

}  // namespace recforge
