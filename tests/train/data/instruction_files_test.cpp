// Prompt files in the papers' formats: Alpaca/TALLRec and S-DPO examples read as written, and every
// kind of bad file an error naming the file, the example and the field.
#include "train/data/instruction_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kernels/check.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

class InstructionFilesTest : public ::testing::Test {
 protected:
  fs::path write(const std::string& text) {
    const fs::path file =
        fs::temp_directory_path() /
        (std::string("recforge_prompts_") +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json");
    std::ofstream(file) << text;
    files_.push_back(file);
    return file;
  }
  void TearDown() override {
    for (const fs::path& file : files_) fs::remove(file);
  }
  std::vector<fs::path> files_;
};

TEST_F(InstructionFilesTest, AlpacaExamplesAreReadAsWritten) {
  const auto examples = read_instruction_file(write(
      R"([{"instruction": "Like it?", "input": "User Preference: \"Heat (1995)\"", "output": "Yes."},
          {"instruction": "i", "input": "", "output": "No."}])"));
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].instruction, "Like it?");
  EXPECT_EQ(examples[0].input, "User Preference: \"Heat (1995)\"");
  EXPECT_EQ(examples[1].output, "No.");
}

TEST_F(InstructionFilesTest, AMissingFieldNamesTheExample) {
  EXPECT_ERROR_CONTAINS(
      read_instruction_file(write(R"([{"instruction": "a", "input": "b", "output": "Yes."},
                                      {"instruction": "a", "output": "No."}])")),
      "example 1: missing field input");
}

TEST_F(InstructionFilesTest, AWrongTypeIsNamed) {
  EXPECT_ERROR_CONTAINS(
      read_instruction_file(write(R"([{"instruction": "a", "input": 3, "output": "Yes."}])")),
      "example 0: field input: expected a string, found number");
}

TEST_F(InstructionFilesTest, NotAListIsRefused) {
  EXPECT_ERROR_CONTAINS(read_instruction_file(write(R"({"instruction": "a"})")),
                        "expected a JSON list of examples");
  EXPECT_ERROR_CONTAINS(read_instruction_file(write("[{")), "not valid JSON");
}

TEST_F(InstructionFilesTest, SdpoExamplesSplitTheHistoryAndFindTheAnswer) {
  const auto examples = read_candidate_file(write(
      R"([{"historyList": "Kylie Minogue::Ke$ha", "itemList": ["A", "Glee Cast", "B"],
           "trueSelection": "Glee Cast"}])"));
  ASSERT_EQ(examples.size(), 1u);
  EXPECT_EQ(examples[0].history, (std::vector<std::string>{"Kylie Minogue", "Ke$ha"}));
  EXPECT_EQ(examples[0].candidates.size(), 3u);
  EXPECT_EQ(examples[0].answer, 1);
}

TEST_F(InstructionFilesTest, AnAnswerOutsideTheCandidatesIsRefused) {
  EXPECT_ERROR_CONTAINS(
      read_candidate_file(
          write(R"([{"historyList": "a", "itemList": ["b", "c"], "trueSelection": "d"}])")),
      "example 0: trueSelection \"d\" is not one of its itemList candidates");
}

TEST_F(InstructionFilesTest, ACandidateThatIsNotAStringIsNamed) {
  EXPECT_ERROR_CONTAINS(
      read_candidate_file(
          write(R"([{"historyList": "a", "itemList": ["b", 7], "trueSelection": "b"}])")),
      "field itemList[1]: expected a string");
}

}  // namespace
}  // namespace recforge
