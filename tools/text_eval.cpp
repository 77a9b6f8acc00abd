#include "tools/text_eval.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "model/llama/export.h"
#include "model/llama/load.h"
#include "model/llama/scoring.h"
#include "train/data/instruction_files.h"
#include "train/eval/task_metrics.h"

namespace recforge {
namespace {

using Clock = std::chrono::steady_clock;

// "12/100 examples, 3.1 s/example, ETA 4.5 min" on stderr, at most every few seconds.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total) {}
  void done(size_t count) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    if (count < total_ && elapsed - last_ < 5.0) return;
    last_ = elapsed;
    const double per = elapsed / count;
    std::fprintf(stderr, "\r%zu/%zu examples, %.2f s/example, ETA %.1f min   ", count, total_, per,
                 per * (total_ - count) / 60.0);
    if (count == total_) std::fputc('\n', stderr);
  }

 private:
  size_t total_;
  Clock::time_point start_ = Clock::now();
  double last_ = 0.0;
};

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

void replace_all(std::string& text, const std::string& marker, const std::string& value) {
  for (size_t at = 0; (at = text.find(marker, at)) != std::string::npos; at += value.size()) {
    text.replace(at, marker.size(), value);
  }
}

std::vector<int32_t> chat_prompt(const Tokenizer& tokenizer, const std::string& text) {
  const ChatMessage message{"user", text};
  return tokenizer.encode_chatml(std::span(&message, 1), true);
}

template <typename Example>
std::vector<Example> prefix(std::vector<Example> examples, int limit) {
  if (limit > 0 && static_cast<size_t>(limit) < examples.size()) examples.resize(limit);
  return examples;
}

nlohmann::json evaluate_preference(PromptScorer& scorer, const Tokenizer& tokenizer,
                                   const TextEvalOptions& options) {
  const auto examples = prefix(read_instruction_file(options.prompts), options.limit);
  const std::vector<std::vector<int32_t>> answers = {tokenizer.encode("Yes."),
                                                     tokenizer.encode("No.")};
  std::vector<float> scores, labels;
  int correct = 0;
  Progress progress(examples.size());
  for (const InstructionExample& example : examples) {
    RECFORGE_CHECK(example.output == "Yes." || example.output == "No.", options.prompts,
                   ": example ", scores.size(), ": output \"", example.output,
                   "\" is not \"Yes.\" or \"No.\"");
    const std::vector<double> lp =
        scorer.score(chat_prompt(tokenizer, example.instruction + "\n" + example.input), answers);
    scores.push_back(static_cast<float>(lp[0] - lp[1]));
    labels.push_back(example.output == "Yes." ? 1.0f : 0.0f);
    correct += (scores.back() > 0) == (labels.back() == 1.0f);
    progress.done(scores.size());
  }
  return {{"examples", examples.size()},
          {"auc", auc(scores, labels)},
          {"accuracy", static_cast<double>(correct) / examples.size()}};
}

nlohmann::json evaluate_candidate_choice(PromptScorer& scorer, const Tokenizer& tokenizer,
                                         const TextEvalOptions& options) {
  const auto examples = prefix(read_candidate_file(options.prompts), options.limit);
  int hits = 0;
  Progress progress(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const CandidateExample& example = examples[i];
    std::string text = options.template_text;
    replace_all(text, "{history}", joined(example.history));
    replace_all(text, "{candidates}", joined(example.candidates));
    std::vector<std::vector<int32_t>> answers;
    for (const std::string& title : example.candidates) answers.push_back(tokenizer.encode(title));
    const std::vector<double> lp = scorer.score(chat_prompt(tokenizer, text), answers);
    hits += std::max_element(lp.begin(), lp.end()) - lp.begin() == example.answer;
    progress.done(i + 1);
  }
  return {{"examples", examples.size()},
          {"hit_ratio_at_1", static_cast<double>(hits) / examples.size()},
          {"candidates_per_example", examples.empty() ? 0 : examples[0].candidates.size()}};
}

}  // namespace

void run_text_eval(const TextEvalOptions& options) {
  RECFORGE_CHECK(options.task == "preference" || options.task == "candidate_choice",
                 "--task: expected preference or candidate_choice, got \"", options.task, "\"");
  RECFORGE_CHECK(!options.prompts.empty(), "eval --model needs --prompts FILE");
  PretrainedLlama pretrained = load_pretrained_llama(options.model);
  pretrained.config.precision = parse_precision(options.precision);
  const Tokenizer tokenizer(pretrained.tokenizer);
  LlamaModel<float> model(Context::create(parse_device(options.device)), pretrained.config, 256,
                          false);
  model.load_parameters(pretrained.parameters);
  if (!options.adapter.empty()) {
    const LlamaPeftAdapter adapter = load_llama_peft_adapter(options.adapter, pretrained.config);
    model.enable_lora(adapter.config, 0);
    model.load_adapter_parameters(adapter.values);
  }
  PromptScorer scorer(model, pretrained.config.max_len);
  nlohmann::json result = options.task == "preference"
                              ? evaluate_preference(scorer, tokenizer, options)
                              : evaluate_candidate_choice(scorer, tokenizer, options);
  result["model"] = options.model;
  result["task"] = options.task;
  result["prompts"] = options.prompts;
  if (!options.adapter.empty()) result["adapter"] = options.adapter;
  if (options.limit > 0) result["limit"] = options.limit;
  std::printf("%s\n", result.dump(2).c_str());
}

}  // namespace recforge
