#include "train/tasks/sft_tasks.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"
#include "kernels/math.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

// The target events of one user's part: every event with a non-empty history; for the training
// part, at most `cap` of them (cap > 0), the first `cap` of a Philox-keyed Fisher–Yates shuffle
// (stream = user), returned in chronological order.
std::vector<int32_t> target_events(const EventSplit& split, int32_t user, SplitPart part,
                                   const SftOptions& options) {
  const EventRange range = split.range(user, part);
  std::vector<int32_t> events;
  for (int64_t j = range.begin; j < range.end; ++j) {
    if (split.history_end(user, j) > 0) events.push_back(static_cast<int32_t>(j));
  }
  const auto cap = static_cast<int32_t>(options.max_train_examples_per_user);
  const auto n = static_cast<int32_t>(events.size());
  if (part != SplitPart::kTrain || cap == 0 || n <= cap) return events;
  for (int32_t i = 0; i < cap; ++i) {
    const float u = philox_uniform(options.seed, static_cast<uint64_t>(user), i);
    const int32_t j = i + std::min(n - i - 1, static_cast<int32_t>(u * (n - i)));
    std::swap(events[i], events[j]);
  }
  events.resize(cap);
  std::sort(events.begin(), events.end());
  return events;
}

// Runs make(user, event, history_end) -> SftExample for every target event of the part.
template <typename Make>
std::vector<SftExample> build_examples(const EventSplit& split, SplitPart part,
                                       const SftOptions& options, int min_max_len, Make make) {
  RECFORGE_CHECK(options.max_len >= min_max_len, "max_len must be at least ", min_max_len,
                 " for this task, got ", options.max_len);
  RECFORGE_CHECK(options.max_history >= 0, "max_history must be >= 0, got ", options.max_history);
  RECFORGE_CHECK(options.max_train_examples_per_user >= 0,
                 "max_train_examples_per_user must be >= 0, got ",
                 options.max_train_examples_per_user);
  std::vector<SftExample> examples;
  for (int32_t u = 0; u < split.dataset().num_users(); ++u) {
    for (int32_t event : target_events(split, u, part, options)) {
      SftExample example = make(u, event, static_cast<int32_t>(split.history_end(u, event)));
      example.user = u;
      example.event = event;
      examples.push_back(std::move(example));
    }
  }
  return examples;
}

// How many of the `available` most recent history events a prompt shows.
int32_t shown(int32_t available, int32_t room, int max_history) {
  const int32_t limit = max_history > 0 ? std::min(room, max_history) : room;
  return std::min(available, limit);
}

int32_t rating_answer(const Dataset& data, int32_t user, int32_t event) {
  const float rating = data.ratings(user)[event];
  RECFORGE_CHECK(rating >= 1.0f && rating <= 5.0f, "rating ", rating, " of user ",
                 data.user_name(user), " (event ", event, ") is outside [1, 5]");
  return rating_token(static_cast<int32_t>(std::lround(rating)));
}

void require_ratings(const Dataset& data, const char* task) {
  RECFORGE_CHECK(data.has_ratings(), "the ", task, " task needs ratings, and the dataset ",
                 data.directory().string(), " has none");
}

}  // namespace

std::vector<SftExample> build_next_item_examples(const EventSplit& split, SplitPart part,
                                                 const SftOptions& options) {
  const Dataset& data = split.dataset();
  return build_examples(split, part, options, 2, [&](int32_t u, int32_t event, int32_t history) {
    std::span<const int32_t> items = data.items(u);
    const int32_t t = shown(history, options.max_len - 1, options.max_history);
    SftExample example;
    example.prompt.push_back(kTaskNextItemToken);
    for (int32_t k = history - t; k < history; ++k) example.prompt.push_back(item_token(items[k]));
    example.answer = item_token(items[event]);
    example.label = static_cast<float>(items[event]);
    return example;
  });
}

std::vector<SftExample> build_preference_examples(const EventSplit& split, SplitPart part,
                                                  const SftOptions& options) {
  const Dataset& data = split.dataset();
  require_ratings(data, "preference");
  RECFORGE_CHECK(options.max_per_side >= 1, "max_per_side must be >= 1, got ",
                 options.max_per_side);
  RECFORGE_CHECK(std::isfinite(options.like_threshold), "like_threshold must be finite, got ",
                 options.like_threshold);
  constexpr int kFixedTokens = 4;  // task token, two SEPs, target
  return build_examples(
      split, part, options, kFixedTokens + 1, [&](int32_t u, int32_t event, int32_t history) {
        std::span<const int32_t> items = data.items(u);
        std::span<const float> ratings = data.ratings(u);
        std::vector<int32_t> liked, disliked;  // most recent first
        for (int32_t k = history - 1; k >= 0; --k) {
          const bool full = static_cast<int>(liked.size()) == options.max_per_side &&
                            static_cast<int>(disliked.size()) == options.max_per_side;
          const int tokens = static_cast<int>(liked.size() + disliked.size()) + kFixedTokens;
          if (full || tokens == options.max_len) break;
          std::vector<int32_t>& side = ratings[k] >= options.like_threshold ? liked : disliked;
          if (static_cast<int>(side.size()) < options.max_per_side) side.push_back(items[k]);
        }
        SftExample example;
        example.prompt.push_back(kTaskPreferenceToken);
        for (auto it = liked.rbegin(); it != liked.rend(); ++it)
          example.prompt.push_back(item_token(*it));
        example.prompt.push_back(kSepToken);
        for (auto it = disliked.rbegin(); it != disliked.rend(); ++it)
          example.prompt.push_back(item_token(*it));
        example.prompt.push_back(kSepToken);
        example.prompt.push_back(item_token(items[event]));
        const bool likes = ratings[event] >= options.like_threshold;
        example.answer = likes ? kYesToken : kNoToken;
        example.label = likes ? 1.0f : 0.0f;
        return example;
      });
}

std::vector<SftExample> build_rating_examples(const EventSplit& split, SplitPart part,
                                              const SftOptions& options) {
  const Dataset& data = split.dataset();
  require_ratings(data, "rating");
  constexpr int kFixedTokens = 3;  // task token, SEP, target
  return build_examples(
      split, part, options, kFixedTokens + 2, [&](int32_t u, int32_t event, int32_t history) {
        std::span<const int32_t> items = data.items(u);
        const int32_t k = shown(history, (options.max_len - kFixedTokens) / 2, options.max_history);
        SftExample example;
        example.prompt.push_back(kTaskRatingToken);
        for (int32_t j = history - k; j < history; ++j) {
          example.prompt.push_back(item_token(items[j]));
          example.prompt.push_back(rating_answer(data, u, j));
        }
        example.prompt.push_back(kSepToken);
        example.prompt.push_back(item_token(items[event]));
        example.answer = rating_answer(data, u, event);
        example.label = data.ratings(u)[event];
        return example;
      });
}

std::vector<SftExample> build_sft_examples(SftTask task, const EventSplit& split, SplitPart part,
                                           const SftOptions& options) {
  switch (task) {
    case SftTask::kNextItem:
      return build_next_item_examples(split, part, options);
    case SftTask::kPreference:
      return build_preference_examples(split, part, options);
    case SftTask::kRating:
      return build_rating_examples(split, part, options);
  }
  return {};
}

void append_example(PackedBatch& batch, const SftExample& example, int max_len) {
  const auto length = static_cast<int32_t>(example.prompt.size());
  RECFORGE_CHECK(length >= 1 && length <= max_len, "a prompt of ", length,
                 " tokens does not fit max_len ", max_len);
  RECFORGE_CHECK(batch.targets.size() == batch.tokens.size(), "the batch holds ",
                 batch.tokens.size(), " tokens but ", batch.targets.size(), " targets");
  std::vector<int32_t> targets(length, kIgnoreIndex);
  targets.back() = example.answer;
  batch.add_sequence(example.prompt, targets, max_len - length);
}

}  // namespace recforge
