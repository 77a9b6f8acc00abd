// Prompt datasets as the LLM-recommendation papers ship them, read as they are:
//   Alpaca / TALLRec  [{"instruction": ..., "input": ..., "output": ...}, ...]
//   S-DPO / LLaRA     [{"historyList": "a::b::c", "itemList": [...], "trueSelection": ...}, ...]
// Untrusted files: a missing or mistyped field is an error naming the file, the example's index and
// the field; an S-DPO answer must be one of its candidates.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace recforge {

struct InstructionExample {
  std::string instruction, input, output;
};

struct CandidateExample {
  std::vector<std::string> history;     // oldest first
  std::vector<std::string> candidates;  // as listed
  int answer = 0;                       // index into candidates
};

std::vector<InstructionExample> read_instruction_file(const std::filesystem::path& file);
std::vector<CandidateExample> read_candidate_file(const std::filesystem::path& file);

// The same formats written (whole or not at all), so prompts rendered from logs are files like
// the papers'.
void write_instruction_file(const std::filesystem::path& file,
                            const std::vector<InstructionExample>& examples);
void write_candidate_file(const std::filesystem::path& file,
                          const std::vector<CandidateExample>& examples);

}  // namespace recforge
