// What one stage of a run trains, behind one interface, so the trainer (train/trainer.cpp) keeps a
// single loop — micro-batches, gradient accumulation, schedule, AdamW, validation, checkpoints,
// resume — for every objective: pre-training (MBP/NBP), supervised fine-tuning tasks and DPO.
//
// A task owns its training examples (windows, prompts, preference pairs) and knows how many tokens
// each takes; the trainer orders them (a seeded shuffle per epoch) and cuts micro-batches; the
// task turns the micro-batches of one optimizer step into a loss with the gradients accumulated
// in the model, and evaluates the model on the validation or test part.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "train/dist/communicator.h"
#include "train/data/split.h"

namespace recforge {

using Metrics = std::map<std::string, double>;

// The part of every micro-batch this process trains in data-parallel training: a contiguous
// block of its examples (rank r of W takes [n·r/W, n·(r+1)/W)). Losses are normalised by the
// counts of the whole micro-batches, so the ranks' gradients add up to the one-process gradient.
struct DataShard {
  int rank = 0;
  int world_size = 1;

  size_t begin(size_t n) const { return n * rank / world_size; }
  std::span<const uint32_t> of(std::span<const uint32_t> micro) const {
    const size_t first = begin(micro.size()), last = micro.size() * (rank + 1) / world_size;
    return micro.subspan(first, last - first);
  }
};

struct StepLosses {
  double loss = 0.0;     // the optimized loss of the step
  nlohmann::json parts;  // named parts and statistics, logged beside it (e.g. loss_mbp, rewards/…)
  int64_t tokens = 0;    // tokens processed, forward passes counted
};

// This process's place in data-parallel training: its shard of the data, the collectives, and
// whether it writes files into the run directory (rank 0 only).
struct Distributed {
  DataShard shard;
  Communicator* comm = nullptr;  // null: one process

  bool writes_files() const { return shard.rank == 0; }
  bool parallel() const { return shard.world_size > 1; }
  // values become their sum over the ranks (host memory).
  void sum(std::vector<double>& values) const {
    if (parallel()) comm->all_reduce_sum_host(values.data(), values.size());
  }
};

class StageTask {
 public:
  virtual ~StageTask() = default;

  virtual size_t num_examples() const = 0;
  virtual int32_t example_tokens(size_t example) const = 0;
  // The most tokens one forward pass of this task packs (sizes the model's activations).
  virtual int max_tokens() const = 0;

  // Runs forward and backward over this process's shard of every micro-batch of one optimizer
  // step (each a list of example indices); gradients accumulate in the model (zeroed by the
  // trainer before). The losses returned are this shard's share of the step's (they add up
  // across the ranks).
  virtual StepLosses train_step(Decoder<float>& model,
                                const std::vector<std::span<const uint32_t>>& micro_batches,
                                int64_t step, const DataShard& shard) = 0;

  // How many backward passes train_step runs at most for this shard (one per non-empty slice of
  // a micro-batch and objective): the last of them may start reducing gradients as they finish.
  virtual int backward_passes(const std::vector<std::span<const uint32_t>>& micro_batches,
                              const DataShard& shard) const {
    int passes = 0;
    for (const auto& micro : micro_batches) passes += shard.of(micro).empty() ? 0 : 1;
    return passes;
  }

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

// Whether a larger value of the metric is better (rmse and mae are errors).
inline bool higher_is_better(const std::string& metric) {
  return metric != "rmse" && metric != "mae";
}

}  // namespace recforge
