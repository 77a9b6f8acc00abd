#include "train/text/text_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>

#include "kernels/check.h"
#include "model/durable_file.h"
#include "model/llama/export.h"
#include "model/llama/load.h"
#include "model/safetensors.h"
#include "train/optim/optimizer.h"
#include "train/optim/schedule.h"
#include "train/run_directory.h"
#include "train/text/text_evaluation.h"
#include "train/text/text_objectives.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int32_t end_of_turn(const Tokenizer& tokenizer) {
  for (const char* token : {"<|im_end|>", "<|eot_id|>"}) {
    if (tokenizer.find(token) >= 0) return tokenizer.find(token);
  }
  return tokenizer.eos();
}

LlamaLoraConfig lora_config(const LoraSection& lora) {
  return {lora.rank, lora.alpha, lora.rslora, lora.dropout, lora.targets};
}

// Where a stage is: what resume needs, saved in trainer_state.json.
struct StageState {
  int epoch = 0;          // the epoch in progress
  int step_in_epoch = 0;  // optimizer steps of it done
  int64_t step = 0;       // optimizer steps of the stage done
  double best = -INFINITY;
  int64_t best_step = -1;
  int evals_without_improvement = 0;
  bool stopped_early = false;
  int64_t last_eval_step = -1;
};

void to_json(json& j, const StageState& s) {
  j = {{"epoch", s.epoch},
       {"step_in_epoch", s.step_in_epoch},
       {"step", s.step},
       {"best", std::isfinite(s.best) ? json(s.best) : json(nullptr)},
       {"best_step", s.best_step},
       {"evals_without_improvement", s.evals_without_improvement},
       {"stopped_early", s.stopped_early},
       {"last_eval_step", s.last_eval_step}};
}

StageState state_from_json(const json& j) {
  StageState s;
  s.epoch = j.at("epoch");
  s.step_in_epoch = j.at("step_in_epoch");
  s.step = j.at("step");
  s.best = j.at("best").is_null() ? -INFINITY : j.at("best").get<double>();
  s.best_step = j.at("best_step");
  s.evals_without_improvement = j.at("evals_without_improvement");
  s.stopped_early = j.at("stopped_early");
  s.last_eval_step = j.at("last_eval_step");
  return s;
}

class TextRun {
 public:
  TextRun(const RunConfig& config, const TrainerOptions& options);
  TrainStatus run();

 private:
  struct StageData {
    std::vector<TextBatch> batches;
    std::vector<std::vector<double>> reference;  // DPO: per batch, per sequence
  };

  fs::path checkpoint(const StageSection& stage, const char* kind) const {
    return dir_ / "checkpoints" / (stage.name + "-" + kind);
  }
  std::vector<TextExample> examples(const std::string& file, int first, int count, int shots,
                                    uint64_t seed, bool capped = false) const;
  void check_groups_fit() const;
  StageData stage_data(const StageSection& stage);
  void start_adapters(size_t index);
  TrainStatus train_stage(size_t index);
  uint64_t dropout_seed(const StageSection& stage, int64_t step, size_t micro) const;
  void warn_if_max_tokens_shrinks_steps(const StageSection& stage, const StageData& data) const;
  double train_step(const StageSection& stage, const StageData& data,
                    std::span<const int> micro_batches, int64_t step, DpoSums& dpo);
  void evaluate_and_keep_best(const StageSection& stage, StageState& state);
  void finish_stage(const StageSection& stage, const StageState& state);
  void save_adapters(const fs::path& dir) const;
  void load_adapters(const fs::path& dir);
  void save_latest(const StageSection& stage, const StageState& state, AdamW& optimizer) const;
  std::optional<StageState> restore_latest(const StageSection& stage, AdamW& optimizer);
  nlohmann::json data_settings(const StageSection& stage) const;

  const RunConfig& config_;
  TrainerOptions options_;
  fs::path dir_;
  Context ctx_;
  PretrainedLlama pretrained_;
  Tokenizer tokenizer_;
  std::unique_ptr<LlamaModel<float>> model_;
  std::vector<TextExample> train_, valid_, test_;
  std::optional<RunLock> lock_;
  std::optional<RunLog> log_;
};

Context make_context(const RunConfig& config) {
  const Device device = resolve_device(config.run.device);
  return device == Device::kCuda ? Context::cuda(0) : Context::cpu(config.run.threads);
}

TextRun::TextRun(const RunConfig& config, const TrainerOptions& options)
    : config_(config),
      options_(options),
      dir_(config.run.output_dir),
      ctx_(make_context(config)),
      pretrained_(load_pretrained_llama(resolve_pretrained(config.model.pretrained))),
      tokenizer_(pretrained_.tokenizer) {
  RECFORGE_CHECK(options.launch.world_size == 1, "a pretrained model trains in one process (data ",
                 "parallelism is not wired for text runs yet); run it without --nproc");
  const fs::path checkpoints = dir_ / "checkpoints";
  RECFORGE_CHECK(options.resume || !fs::exists(checkpoints) || fs::is_empty(checkpoints),
                 "run directory ", dir_.string(), " already holds checkpoints: continue it with ",
                 "--resume, or set run.output_dir to a new directory");
  fs::create_directories(checkpoints);
  lock_.emplace(dir_);
  write_file_atomically(dir_ / "config.resolved.yaml", to_yaml(config));
  log_.emplace(dir_ / "metrics.jsonl");
  pretrained_.config.precision = config.model.precision;
  model_ =
      std::make_unique<LlamaModel<float>>(ctx_, pretrained_.config, config.model.max_tokens, false);
  model_->load_parameters(pretrained_.parameters);
  pretrained_.parameters = {};
  model_->enable_lora(lora_config(config.stages.front().finetune.lora), config.run.seed);
  const PromptsSection& p = config.prompts;
  train_ = examples(p.train, p.train_first, p.train_count, p.shots, p.shots_seed);
  if (!p.valid.empty()) valid_ = examples(p.valid, p.valid_first, p.valid_count, 0, 0);
  if (!p.test.empty()) test_ = examples(p.test, 0, p.test_limit, 0, 0, true);
  check_groups_fit();
  std::printf(
      "recforge train: %s (%s, %d layers) with LoRA r=%d on %s: %zu training, %zu "
      "validation, %zu test prompts (%s)\n",
      pretrained_.source.c_str(), precision_name(config.model.precision),
      pretrained_.config.n_layer, config.stages.front().finetune.lora.rank,
      device_name(ctx_.device()).c_str(), train_.size(), valid_.size(), test_.size(),
      name_of(p.task).c_str());
}

// Every DPO stage's groups (an example's true and rejected answers, packed together) must fit one
// micro-batch: said before the first stage trains, not when the DPO stage starts.
void TextRun::check_groups_fit() const {
  for (const StageSection& stage : config_.stages) {
    if (stage.objective.type != ObjectiveType::kDpo) continue;
    for (size_t i = 0; i < train_.size(); ++i) {
      std::vector<size_t> lengths;
      for (const auto& answer : train_[i].answers) lengths.push_back(answer.size());
      std::sort(lengths.rbegin(), lengths.rend());
      const size_t group = std::min<size_t>(lengths.size(), stage.objective.dpo.rejected + 1);
      size_t tokens = 0;
      for (size_t k = 0; k < group; ++k) tokens += train_[i].prompt.size() + lengths[k] - 1;
      RECFORGE_CHECK(tokens <= static_cast<size_t>(config_.model.max_tokens), "stage ", stage.name,
                     ": training example ", i, " with its ", group - 1,
                     " rejected answers can take ", tokens, " tokens, more than model.max_tokens ",
                     config_.model.max_tokens, ": raise it or lower objective.dpo.rejected");
    }
  }
}

std::vector<TextExample> TextRun::examples(const std::string& file, int first, int count, int shots,
                                           uint64_t seed, bool capped) const {
  return load_text_examples(config_.prompts, {file, first, count, shots, seed, capped}, tokenizer_);
}

TextRun::StageData TextRun::stage_data(const StageSection& stage) {
  const int max_tokens = config_.model.max_tokens, max_examples = stage.train.batch_size;
  StageData data;
  if (stage.objective.type == ObjectiveType::kSft) {
    data.batches = sft_batches(train_, end_of_turn(tokenizer_), max_examples, max_tokens);
    return data;
  }
  data.batches =
      dpo_batches(train_, stage.objective.dpo.rejected, config_.run.seed, max_examples, max_tokens);
  std::printf("stage %s: reference log-probabilities of %zu micro-batches\n", stage.name.c_str(),
              data.batches.size());
  for (const TextBatch& batch : data.batches) {
    data.reference.push_back(answer_log_probs(*model_, batch));
  }
  return data;
}

// One LoRA dropout seed per (stage, step, micro-batch).
uint64_t TextRun::dropout_seed(const StageSection& stage, int64_t step, size_t micro) const {
  const uint64_t index = static_cast<uint64_t>(&stage - config_.stages.data());
  return ((config_.run.seed * 1000003 + index) * 1000003 + static_cast<uint64_t>(step)) * 64 +
         micro;
}

// A micro-batch holds up to train.batch_size examples but never more than model.max_tokens tokens:
// long prompts (or many rejected answers) can make a step far smaller than the batch size asked.
void TextRun::warn_if_max_tokens_shrinks_steps(const StageSection& stage,
                                               const StageData& data) const {
  size_t examples = 0;
  for (const TextBatch& batch : data.batches) examples += batch.group_sizes.size();
  const double per_batch = static_cast<double>(examples) / data.batches.size();
  if (per_batch >= 0.75 * stage.train.batch_size) return;
  std::fprintf(stderr,
               "warning: stage %s: model.max_tokens %d fits %.1f examples per micro-batch on "
               "average, not train.batch_size %d: each step sees %.1f x train.grad_accum %d "
               "examples (raise model.max_tokens or train.grad_accum)\n",
               stage.name.c_str(), config_.model.max_tokens, per_batch, stage.train.batch_size,
               per_batch, stage.train.grad_accum);
}

double TextRun::train_step(const StageSection& stage, const StageData& data,
                           std::span<const int> micro_batches, int64_t step, DpoSums& dpo) {
  model_->zero_gradients();
  double loss = 0.0;
  if (stage.objective.type == ObjectiveType::kSft) {
    double tokens = 0.0;
    for (int b : micro_batches) tokens += static_cast<double>(data.batches[b].answer_tokens);
    for (size_t i = 0; i < micro_batches.size(); ++i) {
      const SftOptions options{true, dropout_seed(stage, step, i)};
      loss += sft_forward_backward(*model_, data.batches[micro_batches[i]], tokens, options,
                                   i + 1 == micro_batches.size());
    }
    return loss;
  }
  int examples = 0;
  for (int b : micro_batches) examples += static_cast<int>(data.batches[b].group_sizes.size());
  const DpoSection& d = stage.objective.dpo;
  const DpoParams params{d.loss, d.beta, d.label_smoothing};
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const int b = micro_batches[i];
    dpo.add(dpo_forward_backward(*model_, data.batches[b], data.reference[b], params,
                                 1.0 / examples, i + 1 == micro_batches.size()));
  }
  return dpo.loss / dpo.examples;
}

void TextRun::evaluate_and_keep_best(const StageSection& stage, StageState& state) {
  if (valid_.empty()) return;
  const TextEvalSettings settings{config_.prompts.task, config_.prompts.max_context, false,
                                  stage.name + " valid"};
  json metrics = evaluate_text(*model_, tokenizer_, valid_, settings);
  const std::string& key = stage.eval.metric.key;
  RECFORGE_CHECK(metrics.contains(key) && metrics[key].is_number(), "eval.metric ", key,
                 " has no value on prompts.valid (", metrics.dump(), ")");
  const double value = metrics[key].get<double>();
  state.last_eval_step = state.step;
  const double signed_value = stage.eval.metric.higher_is_better ? value : -value;
  const bool improved = signed_value > state.best;
  if (improved) {
    state.best = signed_value;
    state.best_step = state.step;
    state.evals_without_improvement = 0;
    save_adapters(checkpoint(stage, "best"));
  } else {
    ++state.evals_without_improvement;
  }
  std::printf("stage %s step %lld: valid %s %.4f%s\n", stage.name.c_str(),
              static_cast<long long>(state.step), key.c_str(), value, improved ? " (best)" : "");
  log_->write({{"event", "valid"},
               {"stage", stage.name},
               {"step", state.step},
               {"metrics", metrics},
               {"best", improved}});
  state.stopped_early =
      stage.eval.patience > 0 && state.evals_without_improvement >= stage.eval.patience;
}

// The adapters a stage starts from: auto and previous keep the model's (the previous stage's
// best, or fresh ones for the first stage), scratch draws fresh ones, and a checkpoint is an
// earlier stage's name (its best adapters) or a PEFT adapter directory.
void TextRun::start_adapters(size_t index) {
  const StageInit& init = config_.stages[index].init;
  if (init.from == InitFrom::kScratch) {
    model_->load_adapter_parameters(llama_lora_initial(model_->lora_layout(), config_.run.seed));
  }
  if (init.from != InitFrom::kCheckpoint) return;
  for (size_t earlier = 0; earlier < index; ++earlier) {
    if (config_.stages[earlier].name == init.checkpoint) {
      load_adapters(dir_ / ("adapter-" + init.checkpoint));
      return;
    }
  }
  load_adapters(init.checkpoint);
}

TrainStatus TextRun::train_stage(size_t index) {
  const StageSection& stage = config_.stages[index];
  start_adapters(index);
  const StageData data = stage_data(stage);
  const int accum = stage.train.grad_accum;
  const int64_t batches = static_cast<int64_t>(data.batches.size());
  RECFORGE_CHECK(batches > 0, "stage ", stage.name, ": no training prompts");
  warn_if_max_tokens_shrinks_steps(stage, data);
  const int steps_per_epoch = static_cast<int>((batches + accum - 1) / accum);
  int64_t total = static_cast<int64_t>(steps_per_epoch) * stage.train.epochs;
  if (stage.train.max_steps > 0) total = std::min(total, stage.train.max_steps);
  Buffer<float>& adapters = model_->adapter_parameters();
  AdamW optimizer(ctx_,
                  {{adapters.data(), model_->adapter_gradients().data(),
                    static_cast<int64_t>(adapters.size()), static_cast<int64_t>(adapters.size())}},
                  {stage.train.lr, stage.train.beta1, stage.train.beta2, stage.train.eps,
                   stage.train.weight_decay});
  StageState state = restore_latest(stage, optimizer).value_or(StageState{});
  RECFORGE_CHECK(state.step <= total && state.step_in_epoch <= steps_per_epoch, "stage ",
                 stage.name, ": the checkpoint is at step ", state.step, " (", state.step_in_epoch,
                 " of an epoch), past this config's ", total, " steps (", steps_per_epoch,
                 " per epoch)");
  Progress progress(state.step, total);
  while (state.step < total && !state.stopped_early) {
    std::vector<int> order(batches);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(config_.run.seed + state.epoch));
    for (; state.step_in_epoch < steps_per_epoch && state.step < total; ++state.step_in_epoch) {
      const int first = state.step_in_epoch * accum;
      const std::span<const int> micro(order.data() + first,
                                       std::min<int64_t>(accum, batches - first));
      DpoSums dpo;
      const auto started = std::chrono::steady_clock::now();
      const double loss = train_step(stage, data, micro, state.step, dpo);
      const float lr = learning_rate(stage.train, state.step, total);
      const float norm = optimizer.step(lr, stage.train.grad_clip);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      int64_t tokens = 0;
      for (int b : micro) tokens += data.batches[b].host.num_tokens();
      progress.update(++state.step);
      json event = {
          {"event", "train"}, {"stage", stage.name}, {"step", state.step}, {"loss", loss},
          {"lr", lr},         {"grad_norm", norm},   {"tokens", tokens},   {"seconds", seconds}};
      if (dpo.examples > 0) {
        event["margin"] = dpo.margin / dpo.examples;
        event["accuracy"] = dpo.accuracy / dpo.examples;
      }
      log_->write(event);
      if (state.step % config_.run.log_every_steps == 0 || state.step == total) {
        std::printf("stage %s epoch %d step %lld/%lld loss %.4f lr %.3g | %s elapsed, ETA %s\n",
                    stage.name.c_str(), state.epoch + 1, static_cast<long long>(state.step),
                    static_cast<long long>(total), loss, lr,
                    format_duration(progress.elapsed_seconds()).c_str(),
                    format_duration(progress.eta_seconds()).c_str());
        std::fflush(stdout);
      }
      if (stage.eval.every_steps > 0 && state.step % stage.eval.every_steps == 0) {
        evaluate_and_keep_best(stage, state);
        if (state.stopped_early) break;
      }
      const bool interrupted =
          take_stop_request() ||
          (options_.interrupt_after_steps > 0 && state.step == options_.interrupt_after_steps);
      if (interrupted) {
        ++state.step_in_epoch;
        save_latest(stage, state, optimizer);
        std::printf("stopped after step %lld: resume with --resume\n",
                    static_cast<long long>(state.step));
        return TrainStatus::kInterrupted;
      }
    }
    if (state.step_in_epoch >= steps_per_epoch) {
      ++state.epoch;
      state.step_in_epoch = 0;
      if (stage.eval.every_steps == 0) evaluate_and_keep_best(stage, state);
    }
    save_latest(stage, state, optimizer);
  }
  if (!valid_.empty() && state.last_eval_step != state.step && !state.stopped_early) {
    evaluate_and_keep_best(stage, state);  // the steps after the last evaluation count too
    save_latest(stage, state, optimizer);
  }
  finish_stage(stage, state);
  return TrainStatus::kCompleted;
}

void TextRun::finish_stage(const StageSection& stage, const StageState& state) {
  if (fs::exists(checkpoint(stage, "best"))) load_adapters(checkpoint(stage, "best"));
  save_adapters(dir_ / ("adapter-" + stage.name));
  json result = {{"stage", stage.name}, {"steps", state.step}, {"best_step", state.best_step}};
  if (!test_.empty()) {
    const TextEvalSettings settings{config_.prompts.task, config_.prompts.max_context,
                                    config_.prompts.valid_ratio, stage.name + " test"};
    result["test"] = evaluate_text(*model_, tokenizer_, test_, settings);
    result["test"]["limit"] = config_.prompts.test_limit;
  }
  write_file_atomically(dir_ / ("final_metrics-" + stage.name + ".json"), result.dump(2) + "\n");
  log_->write({{"event", "final"}, {"stage", stage.name}, {"result", result}});
  std::printf("stage %s done: %s\n", stage.name.c_str(), result.dump().c_str());
}

void TextRun::save_adapters(const fs::path& dir) const {
  const std::vector<float> values = model_->adapter_parameters().download();
  save_llama_peft_adapter(dir, pretrained_.config, model_->lora_config(), values,
                          pretrained_.source);
}

void TextRun::load_adapters(const fs::path& dir) {
  const LlamaPeftAdapter adapter = load_llama_peft_adapter(dir, pretrained_.config);
  RECFORGE_CHECK(adapter.config.rank == model_->lora_config().rank &&
                     adapter.config.scale() == model_->lora_config().scale() &&
                     adapter.config.resolved_targets() == model_->lora_config().resolved_targets(),
                 dir.string(), ": adapters of rank ", adapter.config.rank, ", scale ",
                 adapter.config.scale(), " on other layers or at another scale than this run's ",
                 "finetune.lora (rank ", model_->lora_config().rank, ", scale ",
                 model_->lora_config().scale(), ")");
  model_->load_adapter_parameters(adapter.values);
}

// Written into "<latest>.tmp", then swapped in by renames: a crash leaves the old checkpoint
// (possibly as "<latest>.old") or the new one, never a mix.
void TextRun::save_latest(const StageSection& stage, const StageState& state,
                          AdamW& optimizer) const {
  const fs::path latest = checkpoint(stage, "latest");
  const fs::path tmp = latest.string() + ".tmp", old = latest.string() + ".old";
  if (!fs::exists(latest) && fs::exists(old)) fs::rename(old, latest);  // a crash mid-swap
  fs::remove_all(tmp);
  save_adapters(tmp);
  const auto [m, v] = optimizer.full_moments();
  const int64_t n = static_cast<int64_t>(m.size());
  write_safetensors(tmp / "optimizer.safetensors", {{"m", {n}, m}, {"v", {n}, v}});
  json trainer_state = state;
  trainer_state["adam_steps"] = optimizer.steps_taken();
  trainer_state["settings"] = data_settings(stage);
  write_file_atomically(tmp / "trainer_state.json", trainer_state.dump(2) + "\n");
  sync_directory(tmp);
  fs::remove_all(old);
  if (fs::exists(latest)) fs::rename(latest, old);
  fs::rename(tmp, latest);
  sync_directory(latest.parent_path());
  fs::remove_all(old);
}

// What decides a stage's micro-batches, their order and its step count: a resume must see the same.
json TextRun::data_settings(const StageSection& stage) const {
  const PromptsSection& p = config_.prompts;
  return {{"seed", config_.run.seed},
          {"train", p.train},
          {"train_first", p.train_first},
          {"train_count", p.train_count},
          {"shots", p.shots},
          {"shots_seed", p.shots_seed},
          {"in_context", p.in_context},
          {"max_tokens", config_.model.max_tokens},
          {"batch_size", stage.train.batch_size},
          {"grad_accum", stage.train.grad_accum},
          {"epochs", stage.train.epochs},
          {"max_steps", stage.train.max_steps},
          {"rejected", stage.objective.dpo.rejected}};
}

std::optional<StageState> TextRun::restore_latest(const StageSection& stage, AdamW& optimizer) {
  if (!options_.resume) return std::nullopt;
  fs::path latest = checkpoint(stage, "latest");
  if (!fs::exists(latest)) latest = latest.string() + ".old";
  if (!fs::exists(latest / "trainer_state.json")) return std::nullopt;
  std::ifstream in(latest / "trainer_state.json");
  const json saved = json::parse(in, nullptr, false);
  RECFORGE_CHECK(!saved.is_discarded() && saved.is_object() && saved.contains("settings"),
                 (latest / "trainer_state.json").string(), ": not a text trainer state");
  RECFORGE_CHECK(options_.allow_config_change || saved["settings"] == data_settings(stage),
                 "stage ", stage.name, ": the settings that decide the data and its order changed ",
                 "since ", latest.string(), " was written (", saved["settings"].dump(), " then, ",
                 data_settings(stage).dump(), " now): resume with the same config, or pass ",
                 "--allow-config-change");
  load_adapters(latest);
  const SafetensorsFile moments = SafetensorsFile::read(latest / "optimizer.safetensors");
  optimizer.restore(moments.f32("m"), moments.f32("v"), saved.at("adam_steps").get<int>());
  StageState state;
  try {
    state = state_from_json(saved);
  } catch (const json::exception& e) {
    throw Error(concat((latest / "trainer_state.json").string(), ": ", e.what()));
  }
  std::printf("stage %s: resumed from %s at step %lld\n", stage.name.c_str(), latest.c_str(),
              static_cast<long long>(state.step));
  return state;
}

TrainStatus TextRun::run() {
  for (size_t i = 0; i < config_.stages.size(); ++i) {
    const StageSection& stage = config_.stages[i];
    const fs::path done = dir_ / ("final_metrics-" + stage.name + ".json");
    if (options_.resume && fs::exists(done)) {
      load_adapters(dir_ / ("adapter-" + stage.name));
      std::printf("stage %s already finished (%s)\n", stage.name.c_str(), done.c_str());
      continue;
    }
    if (train_stage(i) == TrainStatus::kInterrupted) return TrainStatus::kInterrupted;
  }
  return TrainStatus::kCompleted;
}

}  // namespace

std::string resolve_pretrained(const std::string& name) {
  if (name != "smollm2-135m-instruct") return name;
  const char* dir = std::getenv("RECFORGE_MODEL_DIR");
  const char* home = std::getenv("HOME");
  const fs::path models = dir != nullptr    ? fs::path(dir)
                          : home != nullptr ? fs::path(home) / ".cache/recforge/models"
                                            : fs::path(".cache/recforge/models");
  const fs::path file = models / "SmolLM2-135M-Instruct.Q4_1.gguf";
  RECFORGE_CHECK(fs::exists(file), "model.pretrained ", name, ": ", file.string(),
                 " is missing; fetch it with tools/fetch-model.sh ", models.string());
  return file.string();
}

TextModel load_text_model(const std::string& name, const std::string& adapter, Device device,
                          Precision precision, int max_tokens) {
  PretrainedLlama pretrained = load_pretrained_llama(resolve_pretrained(name));
  pretrained.config.precision = precision;
  TextModel loaded{pretrained.config, Tokenizer(pretrained.tokenizer),
                   std::make_unique<LlamaModel<float>>(Context::create(device), pretrained.config,
                                                       max_tokens, false)};
  loaded.model->load_parameters(pretrained.parameters);
  if (!adapter.empty()) {
    const LlamaPeftAdapter peft = load_llama_peft_adapter(adapter, pretrained.config);
    loaded.model->enable_lora(peft.config, 0);
    loaded.model->load_adapter_parameters(peft.values);
  }
  return loaded;
}

TrainStatus train_text(const RunConfig& config, const TrainerOptions& options) {
  TextRun run(config, options);
  return run.run();
}

}  // namespace recforge
