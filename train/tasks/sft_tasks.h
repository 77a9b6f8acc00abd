// Supervised fine-tuning tasks as token templates (P5, Geng et al. 2022; TALLRec, Bao et al. 2023,
// over item tokens instead of titles): one decoder, several tasks, each a prompt that opens with
// its task token and an answer token predicted at the prompt's last position. Prompt tokens never
// carry a loss; the answer is the only target.
//
//   next_item    [TASK_NEXT_ITEM] i_1 i_2 … i_t                                → i_{t+1}
//   preference   [TASK_PREFERENCE] l_1 … l_a SEP d_1 … d_b SEP target          → YES | NO
//   rating       [TASK_RATING] i_1 r_1 i_2 r_2 … i_k r_k SEP target            → r (RATING_1..5)
//
// Examples come from an EventSplit (train/data/event_split.h): the event being predicted is the
// target, and every prompt shows only that event's history (the events strictly before it), its
// most recent events that fit:
//   next_item:   the last min(max_history, max_len − 1) history items.
//   preference:  walking the history from the most recent event back, an item goes to the liked
//                side (rating >= like_threshold) or the disliked side, until each side holds
//                max_per_side items or the prompt holds max_len tokens (a + b + 4 <= max_len);
//                both sides are then written oldest first. The answer is YES when the target's own
//                rating is >= like_threshold.
//   rating:      the last min(max_history, ⌊(max_len − 3)/2⌋) history events, each item followed by
//                its rating token. Ratings must be in [1, 5]; a token is the rating rounded to the
//                nearest integer.
// Which events are targets: for the training part, every training event with a non-empty history
// (with max_train_examples_per_user > 0, a seeded sample of that many per user, kept in
// chronological order); for valid and test, every held-out event of the part with a non-empty
// history. A held-out prompt may show earlier held-out events (they are in its past), never the
// target's second or later. Examples are ordered by user, then event. preference and rating need
// ratings.
#pragma once

#include <cstdint>
#include <vector>

#include "model/batch.h"
#include "train/config/config.h"
#include "train/data/event_split.h"

namespace recforge {

struct SftExample {
  std::vector<int32_t> prompt;  // tokens, task token first, at most max_len of them
  int32_t answer = 0;           // the token the prompt's last position predicts
  float label =
      0.0f;          // preference: 1 (YES) or 0 (NO); rating: the true rating; next_item: the item
  int32_t user = 0;  // the target event: the user's events()[event]
  int32_t event = 0;
};

struct SftOptions {
  int max_len = 50;                     // prompt tokens at most, task token included
  int max_history = 0;                  // next_item, rating: history events shown (0: all that fit)
  int max_per_side = 10;                // preference: liked and disliked items shown, each
  float like_threshold = 4.0f;          // liked: rating >= like_threshold
  int max_train_examples_per_user = 0;  // train part: 0 = every eligible event
  uint64_t seed = 0;                    // the per-user sample of training events
};

std::vector<SftExample> build_next_item_examples(const EventSplit& split, SplitPart part,
                                                 const SftOptions& options);
std::vector<SftExample> build_preference_examples(const EventSplit& split, SplitPart part,
                                                  const SftOptions& options);
std::vector<SftExample> build_rating_examples(const EventSplit& split, SplitPart part,
                                              const SftOptions& options);
// The builder of `task`.
std::vector<SftExample> build_sft_examples(SftTask task, const EventSplit& split, SplitPart part,
                                           const SftOptions& options);

// Appends the example's prompt as one sequence right-aligned to max_len (its last token at position
// max_len − 1, as PackedBatch::add_recent_sequence), with targets kIgnoreIndex everywhere but the
// last position, whose target is the answer. The batch's targets must be as long as its tokens.
void append_example(PackedBatch& batch, const SftExample& example, int max_len);

}  // namespace recforge
