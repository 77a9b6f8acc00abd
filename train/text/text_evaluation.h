// A language model as a recommender, measured on rendered examples (text_examples.h), each
// prompt prefilled once into the key/value cache and its answers scored from there
// (model/llama/scoring.h):
//   preference        score = log p("Yes.") − log p("No."): "auc" against the labels and
//                     "accuracy" of score > 0;
//   candidate_choice  every candidate scored as the answer: "hr@1" when the true one scores
//                     highest; with valid_ratio also greedy generation (up to the longest answer
//                     plus a few tokens): "valid_ratio", the share of generations that are
//                     exactly one of the candidates, and "generated_hr@1", the share that are
//                     exactly the true one (S-DPO's HitRatio@1, read from the generated text).
// Progress with an ETA goes to stderr.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "model/llama/model.h"
#include "model/text/tokenizer.h"
#include "train/config/config.h"
#include "train/text/text_examples.h"

namespace recforge {

struct TextEvalSettings {
  TextTask task = TextTask::kPreference;
  int max_context = 2048;
  bool valid_ratio = false;
  std::string label = "eval";  // names the progress line
};

nlohmann::json evaluate_text(LlamaModel<float>& model, const Tokenizer& tokenizer,
                             std::span<const TextExample> examples,
                             const TextEvalSettings& settings);

}  // namespace recforge
