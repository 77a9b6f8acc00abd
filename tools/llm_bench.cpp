#include "tools/llm_bench.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/adamw.h"
#include "kernels/check.h"
#include "model/llama/generator.h"
#include "model/llama/load.h"

namespace recforge {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = id(rng);
  return tokens;
}

struct GenerationTimes {
  double prefill_tokens_per_s, decode_tokens_per_s;
};

// Median over repeats of the prompt's prefill, and of new_tokens − 1 greedy decode steps after it.
GenerationTimes time_generation(LlamaModel<float>& model, const LlmBenchOptions& options) {
  const std::vector<int32_t> prompt =
      random_tokens(options.prompt_tokens, model.config().vocab_size, 1);
  LlamaGenerator generator(model, options.prompt_tokens + options.new_tokens);
  std::vector<double> prefill, decode;
  std::mt19937_64 rng;
  for (int r = 0; r <= options.repeats; ++r) {  // the first is a warm-up
    generator.reset();
    auto start = Clock::now();
    std::span<const float> logits = generator.append(prompt);
    const double prefill_s = seconds_since(start);
    start = Clock::now();
    for (int step = 1; step < options.new_tokens; ++step) {
      const int32_t token = sample_token(logits, SamplingOptions{}, rng);
      logits = generator.append(std::span(&token, 1));
    }
    if (r == 0) continue;
    prefill.push_back(options.prompt_tokens / prefill_s);
    decode.push_back((options.new_tokens - 1) / seconds_since(start));
  }
  return {median(prefill), median(decode)};
}

// Median tokens/s of LoRA steps on lora_batch sequences of lora_length random tokens, the next
// token as target (the last position has none), like Hugging Face's labels = input_ids.
double time_lora_step(LlamaModel<float>& model, const LlmBenchOptions& options) {
  LlamaLoraConfig lora;
  lora.rank = options.lora_rank;
  lora.alpha = 2.0f * options.lora_rank;
  lora.targets = {"q_proj", "v_proj"};
  model.enable_lora(lora, 7);
  PackedBatch host = empty_batch();
  for (int b = 0; b < options.lora_batch; ++b) {
    std::vector<int32_t> tokens =
        random_tokens(options.lora_length + 1, model.config().vocab_size, 100 + b);
    std::vector<int32_t> targets(tokens.begin() + 1, tokens.end());
    tokens.pop_back();
    targets.back() = -1;
    host.add_sequence(tokens, targets);
  }
  const DeviceBatch batch(model.context().device(), host, model.config().batch_limits());
  const int64_t size = model.lora_layout().total_size();
  Buffer<float> m(model.context().device(), size), v(model.context().device(), size);
  m.zero(model.context());
  v.zero(model.context());
  const AdamWConfig adamw{1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};
  std::vector<double> rates;
  for (int step = 0; step <= options.steps; ++step) {  // the first is a warm-up
    const auto start = Clock::now();
    model.zero_gradients();
    model.forward(batch, {AttentionMask::kCausal, true, true, static_cast<uint64_t>(step)});
    model.output_loss(batch, true);
    model.backward(batch, true);
    adamw_update(model.context(), model.adapter_parameters().data(),
                 model.adapter_gradients().data(), m.data(), v.data(), size,
                 model.lora_layout().num_decayed(), adamw, step + 1);
    if (step > 0) rates.push_back(host.num_tokens() / seconds_since(start));
  }
  return median(rates);
}

}  // namespace

void run_llm_bench(const LlmBenchOptions& options) {
  RECFORGE_CHECK(options.only.empty() || options.only == "prefill" || options.only == "decode" ||
                     options.only == "lora",
                 "--only: expected prefill, decode or lora, got \"", options.only, "\"");
  const Context ctx = Context::cpu(options.threads);
  PretrainedLlama pretrained = load_pretrained_llama(options.model);
  pretrained.config.precision = parse_precision(options.precision);
  const double loaded_rss = peak_rss_mib();
  const bool lora = options.only.empty() || options.only == "lora";
  const bool generation = options.only != "lora";
  const int max_tokens = lora ? options.lora_batch * options.lora_length : options.prompt_tokens;
  LlamaModel<float> model(ctx, pretrained.config, std::max(max_tokens, options.prompt_tokens),
                          false);
  model.load_parameters(pretrained.parameters);
  std::vector<float>().swap(pretrained.parameters);  // the model holds its own copy
  nlohmann::json report = {{"model", options.model},
                           {"threads", omp_get_max_threads()},
                           {"precision", options.precision},
                           {"rss_after_load_mib", loaded_rss}};
  if (generation) {
    const GenerationTimes times = time_generation(model, options);
    report["prompt_tokens"] = options.prompt_tokens;
    report["new_tokens"] = options.new_tokens;
    report["prefill_tokens_per_s"] = times.prefill_tokens_per_s;
    report["decode_tokens_per_s"] = times.decode_tokens_per_s;
    std::printf("prefill  %6d tokens      %9.1f tokens/s\n", options.prompt_tokens,
                times.prefill_tokens_per_s);
    std::printf("decode   %6d tokens      %9.1f tokens/s\n", options.new_tokens - 1,
                times.decode_tokens_per_s);
  }
  if (lora) {
    const double rate = time_lora_step(model, options);
    report["lora_batch"] = options.lora_batch;
    report["lora_length"] = options.lora_length;
    report["lora_tokens_per_s"] = rate;
    std::printf("lora     %d x %d tokens  %9.1f tokens/s\n", options.lora_batch,
                options.lora_length, rate);
  }
  report["peak_rss_mib"] = peak_rss_mib();
  std::printf("peak resident memory %.0f MiB\n", peak_rss_mib());
  if (!options.json.empty()) std::ofstream(options.json) << report.dump(2) << "\n";
}

}  // namespace recforge
