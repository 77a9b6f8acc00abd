// Candidate lists as item ids: for each prompt of a candidate_choice file made from a dataset
// (`recforge data prompts --save-candidates`), the user, how many of the user's events form the
// history, the shuffled candidates and which one is the true next item. An item-ID model ranks the
// same candidates an LLM chooses among (`recforge eval --run DIR --candidates FILE`).
//
// Text format, one list per line (ids are the prepared dataset's 0-based indices):
//   # user history_length answer item...
//   17 42 3 905 12 77 1310 ...
// Blank lines and lines starting with '#' are skipped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "train/data/dataset.h"

namespace recforge {

struct CandidateList {
  int32_t user = 0;
  int64_t history_length = 0;  // the user's first events, the history before the target
  int answer = 0;              // index into items of the true next item
  std::vector<int32_t> items;  // at least 2, distinct
};

void save_candidate_lists(const std::filesystem::path& path,
                          const std::vector<CandidateList>& lists);
// Throws recforge::Error naming the file, the line and what was expected.
std::vector<CandidateList> load_candidate_lists(const std::filesystem::path& path);
// Throws when a list does not fit `data` (a user, an item or a history out of range): the file
// was made from another dataset.
void check_candidate_lists(const std::vector<CandidateList>& lists, const Dataset& data,
                           const std::filesystem::path& path);

}  // namespace recforge
