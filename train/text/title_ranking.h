// next_title: a language model ranks a whole catalogue for a user by constrained scoring — every
// title is scored as the answer to the user's prompt, log p(title | prompt) summed over its tokens,
// the prompt prefilled once into the key/value cache and shared by all titles (model/llama/
// scoring.h) — rather than by sampling text and matching it to the catalogue.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "model/llama/model.h"
#include "model/text/tokenizer.h"

namespace recforge {

struct RankedTitle {
  int item = 0;
  double log_prob = 0.0;
};

// The user message of next_title: `template_text` with {history} the comma-joined titles.
std::string next_title_message(std::span<const std::string> history,
                               const std::string& template_text);

// The k best items (ties: lower index first), skipping those in `exclude`.
std::vector<RankedTitle> rank_titles(LlamaModel<float>& model, const Tokenizer& tokenizer,
                                     const std::string& message,
                                     std::span<const std::string> titles,
                                     std::span<const int> exclude, int k, int max_context);

}  // namespace recforge
