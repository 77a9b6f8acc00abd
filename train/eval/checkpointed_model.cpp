#include "train/eval/checkpointed_model.h"

#include <fstream>
#include <numeric>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "kernels/check.h"
#include "model/checkpoint.h"
#include "model/peft.h"
#include "model/vocabulary.h"

namespace recforge {

std::vector<float> merged_parameters(const std::filesystem::path& checkpoint,
                                     const CheckpointData& data) {
  if (!std::filesystem::exists(checkpoint / kPeftConfigFile)) return data.parameters;
  Decoder<float> model(Context::cpu(), data.model_config, 1);
  model.load_parameters(data.parameters);
  load_peft_adapter(checkpoint, model);
  model.merge_lora();
  return model.parameters().download();
}

CheckpointedModel open_checkpointed_model(const Context& ctx,
                                          const std::filesystem::path& checkpoint,
                                          int max_sequences) {
  CheckpointData data = load_checkpoint(checkpoint);
  CheckpointedModel result;
  result.checkpoint = checkpoint;
  result.trainer_state = std::move(data.trainer_state);
  result.model = std::make_unique<Decoder<float>>(ctx, data.model_config,
                                                  max_sequences * data.model_config.max_len);
  result.model->load_parameters(merged_parameters(checkpoint, data));
  result.item_ids = std::move(data.item_ids);
  result.data_path = result.trainer_state.value("data_path", std::string());
  result.prompt = result.trainer_state.value("prompt", std::vector<int32_t>{});
  result.masked = result.trainer_state.value("inference", std::string("causal")) == "masked";
  return result;
}

int32_t CheckpointedModel::num_items() const {
  return model->config().vocab_size - kFirstItemToken;
}

std::vector<int32_t> match_item_ids(std::span<const std::string> model_ids,
                                    std::span<const std::string> data_ids,
                                    const std::string& model_source,
                                    const std::string& data_source) {
  std::unordered_map<std::string_view, int32_t> model_item;
  for (size_t i = 0; i < model_ids.size(); ++i) {
    model_item.emplace(model_ids[i], static_cast<int32_t>(i));
  }
  std::vector<int32_t> mapped(data_ids.size());
  int64_t unknown = 0;
  const std::string* first_unknown = nullptr;
  for (size_t i = 0; i < data_ids.size(); ++i) {
    auto it = model_item.find(data_ids[i]);
    if (it == model_item.end()) {
      if (unknown++ == 0) first_unknown = &data_ids[i];
      continue;
    }
    mapped[i] = it->second;
  }
  if (unknown > 0) {
    throw Error(concat(data_source, " has ", unknown, " item(s) that ", model_source,
                       " never saw (first: \"", *first_unknown, "\"): the model cannot score ",
                       "them; use the dataset it was trained on, or fine-tune it on this one"));
  }
  return mapped;
}

std::vector<int32_t> model_items_of(const CheckpointedModel& model, const Dataset& data) {
  std::vector<std::string> data_ids;
  data_ids.reserve(data.num_items());
  for (int32_t i = 0; i < data.num_items(); ++i) data_ids.push_back(data.item_name(i));
  const std::string data_source = (data.directory() / "items.tsv").string();
  if (model.item_ids.empty()) {
    RECFORGE_CHECK(data.num_items() == model.num_items(), model.checkpoint.string(),
                   " records no item ids and has ", model.num_items(), " items; ", data_source,
                   " lists ", data.num_items(), ": they can only be matched by position when the ",
                   "counts agree");
    std::vector<int32_t> same(data.num_items());
    std::iota(same.begin(), same.end(), 0);
    return same;
  }
  return match_item_ids(model.item_ids, data_ids, (model.checkpoint / "items.tsv").string(),
                        data_source);
}

std::filesystem::path best_checkpoint_of_run(const std::filesystem::path& run_dir) {
  const std::filesystem::path checkpoints = run_dir / "checkpoints";
  std::ifstream final_metrics(run_dir / "final_metrics.json");
  if (final_metrics) {
    const nlohmann::json result = nlohmann::json::parse(final_metrics, nullptr, false);
    if (!result.is_discarded() && result.contains("best_checkpoint")) {
      return checkpoints / result["best_checkpoint"].get<std::string>();
    }
  }
  std::optional<std::filesystem::path> latest = latest_checkpoint(checkpoints);
  if (!latest) throw Error("run directory " + run_dir.string() + " holds no checkpoint");
  const nlohmann::json state = load_checkpoint(*latest).trainer_state;
  return checkpoints / state.at("loop").at("best_checkpoint").get<std::string>();
}

}  // namespace recforge
