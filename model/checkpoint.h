// Checkpoint directories (checkpoints/<stage>-step<N>/):
//
//   model.safetensors      one F32 tensor per model parameter, named and shaped as in
//                          ParameterLayout; metadata "recforge_model_config" holds the
//                          ModelConfig as JSON
//   optimizer.safetensors  AdamW's moments as "m.<name>" and "v.<name>" when the optimizer
//                          trains every parameter, else as two flat tensors "m" and "v" over
//                          its parameter groups (absent when there is no optimizer state)
//   items.tsv              the original id of item 0, 1, ... one per line (when known), so a
//                          later fine-tuning on other logs can match items by id
//   trainer_state.json     whatever the trainer needs to resume (step, RNG, data cursor, ...)
//   (other files)          what `write_extra_files` adds, e.g. a LoRA adapter in PEFT layout
//
// A save writes everything into "<dir>.tmp", fsyncs it, then swaps it with "<dir>" in one atomic
// rename (renameat2 RENAME_EXCHANGE) and deletes the old copy, so a crash at any moment leaves
// "<dir>" either absent, the old complete checkpoint or the new complete one. Leftover ".tmp"
// directories are ignored by latest_checkpoint and replaced by the next save.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace recforge {

struct CheckpointData {
  ModelConfig model_config;
  std::vector<float> parameters;  // ParameterLayout(model_config) order
  // AdamW's moments over its parameter groups: the parameters' layout when it trains them all;
  // both empty when there is no optimizer state.
  std::vector<float> adam_m, adam_v;
  std::vector<std::string> item_ids;  // empty: not recorded
  nlohmann::json trainer_state;
  // Called with the directory being written, before it is put in place (save only).
  std::function<void(const std::filesystem::path&)> write_extra_files;
};

void save_checkpoint(const std::filesystem::path& dir, const CheckpointData& data);

// Reads and checks a checkpoint: every tensor of the layout present, F32 and of exactly the
// layout's shape, nothing else. Errors name the file and the tensor.
CheckpointData load_checkpoint(const std::filesystem::path& dir);

// A checkpoint directory "<stage>-step<N>" (or one whose swap was interrupted) and the files it
// lacks among model.safetensors, trainer_state.json and optimizer.safetensors.
struct CheckpointEntry {
  std::filesystem::path path;
  std::string stage;
  uint64_t step = 0;
  std::vector<std::string> missing;

  // Loadable for evaluation: the model and the trainer state are there.
  bool loadable() const;
};

// Every checkpoint directory under `checkpoints_dir` (of `stage` when given), complete or not, by
// step then name; ".tmp" directories are left out.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& checkpoints_dir,
                                              const std::string& stage = "");

// The loadable checkpoint "<stage>-step<N>" under `checkpoints_dir` with the highest N (of
// `stage` when given); nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& checkpoints_dir,
                                                       const std::string& stage = "");

}  // namespace recforge
