// Prompts rendered from a user's own logs: a prepared dataset with item titles
// (train/data/item_titles.h) and its per-user split (train/data/event_split.h) become prompt
// files in the papers' formats, which the text trainer and `recforge eval` read as they read
// TALLRec's and S-DPO's:
//   preference        for a target event, the history's most recent `history` items split into
//                     liked (rating >= like_threshold) and disliked titles; the output "Yes." when
//                     the target's rating is a like (TALLRec's instruction and input wording);
//   candidate_choice  the history's most recent titles, and `candidates` candidates: the target
//                     and candidates − 1 items drawn uniformly from those the user never
//                     interacted with, all titles distinct, shuffled (the S-DPO format); a target
//                     the user already had in the history (a repeat) makes no prompt.
// A part's target events are the last `per_user` of each user's events in that part (train,
// valid or test) whose history is non-empty; a history only ever holds events strictly before
// the target (EventSplit::history_end), so nothing held out reaches a prompt or training.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/data/candidate_lists.h"
#include "train/data/event_split.h"
#include "train/data/instruction_files.h"

namespace recforge {

struct LogPromptOptions {
  SplitPart part = SplitPart::kTest;
  int per_user = 1;  // target events per user in the part
  int history = 10;  // most recent titles shown
  int candidates = 20;
  int like_threshold = 4;
  uint64_t seed = 1;
  std::string noun = "movie";  // "Whether the user will like the target <noun> ..."
};

std::vector<InstructionExample> preference_prompts(const EventSplit& split,
                                                   const std::vector<std::string>& titles,
                                                   const LogPromptOptions& options);
// The candidate_choice targets as item ids (what an item-ID model ranks), and their prompts.
std::vector<CandidateList> candidate_lists(const EventSplit& split,
                                           const std::vector<std::string>& titles,
                                           const LogPromptOptions& options);
std::vector<CandidateExample> candidate_prompts(const Dataset& data,
                                                const std::vector<std::string>& titles,
                                                const std::vector<CandidateList>& lists,
                                                const LogPromptOptions& options);
std::vector<CandidateExample> candidate_prompts(const EventSplit& split,
                                                const std::vector<std::string>& titles,
                                                const LogPromptOptions& options);

}  // namespace recforge
