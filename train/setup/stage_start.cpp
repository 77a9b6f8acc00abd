#include "train/setup/stage_start.h"

#include <cstdio>

#include "kernels/check.h"
#include "model/checkpoint.h"
#include "model/memory.h"
#include "model/parameters.h"
#include "model/vocabulary.h"
#include "train/eval/checkpointed_model.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

std::optional<fs::path> checkpoint_of(const StageSection& stage, size_t index,
                                      const std::optional<fs::path>& previous_best) {
  const StageInit& init = stage.init;
  if (init.from == InitFrom::kScratch || (init.from == InitFrom::kAuto && index == 0)) {
    return std::nullopt;
  }
  if (init.from != InitFrom::kCheckpoint) {
    RECFORGE_CHECK(previous_best.has_value(), "stage ", stage.name,
                   " starts from the previous stage, which left no checkpoint");
    return previous_best;
  }
  RECFORGE_CHECK(fs::is_directory(init.checkpoint), "stage ", stage.name, ": init ",
                 init.checkpoint, " is neither auto, scratch, previous nor a checkpoint directory");
  return fs::path(init.checkpoint);
}

// The checkpoint's weights carried into a model of `config`: every tensor copied, except that
// the token embedding gains rows for the new items (the vocabulary only grows at its end).
std::vector<float> grown_parameters(const CheckpointData& from, const ModelConfig& config,
                                    const FinetuneSection& finetune, const RunConfig& run,
                                    int32_t known_items) {
  const ParameterLayout old_layout(from.model_config), layout(config);
  std::vector<float> values = initial_parameters(config, layout, run.run.seed, run.model.init_std,
                                                 run.model.embedding_init_std);
  for (const ParameterInfo& info : old_layout.tensors()) {
    const ParameterInfo& target = layout.at(info.name);
    std::copy_n(from.parameters.begin() + info.offset, info.size, values.begin() + target.offset);
  }
  const int C = config.d_model;
  const int64_t wte = layout.offset("wte");
  const int64_t first_new = kFirstItemToken + known_items;
  if (finetune.new_items_init == NewItemsInit::kMean && known_items > 0) {
    std::vector<double> mean(C, 0.0);
    for (int64_t row = kFirstItemToken; row < first_new; ++row) {
      for (int c = 0; c < C; ++c) mean[c] += values[wte + row * C + c];
    }
    for (int64_t row = first_new; row < config.vocab_size; ++row) {
      for (int c = 0; c < C; ++c)
        values[wte + row * C + c] = static_cast<float>(mean[c] / known_items);
    }
  }
  return values;
}

// The most tokens one forward of the stage packs, training micro-batch or evaluation batch, over
// every task (the activations a decoder allocates).
int64_t planned_tokens(const RunConfig& config, const StageSection& stage) {
  const int64_t len = config.data.max_len + 1;
  const int64_t train = stage.train.token_budget > 0
                            ? std::max<int64_t>(stage.train.token_budget, len)
                            : int64_t{stage.train.batch_size} * len;
  return std::max(train, int64_t{stage.eval.batch_size} * len);
}

void require_memory(const RunConfig& config, const StageSection& stage, const ModelConfig& model,
                    Device device) {
  const int64_t tokens = planned_tokens(config, stage);
  const MemoryEstimate need = training_memory(model, tokens, device);
  const double available = static_cast<double>(available_memory_bytes(device));
  RECFORGE_CHECK(need.total() <= available, "stage ", stage.name, " needs about ",
                 format_bytes(need.total()), " (", need.parameters,
                 " parameters: ", format_bytes(need.weights),
                 " for them, their gradients and AdamW's moments; ", format_bytes(need.activations),
                 " for the activations of ", tokens, " tokens) ", "but the ", device_name(device),
                 " has ", format_bytes(available), " available: reduce model.n_layer (",
                 model.n_layer, "), model.d_model (", model.d_model, "), model.mlp_ratio (",
                 model.mlp_ratio, "), data.max_len (", config.data.max_len, "), train.batch_size (",
                 stage.train.batch_size, ") or eval.batch_size (", stage.eval.batch_size, ")");
}

}  // namespace

ModelConfig model_config_for(const RunConfig& config, int32_t num_items) {
  ModelConfig model;
  model.vocab_size = vocabulary_size(num_items);
  model.max_len = config.data.max_len;
  model.d_model = config.model.d_model;
  model.n_layer = config.model.n_layer;
  model.n_head = config.model.n_head;
  model.mlp_ratio = config.model.mlp_ratio;
  model.dropout = config.model.dropout;
  model.precision = config.model.precision;
  return model;
}

std::vector<std::string> item_ids_of(const Dataset& data) {
  std::vector<std::string> ids;
  ids.reserve(data.num_items());
  for (int32_t i = 0; i < data.num_items(); ++i) ids.push_back(data.item_name(i));
  return ids;
}

StageStart resolve_stage_start(const RunConfig& config, size_t stage_index,
                               const std::optional<fs::path>& previous_best, Device device,
                               bool writes_files) {
  const StageSection& stage = config.stages[stage_index];
  StageStart start;
  start.data_path = stage.data.empty() ? fs::path(config.data.path) : fs::path(stage.data);
  start.checkpoint = checkpoint_of(stage, stage_index, previous_best);
  if (!start.checkpoint) {
    const Dataset data = Dataset::open(start.data_path);
    start.model_config = model_config_for(config, data.num_items());
    require_memory(config, stage, start.model_config, device);
    start.parameters =
        initial_parameters(start.model_config, ParameterLayout(start.model_config), config.run.seed,
                           config.model.init_std, config.model.embedding_init_std);
    start.new_items = data.num_items();
    return start;
  }
  CheckpointData from = load_checkpoint(*start.checkpoint);
  from.parameters = merged_parameters(*start.checkpoint, from);
  const int32_t checkpoint_items = from.model_config.vocab_size - kFirstItemToken;
  const Dataset data = Dataset::open(start.data_path);
  std::vector<std::string> vocabulary = from.item_ids;
  if (vocabulary.empty()) {
    RECFORGE_CHECK(data.num_items() == checkpoint_items, "checkpoint ", start.checkpoint->string(),
                   " records no item ids and has ", checkpoint_items, " items; the dataset ",
                   start.data_path.string(), " has ", data.num_items(),
                   ": they can only be matched by position when the counts agree");
    vocabulary = item_ids_of(data);
  }
  RECFORGE_CHECK(static_cast<int32_t>(vocabulary.size()) == checkpoint_items, "checkpoint ",
                 start.checkpoint->string(), " lists ", vocabulary.size(), " item ids for ",
                 checkpoint_items, " item rows");
  start.known_items = checkpoint_items;
  if (vocabulary != item_ids_of(data)) {
    const fs::path aligned = fs::path(config.run.output_dir) / ("data-" + stage.name);
    if (!writes_files) {  // rank 0 wrote it
      start.data_path = aligned;
      start.new_items = Dataset::open(aligned).num_items() - checkpoint_items;
    } else {
      const ItemAlignment alignment = write_item_aligned_dataset(data, vocabulary, aligned);
      std::printf(
          "stage %s: %d of the dataset's %d items are known to the checkpoint, %d are new (rows "
          "initialized by %s); %d known items do not occur; aligned dataset in %s\n",
          stage.name.c_str(), alignment.matched, data.num_items(), alignment.added,
          name_of(stage.finetune.new_items_init).c_str(), alignment.known - alignment.matched,
          aligned.c_str());
      start.data_path = aligned;
      start.new_items = alignment.added;
    }
  }
  start.model_config = from.model_config;
  start.model_config.vocab_size = vocabulary_size(start.known_items + start.new_items);
  start.model_config.dropout = config.model.dropout;
  start.model_config.precision = config.model.precision;
  RECFORGE_CHECK(start.model_config.max_len >= config.data.max_len, "stage ", stage.name,
                 ": data.max_len ", config.data.max_len, " exceeds the checkpoint's max_len ",
                 start.model_config.max_len);
  require_memory(config, stage, start.model_config, device);
  start.parameters =
      grown_parameters(from, start.model_config, stage.finetune, config, start.known_items);
  return start;
}

}  // namespace recforge
