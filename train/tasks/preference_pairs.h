// Preference pairs for DPO (kernels/dpo_loss.h) built from a leave-one-out split
// (train/data/split.h). A pair is a prompt (the items a user had before some target, the most
// recent max_len of them) and K candidate items: the chosen one first, then K − 1 rejected ones.
// Candidates are item ids (0-based), so they index the item rows of the tied output layer,
// wte[kFirstItemToken + i] (pass the item sub-range to kernels/candidate_logprobs.h).
//
// From sequences (implicit feedback): the chosen item is the true next item:
//   training pairs  every user and training position t ≥ 1: prompt train[0, t), chosen train[t]
//                   (position 0 has no prompt and yields no pair);
//   eval pairs      every evaluated user: prompt history(user, split), chosen target(user, split);
// and the rejected items are drawn uniformly, without repetition, from the items the user NEVER
// interacts with (train, valid or test), so a future positive is never a negative.
// From ratings (datasets with ratings, training part only): every training position t ≥ 1 rated
// ≥ chosen_min_rating is chosen (prompt train[0, t)); the rejected items are drawn without
// repetition from the other items the user rated ≤ rejected_max_rating in the training part, and
// when those are fewer than K − 1, all of them are taken and the rest drawn from the
// never-interacted items.
//
// Draws are Philox4x32-10 keyed by the seed, with one stream per (user, target position), so a
// seed fixes every pair regardless of threads or of which other users are present. Pairs come
// out by user, then position. A user who yields pairs but has fewer than K − 1 items to reject is
// an error naming the user.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/data/split.h"

namespace recforge {

struct PreferencePair {
  int32_t user = 0;
  std::span<const int32_t> prompt;  // the most recent ≤ max_len items before the chosen one, in
                                    // order; a view into the Dataset, which must outlive it
  std::vector<int32_t> candidates;  // [K]: chosen, then K − 1 distinct rejected items
};

struct PreferencePairOptions {
  int num_candidates = 2;            // K ≥ 2: the chosen item and K − 1 rejected ones
  int max_len = 50;                  // prompt items kept (the most recent), ≥ 1
  uint64_t seed = 0;                 // rejected-item draws
  float chosen_min_rating = 4.0f;    // ratings: chosen items are rated ≥ this
  float rejected_max_rating = 2.0f;  // ratings: rejected items are rated ≤ this (< chosen_min)
};

// One pair per training target position of every user.
std::vector<PreferencePair> sequence_training_pairs(const LeaveOneOutSplit& split,
                                                    const PreferencePairOptions& options);

// One pair per evaluated user for the valid or the test target.
std::vector<PreferencePair> sequence_eval_pairs(const LeaveOneOutSplit& split, Split which,
                                                const PreferencePairOptions& options);

// One pair per highly rated training position of every user; throws unless the dataset has
// ratings.
std::vector<PreferencePair> rating_pairs(const LeaveOneOutSplit& split,
                                         const PreferencePairOptions& options);

// The pairs' candidates as one row-major [pairs, K] array (the kernels' layout).
std::vector<int32_t> candidate_matrix(std::span<const PreferencePair> pairs);

}  // namespace recforge
