// `recforge bench train-step`: times one full training step (forward, fused full-softmax loss over
// the vocabulary, backward, AdamW) of the reference benchmark model and prints the median step
// time as "N ms" on its first line. benchmarks/train_step_vs_pytorch.sh compares it with PyTorch.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "model/decoder.h"
#include "tools/commands.h"
#include "train/optimizer.h"
#include "train/step.h"
#include "train/synthetic.h"

namespace recforge {
namespace {

struct TrainStepBench {
  std::string device = "cpu";
  int threads = 0;
  int warmup = 3;
  int repeats = 20;
  int sequences = 128;
  int length = 50;
  int vocab_size = 12102;
  int d_model = 64;
  int n_layer = 2;
  int n_head = 2;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

void run_train_step_bench(const TrainStepBench& options) {
  Device device = parse_device(options.device);
  Context ctx = device == Device::kCuda ? Context::cuda() : Context::cpu(options.threads);
  ModelConfig config;
  config.vocab_size = options.vocab_size;
  config.max_len = options.length;
  config.d_model = options.d_model;
  config.n_layer = options.n_layer;
  config.n_head = options.n_head;
  SyntheticSequences spec;
  spec.vocab_size = options.vocab_size;
  PackedBatch host =
      SyntheticSource(spec).next_batch(options.sequences, options.length, options.length);
  DeviceBatch batch(ctx.device(), host, config);
  Decoder<float> model(ctx, config, host.num_tokens());
  AdamW optimizer(
      ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{});

  std::vector<double> times;
  for (int i = 0; i < options.warmup + options.repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    train_step(model, optimizer, batch, {AttentionMask::kCausal, true, 0}, 1e-3f, 1.0f);
    ctx.synchronize();
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (i >= options.warmup) times.push_back(ms);
  }
  double med = median(times);
  std::printf("%.2f ms\n", med);
  std::printf("train-step on %s (%d threads): %s; %d sequences x %d tokens\n",
              device_name(ctx.device()).c_str(), device == Device::kCpu ? omp_get_max_threads() : 0,
              config.describe().c_str(), options.sequences, options.length);
  std::printf("median %.2f ms, min %.2f ms, max %.2f ms over %d steps; %.0f tokens/s\n", med,
              *std::min_element(times.begin(), times.end()),
              *std::max_element(times.begin(), times.end()), options.repeats,
              host.num_tokens() / (med / 1000.0));
}

}  // namespace

void register_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto options = std::make_shared<TrainStepBench>();
  CLI::App* step = bench->add_subcommand(
      "train-step", "Median time of a full training step (forward, loss, backward, AdamW)");
  step->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  step->add_option("--threads", options->threads, "CPU threads (default: all)");
  step->add_option("--warmup", options->warmup, "untimed steps first")->capture_default_str();
  step->add_option("--repeats", options->repeats, "timed steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  step->add_option("--sequences", options->sequences, "sequences per batch")->capture_default_str();
  step->add_option("--length", options->length, "tokens per sequence")->capture_default_str();
  step->add_option("--vocab", options->vocab_size, "vocabulary size")->capture_default_str();
  step->add_option("--d-model", options->d_model, "model width")->capture_default_str();
  step->add_option("--layers", options->n_layer, "layers")->capture_default_str();
  step->add_option("--heads", options->n_head, "attention heads")->capture_default_str();
  step->callback([options] { run_train_step_bench(*options); });
  register_kernel_bench_command(*bench);
}

}  // namespace recforge
