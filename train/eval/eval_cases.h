// Evaluation cases of a leave-one-out split: for every user with a validation (or test) item, the
// history that predicts it, the target, and the items the full ranking leaves out.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/eval/evaluation.h"

namespace recforge {

struct EvalCases {
  std::vector<EvalCase> cases;
  std::vector<int32_t> users;                    // per case: its user
  std::vector<std::vector<int32_t>> user_items;  // per case: every item of the user (all splits),
                                                 // which sampled negatives must avoid
};

// With `exclude_history`, each case excludes its history's items from the full ranking (the
// S3-Rec setting); the target itself is always ranked.
EvalCases evaluation_cases(const Dataset& data, const LeaveOneOutSplit& split, Split which,
                           bool exclude_history);

// Renumbers every item of the cases (histories, targets, exclusions, the users' items) through
// `to` [the dataset's items]: a model's own ids for the dataset's (model_items_of).
void renumber_items(EvalCases& cases, std::span<const int32_t> to);

}  // namespace recforge
