#include "train/trainer.h"

#include <omp.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "kernels/check.h"
#include "kernels/nvtx.h"
#include "model/decoder.h"
#include "model/durable_file.h"
#include "train/checkpointing.h"
#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/dist/communicator.h"
#include "train/dist/data_parallel.h"
#include "train/dist/rendezvous.h"
#include "train/optim/optimizer.h"
#include "train/optim/schedule.h"
#include "train/run_directory.h"
#include "train/setup/finetune.h"
#include "train/setup/stage_start.h"
#include "train/tasks/stage_task.h"
#include "train/tasks/training_data.h"
#include "train/train_step.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

volatile std::sig_atomic_t stop_requested = 0;

// One stage of the configuration: its model, optimizer and task, the loop and its checkpoints.
class StageRunner {
 public:
  // `log` is null on every rank but 0, which alone writes the run directory.
  StageRunner(const RunConfig& config, size_t stage_index, const Context& ctx, StageStart start,
              const Dataset& data, const LeaveOneOutSplit& split, RunLog* log,
              const Distributed& dist);
  TrainStatus run(const TrainerOptions& options);
  fs::path best_checkpoint() const { return checkpoints_.directory() / best_checkpoint_; }

 private:
  std::vector<size_t> micro_batches(const std::vector<uint32_t>& order) const;
  int64_t planned_steps() const;
  void check_position(const LoopState& state, const fs::path& file) const;
  StepResult step(const std::vector<uint32_t>& order, const std::vector<size_t>& micro,
                  size_t first, size_t last, const StepSettings& settings);
  std::vector<ParameterGroup> set_up_model();
  bool overlaps_gradient_reduction() const;
  bool any_rank_stopping(bool stopping) const;
  bool evaluate_and_checkpoint(LoopState& state);
  void write_final_metrics(const LoopState& state);
  void log_step(const LoopState& state, const StepResult& result, float lr, int64_t tokens,
                double seconds, const Progress& progress);

  const RunConfig& config_;
  const StageSection& stage_;
  StageStart start_;
  RunLog* log_;
  Distributed dist_;
  fs::path run_dir_;
  std::unique_ptr<StageTask> task_;
  Decoder<float> model_;
  AdamW optimizer_;
  StageCheckpoints checkpoints_;
  std::string best_checkpoint_;
};

// The settings that decide which examples and batches each step sees, by their config keys: a
// resume checks them against the checkpoint's.
json data_order(const RunConfig& config, const StageSection& stage, const StageStart& start) {
  const ObjectiveSection& o = stage.objective;
  return {{"run.seed", config.run.seed},
          {"data.path", start.data_path.string()},
          {"data.max_len", config.data.max_len},
          {"data.split", name_of(config.data.split)},
          {"data.sliding_windows", config.data.sliding_windows},
          {"objective.type", name_of(o.type)},
          {"objective.next_k", o.next_k},
          {"objective.mask_ratio", o.mask_ratio},
          {"objective.task", name_of(o.task)},
          {"objective.examples_per_user", o.examples_per_user},
          {"objective.dpo.pairs", name_of(o.dpo.pairs)},
          {"objective.dpo.rejected", o.dpo.rejected},
          {"objective.dpo.pairs_per_user", o.dpo.pairs_per_user},
          {"train.batch_size", stage.train.batch_size},
          {"train.token_budget", stage.train.token_budget},
          {"train.grad_accum", stage.train.grad_accum}};
}

json recorded_state(const StageTask& task, const RunConfig& config, const StageSection& stage,
                    const StageStart& start) {
  json recorded = task.inference_state();
  recorded.update({{"data_path", start.data_path.string()},
                   {"max_len", config.data.max_len},
                   {"seed", config.run.seed},
                   {"data_order", data_order(config, stage, start)}});
  return recorded;
}

StageRunner::StageRunner(const RunConfig& config, size_t stage_index, const Context& ctx,
                         StageStart start, const Dataset& data, const LeaveOneOutSplit& split,
                         RunLog* log, const Distributed& dist)
    : config_(config),
      stage_(config.stages[stage_index]),
      start_(std::move(start)),
      log_(log),
      dist_(dist),
      run_dir_(config.run.output_dir),
      task_(make_stage_task(config, stage_index, ctx, data, split, dist)),
      model_(ctx, start_.model_config, task_->max_tokens()),
      optimizer_(ctx, set_up_model(),
                 AdamWConfig{stage_.train.lr, stage_.train.beta1, stage_.train.beta2,
                             stage_.train.eps, stage_.train.weight_decay},
                 dist.comm, config.distributed.zero1),
      checkpoints_(run_dir_, stage_.name, dist, recorded_state(*task_, config, stage_, start_),
                   item_ids_of(data)) {
  RECFORGE_CHECK(task_->num_examples() > 0, "stage ", stage_.name, ": the dataset at ",
                 data.directory().string(), " gives no training example for the objective");
  if (overlaps_gradient_reduction()) {
    Communicator* comm = dist.comm;
    model_.set_gradient_reducer([comm](float* gradient, int64_t count) {
      NvtxRange range("gradient all-reduce (bucket)");
      comm->start_all_reduce_sum(gradient, static_cast<size_t>(count));
    });
  }
}

// Loads the starting weights and sets up what the stage trains (train/setup/finetune.h).
std::vector<ParameterGroup> StageRunner::set_up_model() {
  model_.load_parameters(start_.parameters);
  start_.parameters.clear();
  return set_up_finetuning(model_, stage_.finetune, start_, config_.run.seed);
}

// Whether the gradients are reduced tensor by tensor during each step's last backward
// (overlapped with the rest of it): with several ranks, the whole model trained and no ZeRO-1.
bool StageRunner::overlaps_gradient_reduction() const {
  return dist_.parallel() && config_.distributed.overlap && !optimizer_.zero1() &&
         optimizer_.groups().size() == 1 && !model_.has_lora() &&
         optimizer_.groups()[0].size == model_.layout().total_size();
}

std::vector<size_t> StageRunner::micro_batches(const std::vector<uint32_t>& order) const {
  return plan_micro_batches(order, stage_.train.batch_size, stage_.train.token_budget,
                            [&](uint32_t e) { return task_->example_tokens(e); });
}

// The stage's optimizer steps, from epoch 0's plan (the schedule's length).
int64_t StageRunner::planned_steps() const {
  const std::vector<uint32_t> order = shuffled_order(task_->num_examples(), config_.run.seed, 0);
  const int64_t micro = static_cast<int64_t>(micro_batches(order).size() - 1);
  const int64_t per_epoch = (micro + stage_.train.grad_accum - 1) / stage_.train.grad_accum;
  const int64_t all = per_epoch * stage_.train.epochs;
  return stage_.train.max_steps > 0 ? std::min(all, stage_.train.max_steps) : all;
}

// A resumed loop state must point into this stage's plan: an epoch it has (or the end of the
// last one) and a micro-batch of that epoch.
void StageRunner::check_position(const LoopState& state, const fs::path& file) const {
  const int epochs = stage_.train.epochs;
  RECFORGE_CHECK(state.epoch <= epochs, file.string(), ": loop.epoch: expected at most ",
                 "train.epochs (", epochs, "), got ", state.epoch);
  const size_t num_micro =
      state.epoch < epochs
          ? micro_batches(shuffled_order(task_->num_examples(), config_.run.seed, state.epoch))
                    .size() -
                1
          : 1;
  RECFORGE_CHECK(state.cursor < num_micro, file.string(),
                 ": loop.cursor: expected a micro-batch of epoch ", state.epoch, " (below ",
                 num_micro, "), got ", state.cursor);
}

// The optimizer step over micro-batches micro[first, last) of the epoch's order.
StepResult StageRunner::step(const std::vector<uint32_t>& order, const std::vector<size_t>& micro,
                             size_t first, size_t last, const StepSettings& settings) {
  std::vector<MicroBatch> batches;
  for (size_t m = first; m < last; ++m) {
    batches.emplace_back(order.data() + micro[m], micro[m + 1] - micro[m]);
  }
  auto passes = [&](Decoder<float>& model) {
    return task_->forward_backward(model, batches, settings.step, dist_.shard);
  };
  try {
    return train_step(model_, optimizer_, passes, settings, dist_);
  } catch (const Error& e) {
    throw Error(concat(e.what(), "; the last good checkpoint is the latest in ",
                       checkpoints_.directory().string()));
  }
}

// A signal reaches the ranks at different moments; they stop together after the step in which
// any of them saw it.
bool StageRunner::any_rank_stopping(bool stopping) const {
  std::vector<double> flag = {stopping ? 1.0 : 0.0};
  dist_.sum(flag);
  return flag[0] > 0.0;
}

// Validation, a checkpoint, and the early-stopping bookkeeping. Returns true to stop.
bool StageRunner::evaluate_and_checkpoint(LoopState& state) {
  NvtxRange range("evaluation");
  const SelectionMetric& metric = stage_.eval.metric;
  Progress timer(0, 1);
  Metrics metrics;
  try {
    metrics = task_->evaluate(model_, Split::kValid);
  } catch (const Error& e) {
    throw Error("validation at step " + std::to_string(state.step) + " failed, nothing saved (" +
                e.what() + "); the last good checkpoint is the latest in " +
                checkpoints_.directory().string());
  }
  RECFORGE_CHECK(metrics.count(metric.key), "stage ", stage_.name, ": eval.metric ", metric.key,
                 " is not one of the metrics this objective reports");
  const double value = metrics.at(metric.key);
  const double score = metric.higher_is_better ? value : -value;
  const fs::path dir = checkpoints_.at_step(state.step);
  const bool improved = state.best_step < 0 || score > state.best_metric;
  if (improved) {
    state.best_metric = score;
    state.best_step = state.step;
    state.best_checkpoint = dir.filename().string();
    state.evals_without_improvement = 0;
  } else {
    ++state.evals_without_improvement;
  }
  checkpoints_.save(dir, model_, optimizer_, state);
  checkpoints_.prune(state, dir);
  const bool stop =
      stage_.eval.patience > 0 && state.evals_without_improvement >= stage_.eval.patience;
  if (!log_) return stop;
  json event = {{"stage", stage_.name}, {"step", state.step}, {"epoch", state.epoch}};
  for (const auto& [key, v] : metrics) event["valid/" + key] = v;
  event["eval_seconds"] = timer.elapsed_seconds();
  log_->write(event);
  const double best = metric.higher_is_better ? state.best_metric : -state.best_metric;
  std::printf("%s step %lld: valid %s %.4f (best %.4f at step %lld)%s, %.1fs\n",
              stage_.name.c_str(), static_cast<long long>(state.step), metric.key.c_str(), value,
              best, static_cast<long long>(state.best_step), improved ? " *" : "",
              timer.elapsed_seconds());
  std::fflush(stdout);
  return stop;
}

void StageRunner::write_final_metrics(const LoopState& state) {
  load_checkpoint_weights(checkpoints_.directory() / state.best_checkpoint, model_);
  json result = task_->final_report(model_);
  result.update(task_->inference_state());
  result.update({{"stage", stage_.name},
                 {"best_step", state.best_step},
                 {"best_checkpoint", state.best_checkpoint},
                 {"epochs", state.epoch},
                 {"train_seconds", state.train_seconds}});
  if (!dist_.writes_files()) return;
  const std::string text = result.dump(2) + "\n";
  write_file_atomically(run_dir_ / ("final_metrics-" + stage_.name + ".json"), text);
  write_file_atomically(run_dir_ / "final_metrics.json", text);
  std::printf("%s done (best step %lld):", stage_.name.c_str(),
              static_cast<long long>(state.best_step));
  for (const char* key : {"test/hr@10", "test/ndcg@10", "test_sampled/hr@10",
                          "test_sampled/ndcg@10", "test/auc", "test/rmse", "test/mae"}) {
    if (result.contains(key)) std::printf(" %s %.4f", key, result[key].get<double>());
  }
  std::printf("; written to %s\n", (run_dir_ / ("final_metrics-" + stage_.name + ".json")).c_str());
}

void StageRunner::log_step(const LoopState& state, const StepResult& result, float lr,
                           int64_t tokens, double seconds, const Progress& progress) {
  const double tokens_per_s = seconds > 0 ? tokens / seconds : 0.0;
  const StepLosses& losses = result.losses;
  json event = {
      {"stage", stage_.name},        {"step", state.step}, {"epoch", state.epoch},
      {"loss", losses.loss},         {"lr", lr},           {"grad_norm", result.grad_norm},
      {"tokens_per_s", tokens_per_s}};
  if (losses.parts.is_object()) event.update(losses.parts);
  log_->write(event);
  std::printf("%s epoch %d step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %s\n",
              stage_.name.c_str(), state.epoch + 1, static_cast<long long>(state.step),
              static_cast<long long>(progress.total()), losses.loss, lr, tokens_per_s,
              format_duration(progress.eta_seconds()).c_str());
  std::fflush(stdout);
}

TrainStatus StageRunner::run(const TrainerOptions& options) {
  fs::create_directories(checkpoints_.directory());
  LoopState state;
  if (options.resume) {
    if (std::optional<fs::path> latest = checkpoints_.resume_point()) {
      state = checkpoints_.restore(*latest, model_, optimizer_, options.allow_config_change);
      check_position(state, *latest / "trainer_state.json");
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
      const float lr = learning_rate(train, state.step, total);
      const StepResult result =
          step(order, micro, state.cursor, last, {state.step, lr, train.grad_clip});
      state.cursor = last;
      ++state.step;
      state.train_seconds += timer.elapsed_seconds();
      window_seconds += timer.elapsed_seconds();
      window_tokens += result.losses.tokens;
      progress.update(state.step);
      if (log_ && state.step % config_.run.log_every_steps == 0) {
        log_step(state, result, lr, window_tokens, window_seconds, progress);
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
        const fs::path dir = checkpoints_.at_step(state.step);
        if (!checkpointed) checkpoints_.save(dir, model_, optimizer_, state);
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
                                     const std::optional<fs::path>& previous_best, Device device,
                                     const Distributed& dist) {
  std::optional<StageStart> start;
  if (dist.writes_files()) {
    start = resolve_stage_start(config, stage_index, previous_best, device, true);
  }
  if (dist.parallel()) dist.comm->barrier();
  if (!start) start = resolve_stage_start(config, stage_index, previous_best, device, false);
  return std::move(*start);
}

}  // namespace

void request_stop() { stop_requested = 1; }

bool take_stop_request() {
  const bool requested = stop_requested != 0;
  stop_requested = 0;
  return requested;
}

TrainStatus train(const RunConfig& config, const TrainerOptions& options) {
  require_datasets(config);
  const LaunchInfo& launch = options.launch;
  const Device device = resolve_device(config.run.device);
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
  std::optional<RunLock> lock;
  std::optional<RunLog> log;
  if (dist.writes_files()) {
    fs::create_directories(run_dir);
    lock.emplace(run_dir);
    write_file_atomically(run_dir / "config.resolved.yaml", to_yaml(config));
    log.emplace(run_dir / "metrics.jsonl");
    if (dist.parallel()) {
      std::printf("data parallel: %d ranks, %s\n", launch.world_size,
                  comm_backend_name(comm->backend()));
    }
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
    StageStart start = stage_start_on_every_rank(config, i, previous_best, ctx.device(), dist);
    Dataset data = Dataset::open(start.data_path);
    LeaveOneOutSplit split(data);
    if (dist.writes_files()) {
      std::printf(
          "recforge train, stage %s (%s) on %s (%d threads): %d users, %d items, %lld "
          "interactions, from %s\n",
          stage.name.c_str(), name_of(stage.objective.type).c_str(),
          device_name(ctx.device()).c_str(), device == Device::kCpu ? omp_get_max_threads() : 0,
          data.num_users(), data.num_items(), static_cast<long long>(data.num_interactions()),
          start.checkpoint ? start.checkpoint->c_str() : "scratch");
    }
    StageRunner runner(config, i, ctx, std::move(start), data, split, log ? &*log : nullptr, dist);
    if (runner.run(options) == TrainStatus::kInterrupted) return TrainStatus::kInterrupted;
    previous_best = runner.best_checkpoint();
  }
  return TrainStatus::kCompleted;
}

}  // namespace recforge
