#include "train/checkpointing.h"

#include <fstream>

#include "kernels/check.h"
#include "kernels/nvtx.h"
#include "model/checkpoint.h"
#include "model/peft.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json to_json(const LoopState& s) {
  return {{"epoch", s.epoch},
          {"cursor", s.cursor},
          {"step", s.step},
          {"best_metric", s.best_metric},
          {"best_step", s.best_step},
          {"best_checkpoint", s.best_checkpoint},
          {"evals_without_improvement", s.evals_without_improvement},
          {"train_seconds", s.train_seconds}};
}

LoopState loop_state_from(const json& j) {
  LoopState s;
  s.epoch = j.at("epoch").get<int>();
  s.cursor = j.at("cursor").get<size_t>();
  s.step = j.at("step").get<int64_t>();
  s.best_metric = j.at("best_metric").get<double>();
  s.best_step = j.at("best_step").get<int64_t>();
  s.best_checkpoint = j.at("best_checkpoint").get<std::string>();
  s.evals_without_improvement = j.at("evals_without_improvement").get<int>();
  s.train_seconds = j.at("train_seconds").get<double>();
  return s;
}

// The adapters saved in a checkpoint directory (PEFT layout) into a decoder that already has
// adapters of the same configuration, keeping its buffers (the optimizer points into them).
void load_adapter_values(const fs::path& dir, Decoder<float>& model) {
  Decoder<float> probe(Context::cpu(), model.config(), 1);
  load_peft_adapter(dir, probe);
  const LoraConfig& saved = probe.lora_layout().config();
  const LoraConfig& wanted = model.lora_layout().config();
  const bool same = saved.rank == wanted.rank && saved.alpha == wanted.alpha &&
                    saved.rslora == wanted.rslora &&
                    saved.resolved_targets() == wanted.resolved_targets();
  RECFORGE_CHECK(same, dir.string(),
                 ": the adapter's configuration differs from the stage's finetune.lora");
  model.load_adapter_parameters(probe.adapter_parameters().download());
}

void load_weights(const fs::path& dir, const CheckpointData& data, Decoder<float>& model) {
  RECFORGE_CHECK(data.parameters.size() == static_cast<size_t>(model.layout().total_size()),
                 "checkpoint ", dir.string(), " does not match the configured model");
  model.load_parameters(data.parameters);
  if (model.has_lora()) load_adapter_values(dir, model);
}

}  // namespace

StageCheckpoints::StageCheckpoints(const fs::path& run_dir, std::string stage, Distributed dist,
                                   json recorded, std::vector<std::string> item_ids)
    : dir_(run_dir / "checkpoints"),
      stage_(std::move(stage)),
      dist_(dist),
      recorded_(std::move(recorded)),
      item_ids_(std::move(item_ids)) {}

fs::path StageCheckpoints::at_step(int64_t step) const {
  return dir_ / (stage_ + "-step" + std::to_string(step));
}

std::optional<fs::path> StageCheckpoints::latest() const { return latest_checkpoint(dir_, stage_); }

void StageCheckpoints::save(const fs::path& dir, Decoder<float>& model, AdamW& optimizer,
                            const LoopState& state) const {
  NvtxRange range("checkpoint");
  auto [adam_m, adam_v] = optimizer.full_moments();  // a collective with ZeRO-1
  if (!dist_.writes_files()) {
    if (dist_.parallel()) dist_.comm->barrier();
    return;
  }
  CheckpointData data;
  data.model_config = model.config();
  data.parameters = model.parameters().download();
  data.adam_m = std::move(adam_m);
  data.adam_v = std::move(adam_v);
  data.item_ids = item_ids_;
  if (model.has_lora()) {
    data.write_extra_files = [&model](const fs::path& tmp) { save_peft_adapter(tmp, model); };
  }
  data.trainer_state = recorded_;
  data.trainer_state.update(
      {{"stage", stage_}, {"loop", to_json(state)}, {"adam_steps", optimizer.steps_taken()}});
  save_checkpoint(dir, data);
  if (dist_.parallel()) dist_.comm->barrier();
}

void StageCheckpoints::prune(const LoopState& state, const fs::path& newest) const {
  if (!dist_.writes_files()) return;
  const std::string prefix = stage_ + "-step";
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || entry.path() == newest) continue;
    if (name == state.best_checkpoint) continue;
    fs::remove_all(entry.path());
  }
}

LoopState StageCheckpoints::restore(const fs::path& dir, Decoder<float>& model,
                                    AdamW& optimizer) const {
  CheckpointData data = load_checkpoint(dir);
  load_weights(dir, data, model);
  optimizer.restore(data.adam_m, data.adam_v, data.trainer_state.at("adam_steps").get<int>());
  return loop_state_from(data.trainer_state.at("loop"));
}

void load_checkpoint_weights(const fs::path& dir, Decoder<float>& model) {
  load_weights(dir, load_checkpoint(dir), model);
}

std::optional<fs::path> finished_stage_checkpoint(const fs::path& run_dir,
                                                  const std::string& stage) {
  const fs::path file = run_dir / ("final_metrics-" + stage + ".json");
  if (!fs::exists(file)) return std::nullopt;
  std::ifstream in(file);
  const json result = json::parse(in, nullptr, false);
  RECFORGE_CHECK(!result.is_discarded() && result.contains("best_checkpoint"), file.string(),
                 ": not a final metrics file (delete it to train the stage again)");
  return run_dir / "checkpoints" / result["best_checkpoint"].get<std::string>();
}

}  // namespace recforge
