#include "train/trainer.h"

#include <omp.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "kernels/check.h"
#include "kernels/global_norm.h"
#include "kernels/nvtx.h"
#include "model/checkpoint.h"
#include "model/decoder.h"
#include "model/peft.h"
#include "model/vocabulary.h"
#include "train/dist/communicator.h"
#include "train/data/dataset.h"
#include "train/tasks/dpo_stage.h"
#include "train/dist/launch.h"
#include "train/optim/optimizer.h"
#include "train/tasks/pretrain_task.h"
#include "train/dist/rendezvous.h"
#include "train/run_log.h"
#include "train/optim/schedule.h"
#include "train/tasks/sft_stage.h"
#include "train/data/split.h"
#include "train/setup/stage_start.h"
#include "train/tasks/stage_task.h"
#include "train/step.h"
#include "train/tasks/training_data.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

volatile std::sig_atomic_t stop_requested = 0;

// Where the training loop stands; saved in trainer_state.json.
struct LoopState {
  int epoch = 0;      // current epoch, from 0
  size_t cursor = 0;  // next micro-batch of the epoch
  int64_t step = 0;   // optimizer steps done
  double best_metric = -1.0;
  int64_t best_step = -1;
  std::string best_checkpoint;  // directory name under checkpoints/
  int evals_without_improvement = 0;
  double train_seconds = 0.0;  // time spent in training steps (evaluation excluded)
};

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

std::unique_ptr<StageTask> make_task(const RunConfig& config, const StageSection& stage,
                                     const Context& ctx, const Dataset& data,
                                     const LeaveOneOutSplit& split, const Distributed& dist) {
  const std::string& type = stage.objective.type;
  if (type == "mbp_nbp" || type == "nbp" || type == "mbp") {
    return std::make_unique<PretrainTask>(config, stage, ctx, data, split, dist);
  }
  if (type == "sft") return std::make_unique<SftStage>(config, stage, ctx, data, split, dist);
  if (type == "dpo") {
    return std::make_unique<DpoStage>(config, stage, ctx, data, split,
                                      stage.finetune.method == "lora", dist);
  }
  throw Error(concat("stage ", stage.name, ": unknown objective ", type));
}

LoraConfig lora_config(const LoraSection& s) {
  LoraConfig config;
  config.rank = s.rank;
  config.alpha = s.alpha;
  config.rslora = s.rslora;
  config.dropout = s.dropout;
  config.targets = s.targets;
  return config;
}

// The optimizer's groups. Full fine-tuning: the whole model, except that with known_items frozen
// (or at their own learning rate) the embedding rows of the checkpoint's items form their own
// group (or none). LoRA: the adapters, the special-token rows (task and answer tokens the
// pre-trained model never saw), the new items' rows and, unless frozen, the known items' rows.
std::vector<ParameterGroup> trainable_groups(Decoder<float>& model, const FinetuneSection& finetune,
                                             const StageStart& start) {
  const ParameterLayout& layout = model.layout();
  ParameterGroup all = whole_buffer(model.parameters(), model.gradients(), layout.num_decayed());
  const bool lora = finetune.method == "lora";
  const bool separate =
      lora || (start.checkpoint && start.known_items > 0 &&
               (finetune.known_items == "frozen" || finetune.known_items_lr_scale != 1.0f));
  if (!separate) return {all};
  const int64_t C = model.config().d_model;
  const int64_t known_begin = layout.offset("wte") + kFirstItemToken * C;
  const int64_t known_end = known_begin + start.known_items * C;
  RECFORGE_CHECK(layout.offset("wte") == 0, "the token embedding must lead the parameter layout");
  auto range = [&](int64_t begin, int64_t end) {
    const int64_t decayed = std::clamp(layout.num_decayed() - begin, int64_t{0}, end - begin);
    return ParameterGroup{all.parameters + begin, all.gradients + begin, end - begin, decayed};
  };
  std::vector<ParameterGroup> groups = {range(0, known_begin)};
  if (finetune.known_items == "train" && known_end > known_begin) {
    groups.push_back(range(known_begin, known_end));
    groups.back().lr_scale = finetune.known_items_lr_scale;
  }
  if (!lora) {
    groups.push_back(range(known_end, layout.total_size()));
    return groups;
  }
  const int64_t wte_end = layout.offset("wte") + model.config().vocab_size * C;
  if (wte_end > known_end) groups.push_back(range(known_end, wte_end));
  groups.push_back(whole_buffer(model.adapter_parameters(), model.adapter_gradients(),
                                model.lora_layout().total_size()));
  return groups;
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

// One stage of the configuration: its model, optimizer and task, the loop and its checkpoints.
class StageRunner {
 public:
  // `log` is null on every rank but 0, which alone writes the run directory.
  StageRunner(const RunConfig& config, size_t stage_index, const Context& ctx, StageStart start,
              const Dataset& data, const LeaveOneOutSplit& split, RunLog* log,
              const Distributed& dist);
  TrainStatus run(const TrainerOptions& options);
  fs::path best_checkpoint() const { return checkpoints_dir_ / best_checkpoint_; }

 private:
  std::vector<size_t> micro_batches(const std::vector<uint32_t>& order) const;
  int64_t steps_per_epoch() const;
  int64_t planned_steps() const;
  StepLosses train_step(const std::vector<uint32_t>& order, const std::vector<size_t>& micro,
                        size_t first, size_t last, int64_t step);
  void check_finite_parameters(int64_t step);
  bool evaluate_and_checkpoint(LoopState& state);
  void save(const LoopState& state, const fs::path& dir);
  void prune_checkpoints(const LoopState& state, const fs::path& newest);
  void restore(const fs::path& dir, LoopState& state);
  std::vector<ParameterGroup> set_up_model();
  void load_weights(const fs::path& dir, const CheckpointData& data);
  void write_final_metrics(const LoopState& state);
  void log_step(const LoopState& state, const StepLosses& losses, float lr, float norm,
                int64_t tokens, double seconds, const Progress& progress);
  void sum_over_ranks(StepLosses& losses) const;
  void sum_gradients_over_ranks();
  bool overlaps_gradient_reduction() const;
  Decoder<float>::GradientReady start_reduction() const;
  bool any_rank_stopping(bool stopping) const;

  const RunConfig& config_;
  const StageSection& stage_;
  Context ctx_;
  StageStart start_;
  const Dataset& data_;
  RunLog* log_;
  Distributed dist_;
  fs::path run_dir_, checkpoints_dir_;
  std::unique_ptr<StageTask> task_;
  Decoder<float> model_;
  AdamW optimizer_;
  std::string best_checkpoint_;
};

StageRunner::StageRunner(const RunConfig& config, size_t stage_index, const Context& ctx,
                         StageStart start, const Dataset& data, const LeaveOneOutSplit& split,
                         RunLog* log, const Distributed& dist)
    : config_(config),
      stage_(config.stages[stage_index]),
      ctx_(ctx),
      start_(std::move(start)),
      data_(data),
      log_(log),
      dist_(dist),
      run_dir_(config.run.output_dir),
      checkpoints_dir_(run_dir_ / "checkpoints"),
      task_(make_task(config, stage_, ctx, data, split, dist)),
      model_(ctx, start_.model_config, task_->max_tokens()),
      optimizer_(ctx, set_up_model(),
                 AdamWConfig{stage_.train.lr, stage_.train.beta1, stage_.train.beta2,
                             stage_.train.eps, stage_.train.weight_decay},
                 dist.comm, config.distributed.zero1) {
  RECFORGE_CHECK(task_->num_examples() > 0, "stage ", stage_.name, ": the dataset at ",
                 data.directory().string(), " gives no training example for the objective");
}

// Loads the starting weights, adds LoRA adapters when the stage uses them (the base then frozen),
// and returns what the optimizer trains.
std::vector<ParameterGroup> StageRunner::set_up_model() {
  model_.load_parameters(start_.parameters);
  start_.parameters.clear();
  if (stage_.finetune.method == "lora") {
    model_.enable_lora(lora_config(stage_.finetune.lora), config_.run.seed);
    model_.set_base_frozen(true);
  }
  return trainable_groups(model_, stage_.finetune, start_);
}

void StageRunner::load_weights(const fs::path& dir, const CheckpointData& data) {
  RECFORGE_CHECK(data.parameters.size() == static_cast<size_t>(model_.layout().total_size()),
                 "checkpoint ", dir.string(), " does not match the configured model");
  model_.load_parameters(data.parameters);
  if (model_.has_lora()) load_adapter_values(dir, model_);
}

std::vector<size_t> StageRunner::micro_batches(const std::vector<uint32_t>& order) const {
  return plan_micro_batches(order, stage_.train.batch_size, stage_.train.token_budget,
                            [&](uint32_t e) { return task_->example_tokens(e); });
}

int64_t StageRunner::steps_per_epoch() const {
  const std::vector<uint32_t> order = shuffled_order(task_->num_examples(), config_.run.seed, 0);
  const int64_t micro = static_cast<int64_t>(micro_batches(order).size() - 1);
  return (micro + stage_.train.grad_accum - 1) / stage_.train.grad_accum;
}

int64_t StageRunner::planned_steps() const {
  const int64_t all = steps_per_epoch() * stage_.train.epochs;
  return stage_.train.max_steps > 0 ? std::min(all, stage_.train.max_steps) : all;
}

// Forward and backward of every micro-batch in micro[first, last), gradients accumulated.
StepLosses StageRunner::train_step(const std::vector<uint32_t>& order,
                                   const std::vector<size_t>& micro, size_t first, size_t last,
                                   int64_t step) {
  NvtxRange range("step ", step + 1);
  std::vector<std::span<const uint32_t>> batches;
  for (size_t m = first; m < last; ++m) {
    batches.emplace_back(order.data() + micro[m], micro[m + 1] - micro[m]);
  }
  model_.zero_gradients();
  const bool overlap = overlaps_gradient_reduction();
  const int passes = overlap ? task_->backward_passes(batches, dist_.shard) : 0;
  if (passes > 0) model_.announce_gradients(start_reduction(), passes);
  StepLosses losses = task_->train_step(model_, batches, step, dist_.shard);
  sum_over_ranks(losses);
  if (overlap) {
    // A rank whose last pass did not come (no work) starts the same reductions now, in the same
    // order, so every rank issues the same collectives.
    if (!model_.gradients_announced()) model_.announce_all_gradients(start_reduction());
    dist_.comm->finish_all_reduces();
  } else {
    sum_gradients_over_ranks();
  }
  check_finite_loss(losses.loss, static_cast<int>(step + 1));
  return losses;
}

// Each rank's losses are its share of the step's: their sum is the step's loss.
void StageRunner::sum_over_ranks(StepLosses& losses) const {
  if (!dist_.parallel()) return;
  std::vector<double> values = {losses.loss, static_cast<double>(losses.tokens)};
  std::vector<std::string> keys;
  for (const auto& [key, value] : losses.parts.items()) {
    keys.push_back(key);
    values.push_back(value.get<double>());
  }
  dist_.sum(values);
  losses.loss = values[0];
  losses.tokens = static_cast<int64_t>(values[1]);
  for (size_t k = 0; k < keys.size(); ++k) losses.parts[keys[k]] = values[2 + k];
}

// Whether this step's gradients are reduced tensor by tensor during the last backward pass
// (overlapped with the rest of it): with several ranks, the whole model trained and no ZeRO-1.
bool StageRunner::overlaps_gradient_reduction() const {
  return dist_.parallel() && config_.distributed.overlap && !optimizer_.zero1() &&
         optimizer_.groups().size() == 1 && !model_.has_lora() &&
         optimizer_.groups()[0].size == model_.layout().total_size();
}

Decoder<float>::GradientReady StageRunner::start_reduction() const {
  Communicator* comm = dist_.comm;
  return [comm](float* gradient, int64_t count) {
    NvtxRange range("gradient all-reduce (bucket)");
    comm->start_all_reduce_sum(gradient, static_cast<size_t>(count));
  };
}

// Data parallelism: every rank's gradients are its shard's share, so their sum is the whole
// step's gradient; every rank then takes the same optimizer step.
void StageRunner::sum_gradients_over_ranks() {
  if (!dist_.parallel() || optimizer_.zero1()) return;  // ZeRO-1 reduce-scatters them instead
  NvtxRange range("gradient all-reduce");
  for (const ParameterGroup& g : optimizer_.groups()) {
    dist_.comm->all_reduce_sum(const_cast<float*>(g.gradients), static_cast<size_t>(g.size));
  }
}

// A signal reaches the ranks at different moments; they stop together after the step in which
// any of them saw it.
bool StageRunner::any_rank_stopping(bool stopping) const {
  std::vector<double> flag = {stopping ? 1.0 : 0.0};
  dist_.sum(flag);
  return flag[0] > 0.0;
}

// A divergence that overflows the parameters stops the run before anything is evaluated or saved,
// so the last checkpoint on disk stays the last good one.
void StageRunner::check_finite_parameters(int64_t step) {
  double squares = 0.0;
  for (const ParameterGroup& g : optimizer_.groups()) {
    const double norm = global_norm(ctx_, g.parameters, g.size);
    squares += norm * norm;
  }
  RECFORGE_CHECK(std::isfinite(squares), "training diverged at step ", step,
                 ": the parameters' norm is ", std::sqrt(squares),
                 "; the last good checkpoint is the latest in ", checkpoints_dir_.string(),
                 " (lower the learning rate or enable gradient clipping)");
}

// Rank 0 writes; every rank returns once the checkpoint is complete on disk.
void StageRunner::save(const LoopState& state, const fs::path& dir) {
  NvtxRange range("checkpoint");
  auto [adam_m, adam_v] = optimizer_.full_moments();  // a collective with ZeRO-1
  if (!dist_.writes_files()) {
    if (dist_.parallel()) dist_.comm->barrier();
    return;
  }
  CheckpointData data;
  data.model_config = model_.config();
  data.parameters = model_.parameters().download();
  data.adam_m = std::move(adam_m);
  data.adam_v = std::move(adam_v);
  data.item_ids = item_ids_of(data_);
  if (model_.has_lora()) {
    data.write_extra_files = [this](const fs::path& tmp) { save_peft_adapter(tmp, model_); };
  }
  json state_json = task_->inference_state();
  state_json.update({{"stage", stage_.name},
                     {"loop", to_json(state)},
                     {"adam_steps", optimizer_.steps_taken()},
                     {"data_path", start_.data_path.string()},
                     {"max_len", config_.data.max_len},
                     {"seed", config_.run.seed}});
  data.trainer_state = state_json;
  save_checkpoint(dir, data);
  if (dist_.parallel()) dist_.comm->barrier();
}

void StageRunner::prune_checkpoints(const LoopState& state, const fs::path& newest) {
  if (!dist_.writes_files()) return;
  const std::string prefix = stage_.name + "-step";
  for (const auto& entry : fs::directory_iterator(checkpoints_dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || entry.path() == newest) continue;
    if (name == state.best_checkpoint) continue;
    fs::remove_all(entry.path());
  }
}

void StageRunner::restore(const fs::path& dir, LoopState& state) {
  CheckpointData data = load_checkpoint(dir);
  load_weights(dir, data);
  optimizer_.restore(data.adam_m, data.adam_v, data.trainer_state.at("adam_steps").get<int>());
  state = loop_state_from(data.trainer_state.at("loop"));
}

// Validation, a checkpoint, and the early-stopping bookkeeping. Returns true to stop.
bool StageRunner::evaluate_and_checkpoint(LoopState& state) {
  NvtxRange range("evaluation");
  const EvalSection& eval = stage_.eval;
  Progress timer(0, 1);
  Metrics metrics;
  try {
    metrics = task_->evaluate(model_, Split::kValid);
  } catch (const Error& e) {
    throw Error("validation at step " + std::to_string(state.step) + " failed, nothing saved (" +
                e.what() + "); the last good checkpoint is the latest in " +
                checkpoints_dir_.string());
  }
  RECFORGE_CHECK(metrics.count(eval.metric), "stage ", stage_.name, ": eval.metric ", eval.metric,
                 " is not one of the metrics this objective reports");
  const double value = metrics.at(eval.metric);
  const double score = higher_is_better(eval.metric) ? value : -value;
  const fs::path dir = checkpoints_dir_ / (stage_.name + "-step" + std::to_string(state.step));
  const bool improved = state.best_step < 0 || score > state.best_metric;
  if (improved) {
    state.best_metric = score;
    state.best_step = state.step;
    state.best_checkpoint = dir.filename().string();
    state.evals_without_improvement = 0;
  } else {
    ++state.evals_without_improvement;
  }
  save(state, dir);
  prune_checkpoints(state, dir);
  if (!log_) return eval.patience > 0 && state.evals_without_improvement >= eval.patience;
  json event = {{"stage", stage_.name}, {"step", state.step}, {"epoch", state.epoch}};
  for (const auto& [key, v] : metrics) event["valid/" + key] = v;
  event["eval_seconds"] = timer.elapsed_seconds();
  log_->write(event);
  const double best = higher_is_better(eval.metric) ? state.best_metric : -state.best_metric;
  std::printf("%s step %lld: valid %s %.4f (best %.4f at step %lld)%s, %.1fs\n",
              stage_.name.c_str(), static_cast<long long>(state.step), eval.metric.c_str(), value,
              best, static_cast<long long>(state.best_step), improved ? " *" : "",
              timer.elapsed_seconds());
  std::fflush(stdout);
  return eval.patience > 0 && state.evals_without_improvement >= eval.patience;
}

void StageRunner::write_final_metrics(const LoopState& state) {
  const fs::path best_dir = checkpoints_dir_ / state.best_checkpoint;
  load_weights(best_dir, load_checkpoint(best_dir));
  json result = task_->final_report(model_);
  result.update(task_->inference_state());
  result.update({{"stage", stage_.name},
                 {"best_step", state.best_step},
                 {"best_checkpoint", state.best_checkpoint},
                 {"epochs", state.epoch},
                 {"train_seconds", state.train_seconds}});
  if (!dist_.writes_files()) return;
  const std::string text = result.dump(2) + "\n";
  std::ofstream(run_dir_ / ("final_metrics-" + stage_.name + ".json")) << text;
  std::ofstream(run_dir_ / "final_metrics.json") << text;
  std::printf("%s done (best step %lld):", stage_.name.c_str(),
              static_cast<long long>(state.best_step));
  for (const char* key : {"test/hr@10", "test/ndcg@10", "test_sampled/hr@10",
                          "test_sampled/ndcg@10", "test/auc", "test/rmse", "test/mae"}) {
    if (result.contains(key)) std::printf(" %s %.4f", key, result[key].get<double>());
  }
  std::printf("; written to %s\n", (run_dir_ / ("final_metrics-" + stage_.name + ".json")).c_str());
}

void StageRunner::log_step(const LoopState& state, const StepLosses& losses, float lr, float norm,
                           int64_t tokens, double seconds, const Progress& progress) {
  const double tokens_per_s = seconds > 0 ? tokens / seconds : 0.0;
  json event = {{"stage", stage_.name},        {"step", state.step}, {"epoch", state.epoch},
                {"loss", losses.loss},         {"lr", lr},           {"grad_norm", norm},
                {"tokens_per_s", tokens_per_s}};
  if (losses.parts.is_object()) event.update(losses.parts);
  log_->write(event);
  std::printf("%s epoch %d step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %s\n",
              stage_.name.c_str(), state.epoch + 1, static_cast<long long>(state.step),
              static_cast<long long>(planned_steps()), losses.loss, lr, tokens_per_s,
              format_duration(progress.eta_seconds()).c_str());
  std::fflush(stdout);
}

TrainStatus StageRunner::run(const TrainerOptions& options) {
  fs::create_directories(checkpoints_dir_);
  LoopState state;
  if (options.resume) {
    if (std::optional<fs::path> latest = latest_checkpoint(checkpoints_dir_, stage_.name)) {
      restore(*latest, state);
      if (dist_.writes_files()) {
        std::printf("resumed %s from %s (step %lld)\n", stage_.name.c_str(), latest->c_str(),
                    static_cast<long long>(state.step));
      }
    }
  }
  task_->prepare(model_);
  const TrainSection& train = stage_.train;
  const int64_t total = planned_steps();
  Progress progress(state.step, total);
  bool stop = state.step >= total;
  int64_t window_tokens = 0;
  double window_seconds = 0.0;
  while (!stop && state.epoch < train.epochs) {
    const std::vector<uint32_t> order =
        shuffled_order(task_->num_examples(), config_.run.seed, state.epoch);
    const std::vector<size_t> micro = micro_batches(order);
    const size_t num_micro = micro.size() - 1;
    while (!stop && state.cursor < num_micro) {
      const size_t last = std::min(num_micro, state.cursor + train.grad_accum);
      Progress timer(0, 1);
      const StepLosses losses = train_step(order, micro, state.cursor, last, state.step);
      const float lr = learning_rate(train, state.step, total);
      const float norm = optimizer_.step(lr, train.grad_clip);
      check_finite_parameters(state.step + 1);
      state.cursor = last;
      ++state.step;
      state.train_seconds += timer.elapsed_seconds();
      window_seconds += timer.elapsed_seconds();
      window_tokens += losses.tokens;
      progress.update(state.step);
      if (log_ && state.step % config_.run.log_every_steps == 0) {
        log_step(state, losses, lr, norm, window_tokens, window_seconds, progress);
        window_tokens = 0;
        window_seconds = 0.0;
      }
      const bool epoch_end = state.cursor == num_micro;
      if (epoch_end) {
        ++state.epoch;
        state.cursor = 0;
      }
      const bool last_step = state.step >= total;
      const bool eval_due =
          stage_.eval.every_steps > 0 ? state.step % stage_.eval.every_steps == 0 : epoch_end;
      const bool checkpointed = eval_due || last_step;
      if (checkpointed) stop = evaluate_and_checkpoint(state) || last_step;
      bool interrupted = stop_requested != 0 || (options.interrupt_after_steps > 0 &&
                                                 state.step >= options.interrupt_after_steps);
      if (dist_.parallel()) interrupted = any_rank_stopping(interrupted);
      if (interrupted && !stop) {
        const fs::path dir =
            checkpoints_dir_ / (stage_.name + "-step" + std::to_string(state.step));
        if (!checkpointed) save(state, dir);
        stop_requested = 0;
        if (dist_.writes_files()) {
          std::printf("interrupted at step %lld: checkpoint %s; continue with --resume\n",
                      static_cast<long long>(state.step), dir.c_str());
        }
        return TrainStatus::kInterrupted;
      }
      if (epoch_end) break;
    }
  }
  best_checkpoint_ = state.best_checkpoint;
  write_final_metrics(state);
  return TrainStatus::kCompleted;
}

// The best checkpoint of a stage that already finished (its final metrics are written).
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

}  // namespace

void request_stop() { stop_requested = 1; }

namespace {

CommunicatorOptions communicator_options(const RunConfig& config, const LaunchInfo& launch) {
  CommunicatorOptions options;
  options.backend = config.distributed.backend;
  options.rank = launch.rank;
  options.world_size = launch.world_size;
  options.timeout = std::chrono::seconds(config.distributed.timeout_seconds);
  options.share_from_rank0 = [launch, timeout = options.timeout](const std::string& payload) {
    return rendezvous_share(launch, payload, timeout);
  };
  return options;
}

// Rank 0 resolves (and may write an aligned dataset) before the others read.
StageStart stage_start_on_every_rank(const RunConfig& config, size_t stage_index,
                                     const std::optional<fs::path>& previous_best,
                                     const Distributed& dist) {
  std::optional<StageStart> start;
  if (dist.writes_files()) start = resolve_stage_start(config, stage_index, previous_best, true);
  if (dist.parallel()) dist.comm->barrier();
  if (!start) start = resolve_stage_start(config, stage_index, previous_best, false);
  return std::move(*start);
}

}  // namespace

TrainStatus train(const RunConfig& config, const TrainerOptions& options) {
  const LaunchInfo& launch = options.launch;
  const Device device = parse_device(config.run.device);
  Context ctx =
      device == Device::kCuda ? Context::cuda(launch.local_rank) : Context::cpu(config.run.threads);
  std::unique_ptr<Communicator> comm = make_communicator(ctx, communicator_options(config, launch));
  const Distributed dist{{launch.rank, launch.world_size}, comm.get()};
  const fs::path run_dir(config.run.output_dir);
  const fs::path checkpoints = run_dir / "checkpoints";
  if (!options.resume && fs::exists(checkpoints) && !fs::is_empty(checkpoints)) {
    throw Error("run directory " + run_dir.string() +
                " already holds checkpoints: continue it with --resume, or set run.output_dir to "
                "a new directory");
  }
  std::optional<RunLog> log;
  if (dist.writes_files()) {
    fs::create_directories(run_dir);
    std::ofstream(run_dir / "config.resolved.yaml") << to_yaml(config);
    log.emplace(run_dir / "metrics.jsonl");
    if (dist.parallel())
      std::printf("data parallel: %d ranks, %s\n", launch.world_size, comm->backend().c_str());
  }
  std::optional<fs::path> previous_best;
  for (size_t i = 0; i < config.stages.size(); ++i) {
    const StageSection& stage = config.stages[i];
    if (options.resume) {
      if (std::optional<fs::path> done = finished_stage_checkpoint(run_dir, stage.name)) {
        if (dist.writes_files()) {
          std::printf("stage %s already finished: best checkpoint %s\n", stage.name.c_str(),
                      done->c_str());
        }
        previous_best = done;
        continue;
      }
    }
    StageStart start = stage_start_on_every_rank(config, i, previous_best, dist);
    Dataset data = Dataset::open(start.data_path);
    LeaveOneOutSplit split(data);
    if (dist.writes_files()) {
      std::printf(
          "recforge train, stage %s (%s) on %s (%d threads): %d users, %d items, %lld "
          "interactions, from %s\n",
          stage.name.c_str(), stage.objective.type.c_str(), device_name(ctx.device()).c_str(),
          device == Device::kCpu ? omp_get_max_threads() : 0, data.num_users(), data.num_items(),
          static_cast<long long>(data.num_interactions()),
          start.checkpoint ? start.checkpoint->c_str() : "scratch");
    }
    StageRunner runner(config, i, ctx, std::move(start), data, split, log ? &*log : nullptr, dist);
    if (runner.run(options) == TrainStatus::kInterrupted) return TrainStatus::kInterrupted;
    previous_best = runner.best_checkpoint();
  }
  return TrainStatus::kCompleted;
}

}  // namespace recforge
