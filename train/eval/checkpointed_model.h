// A trained model as the eval and recommend commands see it: a checkpoint directory's parameters
// in a Decoder, with what the trainer recorded beside them (dataset path, max_len, whether the
// model predicts causally or through a MASK token).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "train/data/dataset.h"

namespace recforge {

struct CheckpointedModel {
  std::filesystem::path checkpoint;
  nlohmann::json trainer_state;
  std::unique_ptr<Decoder<float>> model;
  std::filesystem::path data_path;
  bool masked = false;          // masked-behavior inference (MBP-only models)
  std::vector<int32_t> prompt;  // tokens before the history (a fine-tuned task's token)
  // The original id of each of the model's items (the checkpoint's items.tsv); empty for a
  // checkpoint that did not record them.
  std::vector<std::string> item_ids;

  int32_t num_items() const;
};

// The model's item of each of `data`'s items [data.num_items()], matched by original id through
// the checkpoint's own vocabulary, so a dataset prepared again (its ids in another order) or a
// part of the catalogue still means the same items. Throws naming both items files when the
// dataset has an item the model never saw. A checkpoint without ids matches by position when the
// counts agree.
std::vector<int32_t> model_items_of(const CheckpointedModel& model, const Dataset& data);
// The same for the vocabularies themselves (`model_ids` of the model, the dataset's names);
// `model_source` and `data_source` name them in errors.
std::vector<int32_t> match_item_ids(std::span<const std::string> model_ids,
                                    std::span<const std::string> data_ids,
                                    const std::string& model_source,
                                    const std::string& data_source);

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
