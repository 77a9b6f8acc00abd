// Checkpoint directories (checkpoints/<stage>-step<N>/):
//
//   model.safetensors      one F32 tensor per model parameter, named and shaped as in
//                          ParameterLayout; metadata "recforge_model_config" holds the
//                          ModelConfig as JSON
//   optimizer.safetensors  AdamW's moments as "m.<name>" and "v.<name>" (absent when none)
//   trainer_state.json     whatever the trainer needs to resume (step, RNG, data cursor, ...)
//
// A save writes everything into "<dir>.tmp", fsyncs it, then swaps it with "<dir>" in one atomic
// rename (renameat2 RENAME_EXCHANGE) and deletes the old copy, so a crash at any moment leaves
// "<dir>" either absent, the old complete checkpoint or the new complete one. Leftover ".tmp"
// directories are ignored by latest_checkpoint and replaced by the next save.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace recforge {

struct CheckpointData {
  ModelConfig model_config;
  std::vector<float> parameters;      // ParameterLayout(model_config) order
  std::vector<float> adam_m, adam_v;  // same layout; both empty when there is no optimizer state
  nlohmann::json trainer_state;
};

void save_checkpoint(const std::filesystem::path& dir, const CheckpointData& data);

// Reads and checks a checkpoint: every tensor of the layout present, F32 and of exactly the
// layout's shape, nothing else. Errors name the file and the tensor.
CheckpointData load_checkpoint(const std::filesystem::path& dir);

// The complete checkpoint "<stage>-step<N>" under `checkpoints_dir` with the highest N (of
// `stage` when given); nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& checkpoints_dir,
                                                       const std::string& stage = "");

}  // namespace recforge
