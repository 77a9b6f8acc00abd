// The text evaluation's candidate choice against scores computed apart: HitRatio@1 is the share of
// examples whose true answer has the highest packed continuation log-probability (the evaluation
// scores from a shared key/value cache instead), and the generated metrics are shares.
#include "train/text/text_evaluation.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "model/llama/scoring.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/train/text/tiny_text_model.h"

namespace recforge {
namespace {

double packed_hit_ratio(LlamaModel<float>& model, std::span<const TextExample> examples) {
  int hits = 0;
  for (const TextExample& example : examples) {
    std::vector<ScoringRequest> requests;
    for (const auto& answer : example.answers) requests.push_back({example.prompt, answer});
    const std::vector<double> scores = continuation_log_probs(model, std::span(requests));
    hits += std::max_element(scores.begin(), scores.end()) - scores.begin() == example.chosen;
  }
  return static_cast<double>(hits) / examples.size();
}

TEST(TextEvaluationTest, CandidateChoiceHitRatioMatchesPackedScoring) {
  std::mt19937_64 rng(testing::fresh_seed());
  const testing::TinyTextModel tiny(rng, false);
  auto model = tiny.build(8);  // prompts prefilled and answers scored in chunks of 8
  const Tokenizer tokenizer(testing::tiny_spec());
  const std::vector<TextExample> examples = testing::random_text_examples(rng, 12, 5);
  TextEvalSettings settings;
  settings.task = TextTask::kCandidateChoice;
  settings.max_context = 64;
  settings.valid_ratio = true;
  const nlohmann::json result = evaluate_text(*model, tokenizer, examples, settings);
  EXPECT_EQ(result.at("examples"), examples.size());
  EXPECT_DOUBLE_EQ(result.at("hr@1"), packed_hit_ratio(*tiny.build(), examples));
  EXPECT_GE(result.at("valid_ratio").get<double>(), result.at("generated_hr@1").get<double>());
  EXPECT_GE(result.at("generated_hr@1").get<double>(), 0.0);
}

}  // namespace
}  // namespace recforge
