#include "train/eval/checkpointed_model.h"

#include <fstream>
#include <optional>

#include "kernels/check.h"
#include "model/checkpoint.h"
#include "model/peft.h"

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
  result.data_path = result.trainer_state.value("data_path", std::string());
  result.prompt = result.trainer_state.value("prompt", std::vector<int32_t>{});
  result.masked = result.trainer_state.value("inference", std::string("causal")) == "masked";
  return result;
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
