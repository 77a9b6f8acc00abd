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

#include "model/checkpoint.h"
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
  // max_len, seed, and under "data_order" the settings that decide which batches a step sees);
  // `item_ids`: the original ids of the dataset's items, in id order.
  StageCheckpoints(const std::filesystem::path& run_dir, std::string stage, Distributed dist,
                   nlohmann::json recorded, std::vector<std::string> item_ids);

  const std::filesystem::path& directory() const { return dir_; }
  // checkpoints/<stage>-step<step>.
  std::filesystem::path at_step(int64_t step) const;
  // What --resume continues from: the newest complete checkpoint of the stage (model, optimizer
  // and trainer state), if any. A newer directory that lacks files is named on the console and
  // kept; when every checkpoint of the stage lacks files, resuming stops naming what is missing.
  std::optional<std::filesystem::path> resume_point() const;

  // Writes the model, the optimizer's moments (gathered: a collective with ZeRO-1, so every rank
  // calls it) and the loop state into `dir`.
  void save(const std::filesystem::path& dir, Decoder<float>& model, AdamW& optimizer,
            const LoopState& state) const;
  // Deletes the stage's complete checkpoints but the best and `newest` (rank 0); a directory it
  // could not read back is never deleted.
  void prune(const LoopState& state, const std::filesystem::path& newest) const;
  // Loads `dir` into the model and the optimizer and returns the loop state it holds, every field
  // of trainer_state.json checked (an error names the file and the field). The checkpoint's model
  // must be the configured one (an error names the field that differs), and so must the settings
  // that decide the data order, unless `allow_config_change`.
  LoopState restore(const std::filesystem::path& dir, Decoder<float>& model, AdamW& optimizer,
                    bool allow_config_change) const;

 private:
  std::filesystem::path dir_;
  std::string stage_;
  Distributed dist_;
  nlohmann::json recorded_;
  std::vector<std::string> item_ids_;
};

// The loop state of a trainer_state.json document (`file` names it in errors): every field
// present, of its type and in its range. Exposed for the fuzz target.
LoopState read_loop_state(const nlohmann::json& state, const std::filesystem::path& file);

// Loads the weights of checkpoint `dir` into `model`, its adapter too when the model has one (of
// the same configuration).
void load_checkpoint_weights(const std::filesystem::path& dir, Decoder<float>& model);

// The best checkpoint of a stage that already finished (its final_metrics-<stage>.json written).
std::optional<std::filesystem::path> finished_stage_checkpoint(const std::filesystem::path& run_dir,
                                                               const std::string& stage);

}  // namespace recforge
