// Metrics of the SFT tasks (train/tasks/sft_tasks.h), and the scores read off the answer position's
// logits.
//
//   preference score  s = logit(YES) − logit(NO), the log-odds of YES in the softmax restricted to
//                     {YES, NO}; ranked against the labels by AUC.
//   expected rating   r̂ = Σ_{r=1..5} p(r)·r, p = softmax over the five rating tokens' logits only;
//                     compared with the true ratings by RMSE and MAE.
//   AUC               the Mann–Whitney statistic: the probability that a random positive scores
//   above
//                     a random negative, a tie counting 1/2:
//                     AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊·n₋), R₊ the sum of the positives' ranks
//                     (1-based, ascending score, tied scores sharing their mean rank).
//   RMSE = sqrt(mean (p − y)²),  MAE = mean |p − y|.
//
// Only the special-token block of the vocabulary is read, so a caller may compute just those
// logits: `logits_row` is indexed by token id and needs entries [0, kFirstItemToken), e.g. a row of
// the full-vocabulary logits or of hidden · wte[0:kFirstItemToken]ᵀ.
#pragma once

#include <span>

namespace recforge {

float preference_score(const float* logits_row);
float expected_rating(const float* logits_row);
// r̂ from the five logits of ratings 1..5 in order.
float expected_rating_of(std::span<const float> rating_logits);

// labels are 0 or 1, scores not NaN; throws on an empty input, different lengths, or when one
// class is missing (AUC is undefined).
double auc(std::span<const float> scores, std::span<const float> labels);
// predictions and targets of the same non-zero length.
double rmse(std::span<const float> predictions, std::span<const float> targets);
double mae(std::span<const float> predictions, std::span<const float> targets);

}  // namespace recforge
