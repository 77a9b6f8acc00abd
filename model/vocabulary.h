// The token vocabulary of behavior sequences: a fixed block of special tokens, then one token per
// item of the dataset's catalog. Item i (the dataset's internal id, 0-based) is token
// kFirstItemToken + i, so the item embeddings are the contiguous rows
// wte[kFirstItemToken, kFirstItemToken + num_items) and a classifier over items only scores that
// sub-range of the tied output layer.
#pragma once

#include <cstdint>

namespace recforge {

enum SpecialToken : int32_t {
  kPadToken = 0,
  kMaskToken = 1,  // a hidden behavior (masked behavior prediction)
  kBosToken = 2,
  kSepToken = 3,
  kYesToken = 4,  // answer tokens of the preference task
  kNoToken = 5,
  kRating1Token = 6,     // ratings 1..5 are tokens 6..10
  kFirstTaskToken = 11,  // task tokens 11..15
  // The SFT tasks' prompt openers (train/tasks/sft_tasks.h).
  kTaskNextItemToken = kFirstTaskToken,
  kTaskPreferenceToken = kFirstTaskToken + 1,
  kTaskRatingToken = kFirstTaskToken + 2,
};

// Rating r in 1..5 is token kRating1Token + r - 1.
constexpr int32_t kNumRatingTokens = 5;
constexpr int32_t rating_token(int32_t rating) { return kRating1Token + rating - 1; }

constexpr int32_t kFirstItemToken = 16;

constexpr int32_t item_token(int32_t item) { return kFirstItemToken + item; }
constexpr int32_t token_item(int32_t token) { return token - kFirstItemToken; }
constexpr bool is_item_token(int32_t token) { return token >= kFirstItemToken; }
constexpr int32_t vocabulary_size(int32_t num_items) { return kFirstItemToken + num_items; }

}  // namespace recforge
