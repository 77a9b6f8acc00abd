// Pre-tokenizers of byte-level BPE: the regular expressions that cut a text into pieces before
// BPE merges bytes inside each piece (no merge crosses a piece boundary).
//
//   kGpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kSmollm  every \p{N} character is a piece of its own, then kGpt2 on the text between them
//            (Hugging Face Sequence[Digits(individual_digits), ByteLevel]; llama.cpp "smollm",
//            "starcoder")
//   kLlama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2   kLlama3 with \p{N} in place of \p{N}{1,3}
//
// The expressions run under PCRE2 with Unicode classes (UTF, UCP), compiled once per process.
// Text that is not UTF-8 is cut first: every byte that does not belong to a well-formed UTF-8
// sequence is a piece of its own, and the expression runs on each valid stretch between such
// bytes separately (as on a text that ended, or began, there). Hugging Face `tokenizers` only
// takes valid text; on valid text the pieces are the same as theirs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace recforge {

enum class PreTokenizer { kGpt2, kSmollm, kLlama3, kQwen2 };

// A name of GGUF's tokenizer.ggml.pre: "gpt2"; "smollm", "starcoder"; "llama3", "llama-bpe";
// "qwen2", "deepseek-r1-qwen". Any other name is an error listing these.
PreTokenizer parse_pre_tokenizer(std::string_view name);
// "gpt2", "smollm", "llama3", "qwen2".
const char* pre_tokenizer_name(PreTokenizer pre);

// The regular expression of a pre-tokenizer (kSmollm: the one it runs between digits).
const char* pre_tokenizer_pattern(PreTokenizer pre);

// The pieces of `text` in order; they concatenate to `text` and none is empty.
std::vector<std::string_view> pre_tokenize(PreTokenizer pre, std::string_view text);

}  // namespace recforge
