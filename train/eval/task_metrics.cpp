#include "train/eval/task_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/check.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

void require_pairs(size_t predictions, size_t targets) {
  RECFORGE_CHECK(predictions == targets, "got ", predictions, " predictions for ", targets,
                 " targets");
  RECFORGE_CHECK(predictions > 0, "no predictions to score");
}

}  // namespace

float preference_score(const float* logits_row) {
  return logits_row[kYesToken] - logits_row[kNoToken];
}

float expected_rating(const float* logits_row) {
  return expected_rating_of({logits_row + kRating1Token, kNumRatingTokens});
}

float expected_rating_of(std::span<const float> rating_logits) {
  RECFORGE_CHECK(rating_logits.size() == kNumRatingTokens, "expected ", kNumRatingTokens,
                 " rating logits, got ", rating_logits.size());
  const double top = *std::max_element(rating_logits.begin(), rating_logits.end());
  double mass = 0.0, weighted = 0.0;
  for (int r = 1; r <= kNumRatingTokens; ++r) {
    const double p = std::exp(rating_logits[r - 1] - top);
    mass += p;
    weighted += p * r;
  }
  return static_cast<float>(weighted / mass);
}

double auc(std::span<const float> scores, std::span<const float> labels) {
  require_pairs(scores.size(), labels.size());
  const size_t n = scores.size();
  double positives = 0.0;
  for (size_t i = 0; i < n; ++i) {
    RECFORGE_CHECK(labels[i] == 0.0f || labels[i] == 1.0f, "label ", labels[i], " at ", i,
                   " is neither 0 nor 1");
    RECFORGE_CHECK(!std::isnan(scores[i]), "score at ", i, " is NaN");
    positives += labels[i];
  }
  const double negatives = static_cast<double>(n) - positives;
  RECFORGE_CHECK(positives > 0.0 && negatives > 0.0, "AUC needs both classes, got ", positives,
                 " positives and ", negatives, " negatives");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0.0;
  for (size_t begin = 0, end = 0; begin < n; begin = end) {
    while (end < n && scores[order[end]] == scores[order[begin]]) ++end;
    const double mean_rank = 0.5 * static_cast<double>(begin + 1 + end);  // ranks begin+1 .. end
    for (size_t i = begin; i < end; ++i) positive_rank_sum += labels[order[i]] * mean_rank;
  }
  return (positive_rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives);
}

double rmse(std::span<const float> predictions, std::span<const float> targets) {
  require_pairs(predictions.size(), targets.size());
  double sum = 0.0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const double error = static_cast<double>(predictions[i]) - targets[i];
    sum += error * error;
  }
  return std::sqrt(sum / static_cast<double>(predictions.size()));
}

double mae(std::span<const float> predictions, std::span<const float> targets) {
  require_pairs(predictions.size(), targets.size());
  double sum = 0.0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    sum += std::abs(static_cast<double>(predictions[i]) - targets[i]);
  }
  return sum / static_cast<double>(predictions.size());
}

}  // namespace recforge
