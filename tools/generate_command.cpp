// `recforge generate`: text from a pretrained Llama-family model (GGUF file or Hugging Face
// directory) with a key/value cache. Prints only the generated text, streamed as it comes; the
// end-of-sequence token ends it and is not printed. --stats reports prefill and decode speed on
// stderr.
#include <chrono>
#include <cstdio>
#include <optional>

#include "kernels/check.h"
#include "model/llama/generator.h"
#include "model/llama/load.h"
#include "tools/commands.h"

namespace recforge {
namespace {

struct GenerateOptions {
  std::string model, prompt, device = "auto", precision = "fp32";
  bool chat = false, greedy = false, stats = false;
  int max_new_tokens = 128;
  std::optional<float> temperature, top_p;
  uint64_t seed = 0;
};

SamplingOptions sampling_of(const GenerateOptions& options) {
  SamplingOptions sampling;
  sampling.greedy = options.greedy || (!options.temperature && !options.top_p);
  sampling.temperature = options.temperature.value_or(1.0f);
  sampling.top_p = options.top_p.value_or(1.0f);
  sampling.seed = options.seed;
  sampling.validate();
  return sampling;
}

std::vector<int32_t> prompt_ids(const Tokenizer& tokenizer, const GenerateOptions& options) {
  if (options.chat) {
    const ChatMessage message{"user", options.prompt};
    return tokenizer.encode_chatml(std::span(&message, 1), true);
  }
  std::vector<int32_t> ids;
  if (tokenizer.add_bos() && tokenizer.bos() >= 0) ids.push_back(tokenizer.bos());
  const std::vector<int32_t> text = tokenizer.encode(options.prompt);
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}

void run_generate(const GenerateOptions& options) {
  PretrainedLlama pretrained = load_pretrained_llama(options.model);
  pretrained.config.precision = parse_precision(options.precision);
  const Tokenizer tokenizer(pretrained.tokenizer);
  const std::vector<int32_t> prompt = prompt_ids(tokenizer, options);
  RECFORGE_CHECK(!prompt.empty(), "the prompt is empty");
  const int context = static_cast<int>(prompt.size()) + options.max_new_tokens;
  RECFORGE_CHECK(context <= pretrained.config.max_len, "the prompt (", prompt.size(),
                 " tokens) and --max-new-tokens ", options.max_new_tokens,
                 " exceed the model's context of ", pretrained.config.max_len, " tokens");
  LlamaModel<float> model(Context::create(parse_device(options.device)), pretrained.config,
                          std::min<int>(context, 256), false);
  model.load_parameters(pretrained.parameters);
  LlamaGenerator generator(model, context);
  GenerationOptions generation;
  generation.max_new_tokens = options.max_new_tokens;
  generation.sampling = sampling_of(options);
  if (tokenizer.eos() >= 0) generation.stop_tokens = {tokenizer.eos()};

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  std::optional<Clock::time_point> first_token;
  const std::vector<int32_t> generated = generator.generate(prompt, generation, [&](int32_t id) {
    if (!first_token) first_token = Clock::now();
    if (id == tokenizer.eos()) return;
    const std::string& text = tokenizer.token_text(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
  if (!options.stats) return;
  const double prefill = std::chrono::duration<double>(*first_token - start).count();
  const double decode = std::chrono::duration<double>(Clock::now() - *first_token).count();
  std::fprintf(stderr, "prefill: %zu tokens in %.3f s (%.1f tokens/s)\n", prompt.size(), prefill,
               prompt.size() / prefill);
  if (generated.size() > 1) {
    std::fprintf(stderr, "decode: %zu tokens in %.3f s (%.1f tokens/s)\n", generated.size() - 1,
                 decode, (generated.size() - 1) / decode);
  }
}

}  // namespace

void register_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* command = app.add_subcommand(
      "generate", "Generate text with a pretrained Llama-family model (GGUF or Hugging Face)");
  command->add_option("--model", options->model, "GGUF file or Hugging Face model directory")
      ->required();
  command->add_option("--prompt", options->prompt, "the prompt text")->required();
  command->add_flag("--chat", options->chat, "wrap the prompt as a ChatML user turn");
  command->add_option("--max-new-tokens", options->max_new_tokens, "tokens to generate at most")
      ->check(at_least(1))
      ->capture_default_str();
  auto* greedy = command->add_flag("--greedy", options->greedy, "argmax decoding (the default)");
  command->add_option("--temperature", options->temperature, "sampling temperature (> 0)")
      ->excludes(greedy);
  command->add_option("--top-p", options->top_p, "nucleus sampling mass in (0, 1]")
      ->excludes(greedy);
  command->add_option("--seed", options->seed, "sampling seed")->capture_default_str();
  command
      ->add_option("--precision", options->precision,
                   "linear weights held in fp32 or bf16 (computed in fp32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  command->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  command->add_flag("--stats", options->stats, "print prefill and decode speed on stderr");
  command->callback([options] { run_generate(*options); });
}

}  // namespace recforge
