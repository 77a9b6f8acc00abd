// A stage's checkpoints in the run directory: checkpoints/<stage>-step<N>/ holding the model (with
// the adapter in PEFT layout for a LoRA stage), AdamW's moments, the items' original ids and
// trainer_state.json (the loop's state, beside what eval and recommend read back: the inference
// mode, the task prompt, the dataset path, max_len, the seed). Rank 0 writes each checkpoint
// atomically (model/checkpoint.h); every rank returns once it is complete. Per stage the best and
// the newest are kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "train/dist/data_parallel.h"
#include "train/optim/optimizer.h"

namespace recforge {

// Where the training loop stands; saved in trainer_state.json under "loop".
struct LoopState {
  int epoch = 0;      // current epoch, from 0
  size_t cursor = 0;  // next micro-batch of the epoch
  int64_t step = 0;   // optimizer steps done
  double best_metric = -1.0;
  int64_t best_step = -1;
  std::string best_checkpoint;  // directory name under checkpoints/
  int evals_without_improvement = 0;
  double train_seconds = 0.0;  // time spent in training steps (evaluation excluded)
};

class StageCheckpoints {
 public:
  // `recorded`: the stage's entries of every trainer_state.json (inference, prompt, data_path,
  // max_len, seed, ...); `item_ids`: the original ids of the dataset's items, in id order.
  StageCheckpoints(const std::filesystem::path& run_dir, std::string stage, Distributed dist,
                   nlohmann::json recorded, std::vector<std::string> item_ids);

  const std::filesystem::path& directory() const { return dir_; }
  // checkpoints/<stage>-step<step>.
  std::filesystem::path at_step(int64_t step) const;
  // The newest complete checkpoint of the stage, if any.
  std::optional<std::filesystem::path> latest() const;

  // Writes the model, the optimizer's moments (gathered: a collective with ZeRO-1, so every rank
  // calls it) and the loop state into `dir`.
  void save(const std::filesystem::path& dir, Decoder<float>& model, AdamW& optimizer,
            const LoopState& state) const;
  // Deletes the stage's checkpoints but the best and `newest` (rank 0).
  void prune(const LoopState& state, const std::filesystem::path& newest) const;
  // Loads `dir` into the model and the optimizer and returns the loop state it holds.
  LoopState restore(const std::filesystem::path& dir, Decoder<float>& model,
                    AdamW& optimizer) const;

 private:
  std::filesystem::path dir_;
  std::string stage_;
  Distributed dist_;
  nlohmann::json recorded_;
  std::vector<std::string> item_ids_;
};

// Loads the weights of checkpoint `dir` into `model`, its adapter too when the model has one (of
// the same configuration).
void load_checkpoint_weights(const std::filesystem::path& dir, Decoder<float>& model);

// The best checkpoint of a stage that already finished (its final_metrics-<stage>.json written).
std::optional<std::filesystem::path> finished_stage_checkpoint(const std::filesystem::path& run_dir,
                                                               const std::string& stage);

}  // namespace recforge
