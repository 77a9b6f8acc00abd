#include "tools/train_step_bench.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/decoder.h"
#include "model/vocabulary.h"
#include "tools/measured_peak.h"
#include "tools/model_flops.h"
#include "tools/synthetic.h"
#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/optim/optimizer.h"
#include "train/setup/finetune.h"
#include "train/setup/stage_start.h"
#include "train/tasks/stage_task.h"
#include "train/train_step.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

constexpr AttentionMask kMask = AttentionMask::kCausal;  // next-item training is causal

TrainStepShape resolve_shape(const TrainStepOptions& options) {
  TrainStepShape shape = train_step_preset(options.preset);
  const TrainStepShape& o = options.overrides;
  auto set = [](int& field, int value) {
    if (value > 0) field = value;
  };
  set(shape.sequences, o.sequences);
  set(shape.length, o.length);
  set(shape.vocab, o.vocab);
  set(shape.d_model, o.d_model);
  set(shape.layers, o.layers);
  set(shape.heads, o.heads);
  return shape;
}

// The benchmark's training data as a prepared dataset in a directory of its own, removed
// afterwards: `sequences` users with length + 3 events each, so that the leave-one-out split
// trains on length + 1 of them, one window of `length` input tokens; the items walk the synthetic
// successor table over vocab − 16 items, and the catalogue is every one of them
// (write_item_aligned_dataset), so the model's vocabulary is exactly `vocab`.
class BenchDataset {
 public:
  explicit BenchDataset(const TrainStepShape& shape)
      : dir_(fs::temp_directory_path() / concat("recforge-bench-", getpid())) {
    const int32_t num_items = shape.vocab - kFirstItemToken;
    RECFORGE_CHECK(num_items > 0, "--vocab ", shape.vocab, " leaves no item token (it needs more ",
                   "than the ", kFirstItemToken, " special tokens)");
    fs::create_directories(dir_);
    SyntheticSequences spec;
    spec.vocab_size = num_items;
    const PackedBatch walks =
        SyntheticSource(spec).next_batch(shape.sequences, shape.length + 3, shape.length + 3);
    std::ofstream log(dir_ / "log.csv");
    for (int b = 0; b < walks.num_sequences(); ++b) {
      for (int n = walks.offsets[b]; n < walks.offsets[b + 1]; ++n) {
        log << 'u' << b << ',' << walks.tokens[n] << '\n';
      }
    }
    log.close();
    PrepareOptions options;
    options.time_col = -1;
    prepare_dataset({dir_ / "log.csv"}, options, dir_ / "walks");
    std::vector<std::string> catalogue;
    for (int32_t i = 0; i < num_items; ++i) catalogue.push_back(std::to_string(i));
    write_item_aligned_dataset(Dataset::open(dir_ / "walks"), catalogue, path());
  }
  ~BenchDataset() { fs::remove_all(dir_); }
  BenchDataset(const BenchDataset&) = delete;
  BenchDataset& operator=(const BenchDataset&) = delete;

  fs::path path() const { return dir_ / "dataset"; }
  fs::path run_dir() const { return dir_ / "run"; }

 private:
  fs::path dir_;
};

// One next-item pre-training stage (nbp, K = 1, full softmax over the items) whose micro-batch is
// every sequence: what `recforge train` runs for such a config.
RunConfig bench_config(const TrainStepShape& shape, Precision precision, const BenchDataset& data) {
  RunConfig config;
  config.run.output_dir = data.run_dir().string();
  config.data.path = data.path().string();
  config.data.max_len = shape.length;
  config.model.d_model = shape.d_model;
  config.model.n_layer = shape.layers;
  config.model.n_head = shape.heads;
  config.model.dropout = 0.0f;
  config.model.precision = precision;
  StageSection stage;
  stage.name = "bench";
  stage.objective.type = ObjectiveType::kNbp;
  stage.train.batch_size = shape.sequences;
  stage.train.grad_clip = 1.0f;
  stage.eval.batch_size = shape.sequences;
  config.stages = {stage};
  return config;
}

struct StepTimes {
  double median = 0, min = 0, max = 0;  // milliseconds
};

// The trainer's step (train/train_step.h) over the stage's task, the host clock around each,
// synchronized, as benchmarks/train_step_pytorch.py measures.
StepTimes time_steps(const Context& ctx, const RunConfig& config, int warmup, int steps) {
  StageStart start = resolve_stage_start(config, 0, std::nullopt, ctx.device());
  const Dataset data = Dataset::open(start.data_path);
  const LeaveOneOutSplit split(data);
  std::unique_ptr<StageTask> task = make_stage_task(config, 0, ctx, data, split, {});
  Decoder<float> model(ctx, start.model_config, task->max_tokens());
  model.load_parameters(start.parameters);
  const StageSection& stage = config.stages[0];
  AdamW optimizer(ctx, set_up_finetuning(model, stage.finetune, start, config.run.seed),
                  AdamWConfig{stage.train.lr});
  task->prepare(model);
  std::vector<uint32_t> every_sequence(task->num_examples());
  std::iota(every_sequence.begin(), every_sequence.end(), 0u);
  const MicroBatch micro[] = {every_sequence};
  std::vector<double> times;
  for (int i = 0; i < warmup + steps; ++i) {
    auto begin = std::chrono::steady_clock::now();
    train_step(model, optimizer,
               [&](Decoder<float>& m) { return task->forward_backward(m, micro, i, DataShard{}); },
               {i, stage.train.lr, stage.train.grad_clip});
    ctx.synchronize();
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    if (i >= warmup) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  return {median, times.front(), times.back()};
}

// Everything one run reports.
struct TrainStepReport {
  const TrainStepOptions& options;
  const TrainStepShape& shape;
  const ModelConfig& config;
  std::string device;
  int threads;
  StepFlops flops;
  MeasuredPeaks peaks;
  StepTimes ms;

  double tokens_per_s() const { return flops.tokens / (ms.median / 1e3); }
  double achieved_tflops() const { return flops.training() / (ms.median * 1e9); }
  double mfu() const { return achieved_tflops() / peaks.reference(); }
  double own_peak() const { return peaks.of(config.precision); }
};

void print_report(const TrainStepReport& r) {
  std::printf("%.2f ms\n", r.ms.median);
  std::printf("train-step on %s, %s (%d threads): %s; preset %s, %d sequences x %d tokens\n",
              r.device.c_str(), r.peaks.device.c_str(), r.threads, r.config.describe().c_str(),
              r.options.preset.c_str(), r.shape.sequences, r.shape.length);
  std::printf(
      "median %.2f ms, min %.2f ms, max %.2f ms over %d steps after %d warm-up; %.0f "
      "tokens/s\n",
      r.ms.median, r.ms.min, r.ms.max, r.options.steps, r.options.warmup, r.tokens_per_s());
  std::printf(
      "model FLOPs per step %.4g = 3 x forward (%.4g matmul over %lld weights per token + "
      "%.4g attention over %.1f keys per token)\n",
      r.flops.training(), r.flops.matmul, static_cast<long long>(r.flops.matmul_parameters),
      r.flops.attention, r.flops.attended_keys / r.flops.tokens);
  std::printf("achieved %.3f TFLOP/s\n", r.achieved_tflops());
  std::string measured;
  for (auto [name, tflops] :
       {std::pair{"bf16", r.peaks.bf16}, {"tf32", r.peaks.tf32}, {"fp32", r.peaks.fp32}}) {
    if (tflops > 0) measured += concat(measured.empty() ? "" : ", ", name, " ", tflops);
  }
  std::printf("measured peak (%s): %s TFLOP/s\n", r.peaks.method.c_str(), measured.c_str());
  std::printf("MFU %.2f%% of the %s peak", 100 * r.mfu(), r.peaks.reference_precision());
  if (r.own_peak() > 0 && r.own_peak() != r.peaks.reference()) {
    std::printf("; %.2f%% of the %s peak", 100 * r.achieved_tflops() / r.own_peak(),
                precision_name(r.config.precision));
  }
  std::printf("\n");
}

// A peak of 0 (not measured) is JSON null.
nlohmann::json tflops_or_null(double tflops) {
  return tflops > 0 ? nlohmann::json(tflops) : nlohmann::json(nullptr);
}

// The fields of benchmarks/train_step_pytorch.py's --json, same names and units.
void write_json(const TrainStepReport& r, const std::string& path) {
  nlohmann::json record = {
      {"implementation", "recforge"},
      {"preset", r.options.preset},
      {"device", r.device},
      {"device_name", r.peaks.device},
      {"threads", r.threads},
      {"precision", precision_name(r.config.precision)},
      {"sequences", r.shape.sequences},
      {"length", r.shape.length},
      {"vocab", r.shape.vocab},
      {"d_model", r.shape.d_model},
      {"layers", r.shape.layers},
      {"heads", r.shape.heads},
      {"mlp_ratio", r.config.mlp_ratio},
      {"tokens_per_step", r.flops.tokens},
      {"warmup", r.options.warmup},
      {"steps", r.options.steps},
      {"ms", r.ms.median},
      {"ms_min", r.ms.min},
      {"ms_max", r.ms.max},
      {"tokens_per_s", r.tokens_per_s()},
      {"matmul_parameters", r.flops.matmul_parameters},
      {"flops_per_step", r.flops.training()},
      {"forward_flops_per_step", r.flops.forward()},
      {"attention_flops_per_step", r.flops.attention},
      {"achieved_tflops", r.achieved_tflops()},
      {"peak_method", r.peaks.method},
      {"peak_bf16_tflops", tflops_or_null(r.peaks.bf16)},
      {"peak_tf32_tflops", tflops_or_null(r.peaks.tf32)},
      {"peak_fp32_tflops", tflops_or_null(r.peaks.fp32)},
      {"peak_tflops", r.peaks.reference()},
      {"peak_precision", r.peaks.reference_precision()},
      {"mfu", r.mfu()},
      {"mfu_own_precision", r.own_peak() > 0 ? nlohmann::json(r.achieved_tflops() / r.own_peak())
                                             : nlohmann::json(nullptr)},
  };
  std::ofstream file(path);
  RECFORGE_CHECK(file << record.dump(2) << '\n', "cannot write ", path);
}

}  // namespace

TrainStepShape train_step_preset(const std::string& name) {
  if (name == "beauty") return {128, 50, 12102, 64, 2, 2};
  if (name == "gpt2-small") return {8, 1024, 50257, 768, 12, 12};
  throw Error(concat("unknown preset \"", name, "\" (expected beauty or gpt2-small)"));
}

void run_train_step_bench(const TrainStepOptions& options) {
  Device device = parse_device(options.device);
  Context ctx = device == Device::kCuda ? Context::cuda() : Context::cpu(options.threads);
  const TrainStepShape shape = resolve_shape(options);
  const BenchDataset data(shape);
  const RunConfig run = bench_config(shape, parse_precision(options.precision), data);
  const ModelConfig config = model_config_for(run, shape.vocab - kFirstItemToken);
  config.validate();
  const std::vector<int32_t> lengths(shape.sequences, shape.length);
  TrainStepReport report{options,
                         shape,
                         config,
                         device_name(ctx.device()),
                         device == Device::kCpu ? omp_get_max_threads() : 0,
                         train_step_flops(config, lengths, kMask),
                         measure_gemm_peaks(ctx, options.peak_size),
                         {}};
  report.ms = time_steps(ctx, run, options.warmup, options.steps);
  print_report(report);
  if (!options.json.empty()) write_json(report, options.json);
}

}  // namespace recforge
