#include "train/checkpointing.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "kernels/check.h"
#include "kernels/nvtx.h"
#include "model/checkpoint.h"
#include "model/peft.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string join(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

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

// The fields of a trainer_state.json, each checked for its type and range.
class StateFields {
 public:
  StateFields(const json& root, const fs::path& file) : root_(root), file_(file) {}

  int64_t integer(const std::string& path, int64_t low, int64_t high) const {
    const json& value = at(path);
    if (!value.is_number_integer()) fail(path, "expected an integer, got ", value.dump());
    const bool is_unsigned = value.is_number_unsigned();
    const int64_t v =
        is_unsigned && value.get<uint64_t>() > INT64_MAX ? INT64_MAX : value.get<int64_t>();
    if (v < low || v > high) fail(path, "expected an integer in [", low, ", ", high, "], got ", v);
    return v;
  }
  double number(const std::string& path, double low) const {
    const json& value = at(path);
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < low) {
      fail(path, "expected a finite number >= ", low, ", got ", value.dump());
    }
    return value.get<double>();
  }
  std::string text(const std::string& path) const {
    const json& value = at(path);
    if (!value.is_string()) fail(path, "expected a string, got ", value.dump());
    return value.get<std::string>();
  }

  template <typename... Args>
  [[noreturn]] void fail(const std::string& path, const Args&... args) const {
    throw Error(concat(file_.string(), ": ", path, ": ", args...));
  }

 private:
  // The value at "a.b" (the file is refused when it is missing).
  const json& at(const std::string& path) const {
    const json* node = &root_;
    size_t begin = 0;
    while (begin <= path.size()) {
      const size_t end = std::min(path.find('.', begin), path.size());
      const std::string key = path.substr(begin, end - begin);
      if (!node->is_object() || !node->contains(key)) fail(path, "missing");
      node = &(*node)[key];
      begin = end + 1;
    }
    return *node;
  }

  const json& root_;
  fs::path file_;
};

constexpr int64_t kMaxCount = int64_t{1} << 40;

// Every setting whose change would make a resumed run see other batches than the interrupted one,
// the first that differs from the checkpoint's (empty when none does).
std::string changed_data_order(const json& saved, const json& now) {
  if (!saved.is_object()) return "";  // a checkpoint from before data_order was recorded
  for (const auto& [key, value] : now.items()) {
    if (saved.contains(key) && saved[key] != value) {
      return concat(key, " is ", value.dump(), " in the config but was ", saved[key].dump());
    }
  }
  return "";
}

// The first field in which the checkpoint's model differs from the configured one.
std::string changed_model(const ModelConfig& saved, const ModelConfig& now) {
  const std::pair<const char*, std::pair<int, int>> fields[] = {
      {"model.d_model", {saved.d_model, now.d_model}},
      {"model.n_layer", {saved.n_layer, now.n_layer}},
      {"model.n_head", {saved.n_head, now.n_head}},
      {"model.mlp_ratio", {saved.mlp_ratio, now.mlp_ratio}},
      {"the item vocabulary (dataset)", {saved.vocab_size, now.vocab_size}},
      {"the position table (data.max_len)", {saved.max_len, now.max_len}}};
  for (const auto& [name, values] : fields) {
    if (values.first != values.second) {
      return concat(name, " is ", values.second, " in the config but ", values.first,
                    " in the checkpoint");
    }
  }
  return "";
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
  const std::string changed = changed_model(data.model_config, model.config());
  RECFORGE_CHECK(changed.empty(), "checkpoint ", dir.string(),
                 " does not match the configured model: ", changed);
  model.load_parameters(data.parameters);
  if (model.has_lora()) load_adapter_values(dir, model);
}

}  // namespace

LoopState read_loop_state(const json& state, const fs::path& file) {
  const StateFields fields(state, file);
  LoopState s;
  s.epoch = static_cast<int>(fields.integer("loop.epoch", 0, INT32_MAX));
  s.cursor = static_cast<size_t>(fields.integer("loop.cursor", 0, kMaxCount));
  s.step = fields.integer("loop.step", 0, kMaxCount);
  s.best_metric = fields.number("loop.best_metric", -INFINITY);
  s.best_step = fields.integer("loop.best_step", -1, s.step);
  s.best_checkpoint = fields.text("loop.best_checkpoint");
  if (s.best_checkpoint.find('/') != std::string::npos || s.best_checkpoint == "..") {
    fields.fail("loop.best_checkpoint", "expected a checkpoint directory name, got \"",
                s.best_checkpoint, "\"");
  }
  s.evals_without_improvement =
      static_cast<int>(fields.integer("loop.evals_without_improvement", 0, INT32_MAX));
  s.train_seconds = fields.number("loop.train_seconds", 0.0);
  fields.integer("adam_steps", 0, INT32_MAX);
  return s;
}

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

std::optional<fs::path> StageCheckpoints::resume_point() const {
  const std::vector<CheckpointEntry> entries = list_checkpoints(dir_, stage_);
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->missing.empty()) return it->path;
    if (dist_.writes_files()) {
      std::printf("checkpoint %s lacks %s: not resumed from, kept as it is\n", it->path.c_str(),
                  join(it->missing).c_str());
    }
  }
  if (entries.empty()) return std::nullopt;
  throw Error(concat("cannot resume stage ", stage_, ": every checkpoint in ", dir_.string(),
                     " lacks files (", entries.back().path.filename().string(), " lacks ",
                     join(entries.back().missing), "); restore them, or move the directories ",
                     "away to train the stage again"));
}

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
  for (const CheckpointEntry& entry : list_checkpoints(dir_, stage_)) {
    if (!entry.missing.empty() || entry.path == newest) continue;
    if (entry.path.filename() == state.best_checkpoint) continue;
    fs::remove_all(entry.path);
  }
}

LoopState StageCheckpoints::restore(const fs::path& dir, Decoder<float>& model, AdamW& optimizer,
                                    bool allow_config_change) const {
  CheckpointData data = load_checkpoint(dir);
  const fs::path state_file = dir / "trainer_state.json";
  const LoopState state = read_loop_state(data.trainer_state, state_file);
  const std::string changed =
      changed_data_order(data.trainer_state.value("data_order", json()), recorded_["data_order"]);
  RECFORGE_CHECK(changed.empty() || allow_config_change, "cannot resume from ", dir.string(), ": ",
                 changed, "; the resumed run would see other batches than the interrupted ",
                 "one. Resume with the same setting, or pass --allow-config-change");
  load_weights(dir, data, model);
  RECFORGE_CHECK(data.adam_m.size() == static_cast<size_t>(optimizer.num_trainable()), dir.string(),
                 "/optimizer.safetensors holds moments of ", data.adam_m.size(),
                 " parameters, the stage trains ", optimizer.num_trainable(),
                 " (did finetune change?)");
  optimizer.restore(data.adam_m, data.adam_v, data.trainer_state["adam_steps"].get<int>());
  return state;
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
