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
  bool masked = false;  // masked-behavior inference (MBP-only models)
};

// Loads `checkpoint` (a checkpoints/<stage>-step<N> directory) onto ctx's device, with room for
// batches of `max_sequences` full-length sequences.
CheckpointedModel open_checkpointed_model(const Context& ctx,
                                          const std::filesystem::path& checkpoint,
                                          int max_sequences);

// The best validation checkpoint of a run directory (as recorded by its latest checkpoint).
std::filesystem::path best_checkpoint_of_run(const std::filesystem::path& run_dir);

}  // namespace recforge
