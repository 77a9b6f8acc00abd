// Hugging Face tokenizer.json files of byte-level BPE models (SmolLM2, GPT-2, Llama 3, ...) as a
// TokenizerSpec:
//
//   model          {"type": "BPE", "vocab": {text: id}, "merges": ["a b", ...] or [["a", "b"]],
//                   "ignore_merges", "unk_token"; dropout, continuing_subword_prefix,
//                   end_of_word_suffix null; byte_fallback false}
//   added_tokens   [{"id", "content", "special"; lstrip, rstrip, single_word false}]: special
//                  ones become control tokens, the others user-defined; their text is raw
//   normalizer     null
//   pre_tokenizer  ByteLevel(use_regex) → gpt2; Sequence[Digits(individual_digits),
//                  ByteLevel(use_regex)] → smollm; Sequence[Split(Regex r, Isolated),
//                  ByteLevel(use_regex false)] with r one of pretokenizer.h's patterns
//   decoder        ByteLevel or null; post_processor is not read
//
// The ids must number 0..n−1 without a gap. bos/eos/pad are not in tokenizer.json (Hugging Face
// keeps them in tokenizer_config.json): they stay −1. The file is untrusted: every field is type
// checked, and an error names the file and the field ("tokenizer.json: field model.vocab["a"]:
// expected integer, found string "x""). Anything outside the list above is refused by name.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "model/text/tokenizer.h"

namespace recforge {

TokenizerSpec tokenizer_spec_from_json(const std::filesystem::path& tokenizer_json);
// The same on a file's text; `source` names it in messages.
TokenizerSpec tokenizer_spec_from_json_text(std::string_view text, const std::string& source);

// The spec as a tokenizer.json that Hugging Face `tokenizers` loads and tokenizer_spec_from_json
// reads back to the same spec (but bos/eos/pad and the chat template, which live elsewhere):
// every token in model.vocab, control and user-defined ones also in added_tokens.
std::string tokenizer_spec_to_json(const TokenizerSpec& spec);

}  // namespace recforge
