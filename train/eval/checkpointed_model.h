// A trained model as the eval and recommend commands see it: a checkpoint directory's parameters
// in a Decoder, with what the trainer recorded beside them (dataset path, max_len, whether the
// model predicts causally or through a MASK token).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "model/decoder.h"

namespace recforge {

struct CheckpointedModel {
  std::filesystem::path checkpoint;
  nlohmann::json trainer_state;
  std::unique_ptr<Decoder<float>> model;
  std::filesystem::path data_path;
  bool masked = false;          // masked-behavior inference (MBP-only models)
  std::vector<int32_t> prompt;  // tokens before the history (a fine-tuned task's token)
};

struct CheckpointData;
// A checkpoint's parameters with its LoRA adapter (PEFT files in the directory) merged in, or as
// they are when it has none.
std::vector<float> merged_parameters(const std::filesystem::path& checkpoint,
                                     const CheckpointData& data);

// Loads `checkpoint` (a checkpoints/<stage>-step<N> directory) onto ctx's device, with room for
// batches of `max_sequences` full-length sequences.
CheckpointedModel open_checkpointed_model(const Context& ctx,
                                          const std::filesystem::path& checkpoint,
                                          int max_sequences);

// The best validation checkpoint of a run directory: its last finished stage's
// (final_metrics.json), else as recorded by its latest checkpoint.
std::filesystem::path best_checkpoint_of_run(const std::filesystem::path& run_dir);

}  // namespace recforge
