// `recforge eval --model FILE --task preference|candidate_choice --prompts FILE`: a pretrained (or
// LoRA fine-tuned, --adapter) language model as a recommender, on prompt files in the papers'
// formats (train/data/instruction_files.h), scored with the key/value cache shared across each
// prompt's answers (model/llama/scoring.h):
//   preference        (TALLRec) score = log p("Yes.") − log p("No.") after the ChatML prompt
//                     instruction + "\n" + input; AUC against the labels, and accuracy of score >
//                     0;
//   candidate_choice  (LLaRA / S-DPO) every candidate title scored as the answer after a prompt
//                     listing the history and the candidates; HitRatio@1 of the best-scored one.
// --limit evaluates a fixed prefix of the file (stated in the output). Progress and an ETA go to
// stderr; the result is one JSON object on stdout.
#pragma once

#include <string>

namespace recforge {

struct TextEvalOptions {
  std::string model, adapter, task = "preference", prompts, device = "auto", precision = "fp32";
  std::string template_text =
      "The user listened to these artists, oldest first: {history}.\n"
      "Which one of these candidates will the user listen to next? {candidates}.\n"
      "Answer with the candidate's name only.";
  int limit = 0;  // 0: every example
};

void run_text_eval(const TextEvalOptions& options);

}  // namespace recforge
