#include "train/text/text_examples.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "kernels/check.h"

namespace recforge {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Every {marker} of `text` replaced by its value in one pass, so a value that holds a marker (a
// title "{candidates}") is never expanded again.
std::string fill_template(const std::string& text,
                          const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  for (size_t at = 0; at < text.size();) {
    bool replaced = false;
    for (const auto& [marker, value] : values) {
      if (text.compare(at, marker.size(), marker) == 0) {
        out += value;
        at += marker.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[at++];
  }
  return out;
}

std::vector<int32_t> chat_prompt(const Tokenizer& tokenizer, const std::string& text) {
  const ChatMessage message{"user", text};
  return tokenizer.encode_chatml(std::span(&message, 1), true);
}

template <typename Example>
std::vector<Example> select(const std::vector<Example>& all, const ExampleSlice& slice) {
  std::vector<Example> out;
  for (int i : slice_indices(slice, static_cast<int>(all.size()))) out.push_back(all[i]);
  return out;
}

void check_fits(const TextExample& example, int max_context, const std::string& file, int index) {
  RECFORGE_CHECK(example.answers.size() >= 2, file, ": example ", index,
                 " has fewer than two answers to choose from");
  for (const std::vector<int32_t>& answer : example.answers) {
    RECFORGE_CHECK(!answer.empty(), file, ": example ", index, " has an empty answer");
    const size_t tokens = example.prompt.size() + answer.size() + 1;
    RECFORGE_CHECK(tokens <= static_cast<size_t>(max_context), file, ": example ", index, " has ",
                   tokens, " tokens with an answer, more than prompts.max_context ", max_context);
  }
}

std::vector<TextExample> preference_examples(const PromptsSection& prompts,
                                             const ExampleSlice& slice,
                                             const Tokenizer& tokenizer) {
  const std::vector<InstructionExample> examples = select(read_instruction_file(slice.file), slice);
  std::vector<InstructionExample> demonstrations;
  if (prompts.in_context > 0) {
    const ExampleSlice pool{prompts.train, prompts.train_first, prompts.in_context};
    demonstrations = select(read_instruction_file(prompts.train), pool);
  }
  const std::vector<std::vector<int32_t>> answers = {tokenizer.encode("Yes."),
                                                     tokenizer.encode("No.")};
  std::vector<TextExample> out;
  for (size_t i = 0; i < examples.size(); ++i) {
    const InstructionExample& example = examples[i];
    RECFORGE_CHECK(example.output == "Yes." || example.output == "No.", slice.file, ": example ", i,
                   ": output \"", example.output, "\" is not \"Yes.\" or \"No.\"");
    std::vector<InstructionExample> shown;  // never the example itself with its label
    for (const InstructionExample& demo : demonstrations) {
      if (demo.input != example.input) shown.push_back(demo);
    }
    out.push_back({chat_prompt(tokenizer, preference_message(example, shown)), answers,
                   example.output == "Yes." ? 0 : 1});
  }
  return out;
}

std::vector<TextExample> candidate_examples(const PromptsSection& prompts,
                                            const ExampleSlice& slice, const Tokenizer& tokenizer) {
  std::vector<TextExample> out;
  for (const CandidateExample& example : select(read_candidate_file(slice.file), slice)) {
    TextExample text{
        chat_prompt(tokenizer, candidate_choice_message(example, prompts.template_text)),
        {},
        example.answer};
    for (const std::string& title : example.candidates) {
      text.answers.push_back(tokenizer.encode(title));
    }
    out.push_back(std::move(text));
  }
  return out;
}

}  // namespace

std::string preference_message(const InstructionExample& example,
                               std::span<const InstructionExample> demonstrations) {
  std::string text = example.instruction + "\n";
  for (const InstructionExample& demo : demonstrations) {
    text += demo.input + "\nAnswer: " + demo.output + "\n\n";
  }
  return text + example.input;
}

std::string candidate_choice_message(const CandidateExample& example,
                                     const std::string& template_text) {
  return fill_template(template_text, {{"{history}", joined(example.history)},
                                       {"{candidates}", joined(example.candidates)}});
}

std::vector<int> slice_indices(const ExampleSlice& slice, int total) {
  RECFORGE_CHECK(slice.first >= 0 && slice.count >= 0 && slice.first <= total, slice.file,
                 ": the slice starts at example ", slice.first, " of ", total);
  const int64_t wanted = slice.count == 0 ? total : int64_t{slice.first} + slice.count;
  const int end = static_cast<int>(std::min<int64_t>(wanted, slice.capped ? total : wanted));
  RECFORGE_CHECK(wanted <= total || slice.capped, slice.file, ": the slice [", slice.first, ", ",
                 wanted, ") runs past its ", total, " examples");
  std::vector<int> indices(end - slice.first);
  std::iota(indices.begin(), indices.end(), slice.first);
  if (slice.shots == 0) return indices;
  RECFORGE_CHECK(slice.shots <= static_cast<int>(indices.size()), slice.file, ": ", slice.shots,
                 " shots drawn from a slice of ", indices.size(), " examples");
  std::mt19937_64 rng(slice.seed);
  for (int i = 0; i < slice.shots; ++i) {
    std::uniform_int_distribution<int> pick(i, static_cast<int>(indices.size()) - 1);
    std::swap(indices[i], indices[pick(rng)]);
  }
  indices.resize(slice.shots);
  return indices;
}

std::vector<TextExample> load_text_examples(const PromptsSection& prompts,
                                            const ExampleSlice& slice, const Tokenizer& tokenizer) {
  std::vector<TextExample> examples = prompts.task == TextTask::kPreference
                                          ? preference_examples(prompts, slice, tokenizer)
                                          : candidate_examples(prompts, slice, tokenizer);
  for (size_t i = 0; i < examples.size(); ++i) {
    check_fits(examples[i], prompts.max_context, slice.file, static_cast<int>(i));
  }
  return examples;
}

}  // namespace recforge
