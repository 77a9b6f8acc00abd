#include "train/text/text_evaluation.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "model/llama/generator.h"
#include "model/llama/scoring.h"
#include "train/eval/task_metrics.h"

namespace recforge {
namespace {

using Clock = std::chrono::steady_clock;

// "eval: 12/100 examples, 0.31 s/example, ETA 0.5 min" on stderr, at most every 5 seconds.
class Progress {
 public:
  Progress(std::string label, size_t total) : label_(std::move(label)), total_(total) {}
  void done(size_t count) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    if (count < total_ && elapsed - last_ < 5.0) return;
    last_ = elapsed;
    const double per = elapsed / count;
    std::fprintf(stderr, "\r%s: %zu/%zu examples, %.2f s/example, ETA %.1f min   ", label_.c_str(),
                 count, total_, per, per * (total_ - count) / 60.0);
    if (count == total_) std::fputc('\n', stderr);
  }

 private:
  std::string label_;
  size_t total_;
  Clock::time_point start_ = Clock::now();
  double last_ = 0.0;
};

nlohmann::json evaluate_preference(PromptScorer& scorer, std::span<const TextExample> examples,
                                   Progress& progress) {
  std::vector<float> scores, labels;
  int correct = 0;
  for (const TextExample& example : examples) {
    const std::vector<double> lp = scorer.score(example.prompt, example.answers);
    scores.push_back(static_cast<float>(lp[0] - lp[1]));
    labels.push_back(example.chosen == 0 ? 1.0f : 0.0f);
    correct += (scores.back() > 0) == (example.chosen == 0);
    progress.done(scores.size());
  }
  const bool both_labels = std::count(labels.begin(), labels.end(), 1.0f) % labels.size() != 0;
  return {{"examples", examples.size()},
          {"auc", both_labels ? nlohmann::json(auc(scores, labels)) : nlohmann::json(nullptr)},
          {"accuracy", static_cast<double>(correct) / examples.size()}};
}

// The candidate whose text the greedy answer to the prompt the scorer holds is (up to the end of
// the turn), or -1 when it is none of them.
int generated_candidate(PromptScorer& scorer, const Tokenizer& tokenizer,
                        const TextExample& example) {
  size_t longest = 0;
  for (const auto& answer : example.answers) longest = std::max(longest, answer.size());
  GenerationOptions options;
  options.max_new_tokens = static_cast<int>(longest) + 4;
  for (const char* stop : {"<|im_end|>", "<|eot_id|>"}) {
    if (tokenizer.find(stop) >= 0) options.stop_tokens.push_back(tokenizer.find(stop));
  }
  if (tokenizer.eos() >= 0) options.stop_tokens.push_back(tokenizer.eos());
  std::string text = tokenizer.decode(scorer.generate(options), true);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  for (size_t c = 0; c < example.answers.size(); ++c) {
    if (tokenizer.decode(example.answers[c]) == text) return static_cast<int>(c);
  }
  return -1;
}

nlohmann::json evaluate_candidate_choice(PromptScorer& scorer, const Tokenizer& tokenizer,
                                         std::span<const TextExample> examples,
                                         const TextEvalSettings& settings, Progress& progress) {
  int hits = 0, valid = 0, generated_hits = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::vector<double> lp = scorer.score(examples[i].prompt, examples[i].answers);
    hits += std::max_element(lp.begin(), lp.end()) - lp.begin() == examples[i].chosen;
    if (settings.valid_ratio) {
      const int generated = generated_candidate(scorer, tokenizer, examples[i]);
      valid += generated >= 0;
      generated_hits += generated == examples[i].chosen;
    }
    progress.done(i + 1);
  }
  nlohmann::json result = {
      {"examples", examples.size()},
      {"hr@1", static_cast<double>(hits) / examples.size()},
      {"candidates_per_example", examples.empty() ? 0 : examples[0].answers.size()}};
  if (settings.valid_ratio) {
    result["valid_ratio"] = static_cast<double>(valid) / examples.size();
    result["generated_hr@1"] = static_cast<double>(generated_hits) / examples.size();
  }
  return result;
}

}  // namespace

nlohmann::json evaluate_text(LlamaModel<float>& model, const Tokenizer& tokenizer,
                             std::span<const TextExample> examples,
                             const TextEvalSettings& settings) {
  if (examples.empty()) return {{"examples", 0}};
  PromptScorer scorer(model, settings.max_context);
  Progress progress(settings.label, examples.size());
  return settings.task == TextTask::kPreference
             ? evaluate_preference(scorer, examples, progress)
             : evaluate_candidate_choice(scorer, tokenizer, examples, settings, progress);
}

}  // namespace recforge
