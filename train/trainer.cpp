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
#include "model/checkpoint.h"
#include "model/decoder.h"
#include "model/vocabulary.h"
#include "train/dataset.h"
#include "train/eval_cases.h"
#include "train/item_loss.h"
#include "train/optimizer.h"
#include "train/run_log.h"
#include "train/schedule.h"
#include "train/split.h"
#include "train/step.h"
#include "train/training_data.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

volatile std::sig_atomic_t stop_requested = 0;

bool uses_nbp(const ObjectiveSection& objective) { return objective.type != "mbp"; }
bool uses_mbp(const ObjectiveSection& objective) { return objective.type != "nbp"; }

ModelConfig model_config(const RunConfig& config, int32_t num_items) {
  ModelConfig model;
  model.vocab_size = vocabulary_size(num_items);
  model.max_len = config.data.max_len;
  model.d_model = config.model.d_model;
  model.n_layer = config.model.n_layer;
  model.n_head = config.model.n_head;
  model.mlp_ratio = config.model.mlp_ratio;
  model.dropout = config.model.dropout;
  return model;
}

ItemLossConfig item_loss_config(const ObjectiveSection& objective, std::vector<float> k_weights) {
  return {objective.loss == "sampled_softmax", objective.negatives,
          objective.sampling == "popularity", objective.temperature, std::move(k_weights)};
}

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

// One stage of the configuration over a prepared dataset.
class StageRunner {
 public:
  StageRunner(const RunConfig& config, const StageSection& stage, const Context& ctx,
              const Dataset& data, const LeaveOneOutSplit& split, RunLog& log);
  TrainStatus run(const TrainerOptions& options);

 private:
  int max_tokens() const;
  void build_eval_cases();
  int64_t steps_per_epoch(int epoch) const;
  int64_t planned_steps() const;
  float train_step(const std::vector<uint32_t>& order, const std::vector<size_t>& micro,
                   size_t first, size_t last, int64_t* tokens, double* loss_mbp, double* loss_nbp);
  bool evaluate_and_checkpoint(LoopState& state);
  void save(const LoopState& state, const fs::path& dir);
  void prune_checkpoints(const LoopState& state, const fs::path& newest);
  void restore(const fs::path& dir, LoopState& state);
  RankingMetrics evaluate(Split split, const std::string& protocol);
  void write_final_metrics(const LoopState& state);
  void log_step(const LoopState& state, float loss, double mbp, double nbp, float lr, float norm,
                int64_t tokens, double seconds, const Progress& progress);
  uint64_t stream_of(int64_t step, size_t micro, int pass) const;
  void check_finite_parameters(int64_t step);

  const RunConfig& config_;
  const StageSection& stage_;
  Context ctx_;
  const Dataset& data_;
  const LeaveOneOutSplit& split_;
  RunLog& log_;
  fs::path run_dir_, checkpoints_dir_;
  ModelConfig model_config_;
  std::vector<int64_t> train_counts_;
  TrainingWindows windows_;
  Decoder<float> model_;
  AdamW optimizer_;
  std::unique_ptr<ItemLoss> nbp_loss_, mbp_loss_;
  EvalCases valid_, test_;
  bool masked_inference_;
};

StageRunner::StageRunner(const RunConfig& config, const StageSection& stage, const Context& ctx,
                         const Dataset& data, const LeaveOneOutSplit& split, RunLog& log)
    : config_(config),
      stage_(stage),
      ctx_(ctx),
      data_(data),
      split_(split),
      log_(log),
      run_dir_(config.run.output_dir),
      checkpoints_dir_(run_dir_ / "checkpoints"),
      model_config_(model_config(config, data.num_items())),
      train_counts_(split.train_item_counts()),
      windows_(split, data.num_users(), config.data.max_len + (uses_nbp(stage.objective) ? 1 : 0),
               config.data.sliding_windows, uses_nbp(stage.objective) ? 2 : 1),
      model_(ctx, model_config_, max_tokens()),
      optimizer_(
          ctx,
          {whole_buffer(model_.parameters(), model_.gradients(), model_.layout().num_decayed())},
          AdamWConfig{stage.train.lr, stage.train.beta1, stage.train.beta2, stage.train.eps,
                      stage.train.weight_decay}),
      masked_inference_(!uses_nbp(stage.objective)) {
  RECFORGE_CHECK(windows_.size() > 0, "the dataset at ", data.directory().string(),
                 " has no training sequence long enough for the objective");
  const ObjectiveSection& objective = stage.objective;
  if (uses_nbp(objective)) {
    nbp_loss_ =
        std::make_unique<ItemLoss>(ctx, item_loss_config(objective, objective.next_k_weights),
                                   data.num_items(), train_counts_, max_tokens());
  }
  if (uses_mbp(objective)) {
    mbp_loss_ = std::make_unique<ItemLoss>(ctx, item_loss_config(objective, {}), data.num_items(),
                                           train_counts_, max_tokens());
  }
  model_.load_parameters(initial_parameters(model_config_, model_.layout(), config.run.seed,
                                            config.model.init_std,
                                            config.model.embedding_init_std));
  build_eval_cases();
}

int StageRunner::max_tokens() const {
  const int len = config_.data.max_len;
  const int train = stage_.train.token_budget > 0 ? std::max(stage_.train.token_budget, len + 1)
                                                  : stage_.train.batch_size * (len + 1);
  return std::max(train, stage_.eval.batch_size * len);
}

void StageRunner::build_eval_cases() {
  valid_ = evaluation_cases(data_, split_, Split::kValid, stage_.eval.exclude_history);
  test_ = evaluation_cases(data_, split_, Split::kTest, stage_.eval.exclude_history);
}

int64_t StageRunner::steps_per_epoch(int epoch) const {
  std::vector<uint32_t> order = windows_.epoch_order(config_.run.seed, epoch);
  const int64_t micro = static_cast<int64_t>(
      windows_.micro_batches(order, stage_.train.batch_size, stage_.train.token_budget).size() - 1);
  return (micro + stage_.train.grad_accum - 1) / stage_.train.grad_accum;
}

int64_t StageRunner::planned_steps() const {
  const int64_t per_epoch = steps_per_epoch(0);
  const int64_t all = per_epoch * stage_.train.epochs;
  return stage_.train.max_steps > 0 ? std::min(all, stage_.train.max_steps) : all;
}

// Keys the generator for one pass (0: NBP, 1: MBP, 2: negatives) of one micro-batch.
uint64_t StageRunner::stream_of(int64_t step, size_t micro, int pass) const {
  return (static_cast<uint64_t>(step) << 24) ^ (static_cast<uint64_t>(micro) << 4) ^
         static_cast<uint64_t>(pass);
}

// Forward and backward of every micro-batch in micro[first, last), gradients accumulated; returns
// the combined loss L = L_MBP + λ·L_NBP averaged over the micro-batches.
float StageRunner::train_step(const std::vector<uint32_t>& order, const std::vector<size_t>& micro,
                              size_t first, size_t last, int64_t* tokens, double* loss_mbp,
                              double* loss_nbp) {
  const ObjectiveSection& objective = stage_.objective;
  const float share = 1.0f / static_cast<float>(last - first);
  const float nbp_weight = uses_mbp(objective) ? objective.lambda : 1.0f;
  const uint64_t seed = config_.run.seed;
  const int64_t step = optimizer_.steps_taken();
  *loss_mbp = *loss_nbp = 0.0;
  model_.zero_gradients();
  for (size_t m = first; m < last; ++m) {
    std::vector<ItemSequence> sequences;
    for (size_t i = micro[m]; i < micro[m + 1]; ++i) sequences.push_back(windows_.items(order[i]));
    if (nbp_loss_) {
      ObjectiveBatch batch =
          make_next_items_batch(sequences, objective.next_k, config_.data.max_len);
      DeviceBatch device_batch(ctx_.device(), batch.inputs, model_config_);
      model_.forward(device_batch, {AttentionMask::kCausal, true, seed ^ stream_of(step, m, 0)});
      *loss_nbp += share * nbp_loss_->compute(model_, batch, share * nbp_weight, true, seed,
                                              stream_of(step, m, 2));
      model_.backward(device_batch);
      *tokens += batch.inputs.num_tokens();
    }
    if (mbp_loss_) {
      for (ItemSequence& s : sequences) {
        if (s.size() > static_cast<size_t>(config_.data.max_len)) s = s.last(config_.data.max_len);
      }
      ObjectiveBatch batch = make_masked_items_batch(
          sequences, objective.mask_ratio, config_.data.max_len, seed, stream_of(step, m, 1));
      DeviceBatch device_batch(ctx_.device(), batch.inputs, model_config_);
      model_.forward(device_batch,
                     {AttentionMask::kBidirectional, true, seed ^ stream_of(step, m, 1)});
      *loss_mbp +=
          share * mbp_loss_->compute(model_, batch, share, true, seed, stream_of(step, m, 3));
      model_.backward(device_batch);
      *tokens += batch.inputs.num_tokens();
    }
  }
  const double loss = (mbp_loss_ ? *loss_mbp : 0.0) + (nbp_loss_ ? nbp_weight * *loss_nbp : 0.0);
  check_finite_loss(loss, static_cast<int>(step + 1));
  return static_cast<float>(loss);
}

// A divergence that overflows the parameters stops the run before anything is evaluated or saved,
// so the last checkpoint on disk stays the last good one.
void StageRunner::check_finite_parameters(int64_t step) {
  const float norm = global_norm(ctx_, model_.parameters().data(), model_.layout().total_size());
  RECFORGE_CHECK(std::isfinite(norm), "training diverged at step ", step,
                 ": the parameters' norm is ", norm, "; the last good checkpoint is the latest in ",
                 checkpoints_dir_.string(),
                 " (lower the learning rate or enable gradient clipping)");
}

RankingMetrics StageRunner::evaluate(Split which, const std::string& protocol) {
  const EvalCases& cases = which == Split::kValid ? valid_ : test_;
  EvalOptions options;
  options.ks = stage_.eval.ks;
  options.batch_size = stage_.eval.batch_size;
  options.masked = masked_inference_;
  if (protocol == "full")
    return evaluate_full_ranking(model_, data_.num_items(), cases.cases, options);
  const std::string name = which == Split::kValid ? "valid" : "test";
  const fs::path file = run_dir_ / ("negatives-" + name + ".txt");
  std::vector<std::vector<int32_t>> negatives;
  if (fs::exists(file)) {
    negatives = load_negatives(file);
  } else {
    std::span<const int64_t> popularity;
    if (stage_.eval.sampled_by == "popularity") popularity = train_counts_;
    negatives = sample_eval_negatives(cases.cases, cases.user_items, data_.num_items(),
                                      stage_.eval.sampled_negatives, popularity,
                                      config_.run.seed + (which == Split::kTest));
    save_negatives(file, negatives);
  }
  return evaluate_sampled(model_, cases.cases, negatives, options);
}

void StageRunner::save(const LoopState& state, const fs::path& dir) {
  CheckpointData data;
  data.model_config = model_config_;
  data.parameters = model_.parameters().download();
  data.adam_m = optimizer_.first_moment().download();
  data.adam_v = optimizer_.second_moment().download();
  data.trainer_state = {{"stage", stage_.name},
                        {"loop", to_json(state)},
                        {"adam_steps", optimizer_.steps_taken()},
                        {"data_path", config_.data.path},
                        {"max_len", config_.data.max_len},
                        {"inference", masked_inference_ ? "masked" : "causal"},
                        {"seed", config_.run.seed}};
  save_checkpoint(dir, data);
}

void StageRunner::prune_checkpoints(const LoopState& state, const fs::path& newest) {
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
  RECFORGE_CHECK(data.parameters.size() == static_cast<size_t>(model_.layout().total_size()),
                 "checkpoint ", dir.string(), " does not match the configured model");
  model_.load_parameters(data.parameters);
  optimizer_.restore(data.adam_m, data.adam_v, data.trainer_state.at("adam_steps").get<int>());
  state = loop_state_from(data.trainer_state.at("loop"));
}

// Validation, a checkpoint, and the early-stopping bookkeeping. Returns true to stop.
bool StageRunner::evaluate_and_checkpoint(LoopState& state) {
  const EvalSection& eval = stage_.eval;
  Progress timer(0, 1);
  RankingMetrics metrics(eval.ks);
  try {
    metrics = evaluate(Split::kValid, eval.protocol);
  } catch (const Error& e) {
    throw Error("validation at step " + std::to_string(state.step) + " failed, nothing saved (" +
                e.what() + "); the last good checkpoint is the latest in " +
                checkpoints_dir_.string());
  }
  const double value = metrics.metric(eval.metric);
  const fs::path dir = checkpoints_dir_ / (stage_.name + "-step" + std::to_string(state.step));
  const bool improved = value > state.best_metric;
  if (improved) {
    state.best_metric = value;
    state.best_step = state.step;
    state.best_checkpoint = dir.filename().string();
    state.evals_without_improvement = 0;
  } else {
    ++state.evals_without_improvement;
  }
  save(state, dir);
  prune_checkpoints(state, dir);
  json event = {{"stage", stage_.name}, {"step", state.step}, {"epoch", state.epoch}};
  for (const auto& [key, v] : metrics.as_map("valid")) event[key] = v;
  event["eval_seconds"] = timer.elapsed_seconds();
  log_.write(event);
  std::printf("%s step %lld: valid %s %.4f (best %.4f at step %lld)%s, %.1fs\n",
              stage_.name.c_str(), static_cast<long long>(state.step), eval.metric.c_str(), value,
              state.best_metric, static_cast<long long>(state.best_step), improved ? " *" : "",
              timer.elapsed_seconds());
  std::fflush(stdout);
  return eval.patience > 0 && state.evals_without_improvement >= eval.patience;
}

void StageRunner::write_final_metrics(const LoopState& state) {
  CheckpointData best = load_checkpoint(checkpoints_dir_ / state.best_checkpoint);
  model_.load_parameters(best.parameters);
  json result = {{"stage", stage_.name},
                 {"best_step", state.best_step},
                 {"best_checkpoint", state.best_checkpoint},
                 {"epochs", state.epoch},
                 {"train_seconds", state.train_seconds},
                 {"num_items", data_.num_items()},
                 {"num_test_users", test_.cases.size()},
                 {"inference", masked_inference_ ? "masked" : "causal"}};
  result["full_ranking_setting"] =
      stage_.eval.exclude_history
          ? "full ranking over all items, each user's earlier items excluded from the ranking"
          : "full ranking over all items, nothing excluded";
  for (Split which : {Split::kValid, Split::kTest}) {
    const std::string name = which == Split::kValid ? "valid" : "test";
    for (const auto& [k, v] : evaluate(which, "full").as_map(name)) result[k] = v;
    for (const auto& [k, v] : evaluate(which, "sampled").as_map(name + "_sampled")) {
      result[k] = v;
    }
  }
  result["sampled_setting"] = std::to_string(stage_.eval.sampled_negatives) + " " +
                              stage_.eval.sampled_by +
                              " negatives per user, never an item of the user, seeded and saved";
  std::ofstream(run_dir_ / "final_metrics.json") << result.dump(2) << "\n";
  std::printf(
      "%s done: test hr@10 %.4f ndcg@10 %.4f (full ranking), sampled hr@10 %.4f ndcg@10 "
      "%.4f; best step %lld; written to %s\n",
      stage_.name.c_str(), result.value("test/hr@10", 0.0), result.value("test/ndcg@10", 0.0),
      result.value("test_sampled/hr@10", 0.0), result.value("test_sampled/ndcg@10", 0.0),
      static_cast<long long>(state.best_step), (run_dir_ / "final_metrics.json").c_str());
}

void StageRunner::log_step(const LoopState& state, float loss, double mbp, double nbp, float lr,
                           float norm, int64_t tokens, double seconds, const Progress& progress) {
  const double tokens_per_s = seconds > 0 ? tokens / seconds : 0.0;
  json event = {{"stage", stage_.name},
                {"step", state.step},
                {"epoch", state.epoch},
                {"loss", loss},
                {"lr", lr},
                {"grad_norm", norm},
                {"tokens_per_s", tokens_per_s}};
  if (mbp_loss_) event["loss_mbp"] = mbp;
  if (nbp_loss_) event["loss_nbp"] = nbp;
  log_.write(event);
  std::printf("%s epoch %d step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %s\n",
              stage_.name.c_str(), state.epoch + 1, static_cast<long long>(state.step),
              static_cast<long long>(planned_steps()), loss, lr, tokens_per_s,
              format_duration(progress.eta_seconds()).c_str());
  std::fflush(stdout);
}

TrainStatus StageRunner::run(const TrainerOptions& options) {
  fs::create_directories(checkpoints_dir_);
  LoopState state;
  if (options.resume) {
    if (std::optional<fs::path> latest = latest_checkpoint(checkpoints_dir_)) {
      restore(*latest, state);
      std::printf("resumed %s from %s (step %lld)\n", stage_.name.c_str(), latest->c_str(),
                  static_cast<long long>(state.step));
    }
  }
  const TrainSection& train = stage_.train;
  const int64_t total = planned_steps();
  Progress progress(state.step, total);
  bool stop = state.step >= total;
  int64_t window_tokens = 0;
  double window_seconds = 0.0;
  while (!stop && state.epoch < train.epochs) {
    const std::vector<uint32_t> order = windows_.epoch_order(config_.run.seed, state.epoch);
    const std::vector<size_t> micro =
        windows_.micro_batches(order, train.batch_size, train.token_budget);
    const size_t num_micro = micro.size() - 1;
    while (!stop && state.cursor < num_micro) {
      const size_t last = std::min(num_micro, state.cursor + train.grad_accum);
      Progress timer(0, 1);
      double mbp = 0.0, nbp = 0.0;
      const float loss = train_step(order, micro, state.cursor, last, &window_tokens, &mbp, &nbp);
      const float lr = learning_rate(train, state.step, total);
      const float norm = optimizer_.step(lr, train.grad_clip);
      check_finite_parameters(state.step + 1);
      state.cursor = last;
      ++state.step;
      state.train_seconds += timer.elapsed_seconds();
      window_seconds += timer.elapsed_seconds();
      progress.update(state.step);
      if (state.step % config_.run.log_every_steps == 0) {
        log_step(state, loss, mbp, nbp, lr, norm, window_tokens, window_seconds, progress);
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
      if (eval_due || last_step) stop = evaluate_and_checkpoint(state) || last_step;
      const bool interrupted = stop_requested != 0 || (options.interrupt_after_steps > 0 &&
                                                       state.step >= options.interrupt_after_steps);
      if (interrupted && !stop) {
        const fs::path dir =
            checkpoints_dir_ / (stage_.name + "-step" + std::to_string(state.step));
        if (!fs::exists(dir)) save(state, dir);
        stop_requested = 0;
        std::printf("interrupted at step %lld: checkpoint %s; continue with --resume\n",
                    static_cast<long long>(state.step), dir.c_str());
        return TrainStatus::kInterrupted;
      }
      if (epoch_end) break;
    }
  }
  write_final_metrics(state);
  return TrainStatus::kCompleted;
}

}  // namespace

void request_stop() { stop_requested = 1; }

TrainStatus train(const RunConfig& config, const TrainerOptions& options) {
  RECFORGE_CHECK(config.stages.size() == 1,
                 "this version runs configurations with exactly one stage (pre-training); got ",
                 config.stages.size());
  const Device device = parse_device(config.run.device);
  Context ctx = device == Device::kCuda ? Context::cuda() : Context::cpu(config.run.threads);
  const fs::path run_dir(config.run.output_dir);
  const fs::path checkpoints = run_dir / "checkpoints";
  if (!options.resume && fs::exists(checkpoints) && !fs::is_empty(checkpoints)) {
    throw Error("run directory " + run_dir.string() +
                " already holds checkpoints: continue it with --resume, or set run.output_dir to "
                "a new directory");
  }
  fs::create_directories(run_dir);
  std::ofstream(run_dir / "config.resolved.yaml") << to_yaml(config);
  Dataset data = Dataset::open(config.data.path);
  LeaveOneOutSplit split(data);
  RunLog log(run_dir / "metrics.jsonl");
  std::printf("recforge train on %s (%d threads): %d users, %d items, %lld interactions\n",
              device_name(ctx.device()).c_str(), device == Device::kCpu ? omp_get_max_threads() : 0,
              data.num_users(), data.num_items(), static_cast<long long>(data.num_interactions()));
  StageRunner runner(config, config.stages[0], ctx, data, split, log);
  return runner.run(options);
}

}  // namespace recforge
