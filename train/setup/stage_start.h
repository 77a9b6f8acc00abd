// Where a stage's weights come from, and the dataset they meet.
//
// A stage starts from scratch (fresh weights for the dataset's vocabulary), from the previous
// stage's best checkpoint, or from a checkpoint directory. A checkpoint records the original ids
// of the items it was trained on (items.tsv). When the stage's dataset is not over exactly those
// items (fine-tuning on newer logs), the dataset is rewritten into the run directory with the
// checkpoint's items first, in its order, and the new items after (write_item_aligned_dataset):
// every known item keeps its embedding row, items that vanished keep theirs harmlessly, and the
// new items get new rows at the end of the vocabulary, initialized to the mean of the known item
// rows (or randomly). A LoRA checkpoint is merged into its base weights first.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/config/config.h"
#include "train/data/dataset.h"

namespace recforge {

struct StageStart {
  std::optional<std::filesystem::path> checkpoint;  // none: from scratch
  std::filesystem::path data_path;  // the dataset the stage trains on (aligned when needed)
  ModelConfig model_config;
  std::vector<float> parameters;  // the initial weights, ParameterLayout(model_config) order
  int32_t known_items = 0;        // items [0, known_items) have rows from the checkpoint
  int32_t new_items = 0;          // items [known_items, known_items + new_items) got new rows
};

// `previous_best`: the previous stage's best checkpoint, when there is a previous stage.
// Without `writes_files` (data-parallel ranks but 0) an aligned dataset is read, not written:
// rank 0 resolves first. Before any weight is allocated, the model and the stage's batches must
// fit in `device`'s available memory (model/memory.h); an error names the keys that size them.
StageStart resolve_stage_start(const RunConfig& config, size_t stage_index,
                               const std::optional<std::filesystem::path>& previous_best,
                               Device device, bool writes_files = true);

// The model of a run's configuration for a dataset of `num_items` items.
ModelConfig model_config_for(const RunConfig& config, int32_t num_items);

// The original ids of a dataset's items, in id order.
std::vector<std::string> item_ids_of(const Dataset& data);

}  // namespace recforge
