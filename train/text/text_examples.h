// Prompt files rendered into what a language model reads: each example becomes a ChatML user
// turn (the instruction and its input, or the candidate_choice template filled in) followed by the
// assistant header, and its possible answers as tokens:
//   preference        answers {"Yes.", "No."}, chosen the label's; optional demonstrations
//                     (in-context examples) precede the query in the same user turn;
//   candidate_choice  answers the candidate titles in the file's order, chosen the true one.
// The prompt never depends on which answer is the true one: the label or trueSelection is read
// only into `chosen`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/text/tokenizer.h"
#include "train/config/config.h"
#include "train/data/instruction_files.h"

namespace recforge {

struct TextExample {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> answers;
  int chosen = 0;  // index into answers
};

// A slice [first, first + count) of a file's examples (count 0: to the end).
struct ExampleSlice {
  std::string file;
  int first = 0, count = 0;
  int shots = 0;  // > 0: this many drawn without replacement from the slice, in drawn order
  uint64_t seed = 0;
  bool capped = false;  // a slice past the file's end stops at it (a test limit) instead of failing
};

// The user message of a TALLRec example, demonstrations first ("<input>\nAnswer: <output>"); a
// demonstration with the example's own input is left out when the examples are loaded.
std::string preference_message(const InstructionExample& example,
                               std::span<const InstructionExample> demonstrations);
// `template_text` with {history} and {candidates} replaced by the comma-joined titles.
std::string candidate_choice_message(const CandidateExample& example,
                                     const std::string& template_text);

// The indices a slice selects from `total` examples; errors name the file.
std::vector<int> slice_indices(const ExampleSlice& slice, int total);

// Reads a slice of a prompt file and renders it; every prompt + answer must fit max_context.
std::vector<TextExample> load_text_examples(const PromptsSection& prompts,
                                            const ExampleSlice& slice, const Tokenizer& tokenizer);

}  // namespace recforge
