// `recforge eval --model FILE --task preference|candidate_choice --prompts FILE`: a pretrained (or
// LoRA fine-tuned, --adapter) language model as a recommender, on prompt files in the papers'
// formats (train/data/instruction_files.h), scored with the key/value cache shared across each
// prompt's answers (model/llama/scoring.h):
//   preference        (TALLRec) score = log p("Yes.") − log p("No.") after the ChatML prompt
//                     instruction + "\n" + input; AUC against the labels, and accuracy of score >
//                     0;
//   candidate_choice  (LLaRA / S-DPO) every candidate title scored as the answer after a prompt
//                     listing the history and the candidates; HitRatio@1 of the best-scored one,
//                     and with --valid-ratio the share of greedy answers that are a candidate.
// The prompts are rendered as training renders them (train/text/text_examples.h);
// --in-context K puts the first K examples of --demonstrations FILE in every preference prompt.
// --limit evaluates a fixed prefix of the file (stated in the output). Progress and an ETA go to
// stderr; the result is one JSON object on stdout.
#pragma once

#include <string>

#include "train/config/config.h"

namespace recforge {

struct TextEvalOptions {
  std::string model, adapter, task = "preference", prompts, device = "auto", precision = "fp32";
  std::string template_text = PromptsSection{}.template_text;
  std::string demonstrations;
  int limit = 0;  // 0: every example
  int in_context = 0;
  int max_context = 2048;
  bool valid_ratio = false;
};

void run_text_eval(const TextEvalOptions& options);

}  // namespace recforge
