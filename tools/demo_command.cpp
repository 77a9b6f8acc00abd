// `recforge demo`: trains the decoder on generated token sequences with planted structure and
// prints the loss going down — the bundled default job, on the GPU when there is one.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "model/decoder.h"
#include "tools/commands.h"
#include "tools/synthetic.h"
#include "train/optim/optimizer.h"
#include "train/tasks/next_token.h"
#include "train/train_step.h"

namespace recforge {
namespace {

struct DemoOptions {
  std::string device = "auto";
  int steps = 300;
  int batch_size = 64;
  int max_len = 32;
  int vocab_size = 1000;
  float lr = 3e-3f;
  uint64_t seed = 1;
};

// The cross-entropy of the generator's own next-token distribution: no model can go below it.
double entropy_floor(const SyntheticSequences& spec) {
  double jump = spec.jump_probability / spec.vocab_size;
  double successor = (1.0 - spec.jump_probability) / spec.successors + jump;
  return -spec.successors * successor * std::log(successor) -
         (spec.vocab_size - spec.successors) * jump * std::log(jump);
}

void run_demo(const DemoOptions& options) {
  Context ctx = Context::create(parse_device(options.device));
  ModelConfig config;
  config.vocab_size = options.vocab_size;
  config.max_len = options.max_len;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  SyntheticSequences spec;
  spec.vocab_size = options.vocab_size;
  spec.seed = options.seed;
  SyntheticSource source(spec);

  const int max_tokens = options.batch_size * options.max_len;
  Decoder<float> model(ctx, config, max_tokens);
  model.load_parameters(initial_parameters(config, model.layout(), options.seed));
  AdamW optimizer(
      ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{options.lr, 0.9f, 0.95f, 1e-8f, 0.01f});
  std::printf("recforge demo on %s: %s, %lld parameters\n", device_name(ctx.device()).c_str(),
              config.describe().c_str(), static_cast<long long>(model.layout().total_size()));
  std::printf("next-token loss on generated sequences (entropy floor %.3f, uniform guess %.3f)\n",
              entropy_floor(spec), std::log(static_cast<double>(options.vocab_size)));

  auto start = std::chrono::steady_clock::now();
  double first_loss = 0.0, recent = 0.0;
  int64_t tokens = 0;
  for (int step = 1; step <= options.steps; ++step) {
    PackedBatch host = source.next_batch(options.batch_size, options.max_len / 2, options.max_len);
    DeviceBatch batch(ctx.device(), host, config);
    const ForwardOptions forward{AttentionMask::kCausal, true, options.seed + step};
    const StepResult result = train_step(
        model, optimizer, [&](Decoder<float>& m) { return next_token_pass(m, batch, forward); },
        {step - 1, options.lr, 1.0f});
    const double loss = result.losses.loss;
    if (step == 1) first_loss = loss;
    recent = step == 1 ? loss : 0.9 * recent + 0.1 * loss;
    tokens += host.num_tokens();
    if (step % 25 == 0 || step == 1 || step == options.steps) {
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf(
          "step %4d/%d  loss %.4f  (smoothed %.4f)  grad norm %.3f  %.0f tokens/s  ETA %.0fs\n",
          step, options.steps, loss, recent, result.grad_norm, tokens / seconds,
          seconds / step * (options.steps - step));
      std::fflush(stdout);
    }
  }
  std::printf("loss went from %.4f to %.4f (smoothed)\n", first_loss, recent);
}

}  // namespace

void register_demo_command(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "Train the decoder on generated token sequences and print the loss going down");
  demo->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  demo->add_option("--steps", options->steps, "training steps")
      ->capture_default_str()
      ->check(at_least(1));
  demo->add_option("--batch-size", options->batch_size, "sequences per batch")
      ->capture_default_str()
      ->check(at_least(1));
  demo->add_option("--vocab", options->vocab_size, "vocabulary size")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 24));
  demo->add_option("--lr", options->lr, "learning rate")->capture_default_str();
  demo->add_option("--seed", options->seed, "random seed")->capture_default_str();
  demo->callback([options] { run_demo(*options); });
}

}  // namespace recforge
