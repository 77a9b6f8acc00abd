// Prompt rendering: deterministic, independent of the true answer (no target leaks into the
// prompt) for both tasks, slices and few-shot draws, and bad prompt files.
#include "train/text/text_examples.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tests/model/text/tiny_vocab.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

class TextExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recforge_text_examples_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path file = dir_ / name;
    std::ofstream(file) << text;
    return file.string();
  }

  fs::path dir_;
  const Tokenizer tokenizer_{testing::tiny_spec()};
};

InstructionExample preference(const std::string& output) {
  return {"Will the user like the target?", "Liked: \"A\", \"B\"\nTarget: \"C\"", output};
}

CandidateExample choice(int answer) {
  return {{"Alpha", "Beta"}, {"Gamma", "Delta", "Epsilon"}, answer};
}

TEST(PreferenceMessage, DoesNotDependOnTheLabel) {
  EXPECT_EQ(preference_message(preference("Yes."), {}), preference_message(preference("No."), {}));
  EXPECT_EQ(preference_message(preference("Yes."), {}).find("Yes."), std::string::npos);
}

TEST(PreferenceMessage, PutsDemonstrationsWithTheirAnswersBeforeTheQuery) {
  const InstructionExample demo = {"", "Liked: \"X\"\nTarget: \"Y\"", "No."};
  const std::string text = preference_message(preference("Yes."), std::span(&demo, 1));
  EXPECT_LT(text.find("Answer: No."), text.find("Target: \"C\""));
  EXPECT_EQ(text.find("Answer: Yes."), std::string::npos);
}

TEST(CandidateChoiceMessage, DoesNotDependOnWhichCandidateIsTrue) {
  const std::string templ = "History: {history}. Candidates: {candidates}.";
  EXPECT_EQ(candidate_choice_message(choice(0), templ), candidate_choice_message(choice(2), templ));
  EXPECT_EQ(candidate_choice_message(choice(1), templ),
            "History: Alpha, Beta. Candidates: Gamma, Delta, Epsilon.");
}

TEST_F(TextExamplesTest, RendersPreferenceFilesTheSameWayTwiceWithoutTheAnswer) {
  PromptsSection prompts;
  prompts.task = TextTask::kPreference;
  const std::string file = write("p.json", R"([
    {"instruction": "Like?", "input": "liked aa", "output": "Yes."},
    {"instruction": "Like?", "input": "liked aa", "output": "No."}])");
  const auto first = load_text_examples(prompts, {file}, tokenizer_);
  const auto second = load_text_examples(prompts, {file}, tokenizer_);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].prompt, second[0].prompt);
  EXPECT_EQ(first[0].prompt, first[1].prompt);  // same input, different labels: same prompt
  EXPECT_EQ(first[0].chosen, 0);
  EXPECT_EQ(first[1].chosen, 1);
  EXPECT_EQ(tokenizer_.decode(first[0].answers[0]), "Yes.");
  EXPECT_EQ(tokenizer_.decode(first[0].prompt).find("Yes."), std::string::npos);
}

TEST_F(TextExamplesTest, RendersCandidateFilesWithTheTrueTitleOnlyAsOneCandidate) {
  PromptsSection prompts;
  prompts.task = TextTask::kCandidateChoice;
  prompts.template_text = "Heard {history}. Next of {candidates}?";
  const std::string file = write("c.json", R"([
    {"historyList": "aa::hello", "itemList": ["world", "aa b", "c"], "trueSelection": "c"}])");
  const auto examples = load_text_examples(prompts, {file}, tokenizer_);
  ASSERT_EQ(examples.size(), 1u);
  EXPECT_EQ(examples[0].chosen, 2);
  ASSERT_EQ(examples[0].answers.size(), 3u);
  EXPECT_EQ(tokenizer_.decode(examples[0].answers[1]), "aa b");
  const std::string prompt = tokenizer_.decode(examples[0].prompt);
  EXPECT_NE(prompt.find("Heard aa, hello. Next of world, aa b, c?"), std::string::npos);
}

TEST_F(TextExamplesTest, RejectsAPreferenceAnswerOtherThanYesOrNo) {
  PromptsSection prompts;
  const std::string file =
      write("bad.json", R"([{"instruction": "i", "input": "x", "output": "Maybe"}])");
  EXPECT_ERROR_CONTAINS(load_text_examples(prompts, {file}, tokenizer_), "is not \"Yes.\"");
}

TEST_F(TextExamplesTest, RejectsAPromptLongerThanMaxContext) {
  PromptsSection prompts;
  prompts.max_context = 16;
  const std::string file = write(
      "long.json", R"([{"instruction": "a long instruction", "input": "x", "output": "No."}])");
  EXPECT_ERROR_CONTAINS(load_text_examples(prompts, {file}, tokenizer_), "prompts.max_context 16");
}

TEST(SliceIndices, TakesTheRangeInOrder) {
  EXPECT_EQ(slice_indices({"f", 2, 3}, 10), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(slice_indices({"f", 8, 0}, 10), (std::vector<int>{8, 9}));
}

TEST(SliceIndices, DrawsDistinctShotsFromTheSliceReproducibly) {
  const ExampleSlice slice{"f", 0, 50, 16, 7};
  const std::vector<int> shots = slice_indices(slice, 100);
  ASSERT_EQ(shots.size(), 16u);
  EXPECT_EQ(std::set<int>(shots.begin(), shots.end()).size(), 16u);
  for (int i : shots) EXPECT_LT(i, 50);
  EXPECT_EQ(shots, slice_indices(slice, 100));
  EXPECT_NE(shots, slice_indices({"f", 0, 50, 16, 8}, 100));
}

TEST(SliceIndices, RejectsASliceOutsideTheFile) {
  EXPECT_ERROR_CONTAINS(slice_indices({"f.json", 5, 10}, 12), "f.json: the slice [5, 15)");
  EXPECT_ERROR_CONTAINS(slice_indices({"f.json", 0, 4, 5, 1}, 12), "5 shots drawn from a slice");
}

}  // namespace
}  // namespace recforge
