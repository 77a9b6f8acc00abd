// Text examples packed for training, no padding: each sequence is prompt ++ answer, and only the
// rows that predict an answer token have a target (the prompt's last row predicts the answer's
// first token), so the loss and its gradient live on answer tokens only.
//   SFT: one sequence per example, its true answer followed by the end-of-turn token.
//   DPO: one group per example, the true answer's sequence first, then `rejected` others drawn
//        without replacement (a seeded draw per example, fixed for the whole run); no end token,
//        so a sequence's log-probability is the answer's score as evaluation ranks it.
// Micro-batches hold whole examples (an SFT sequence, a DPO group), at most `max_examples` and
// `max_tokens` tokens each, in the examples' order; they are built once, so a reference pass and
// every epoch see the same micro-batches (the epoch shuffles their order, not their contents).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/batch.h"
#include "train/text/text_examples.h"

namespace recforge {

struct TextBatch {
  PackedBatch host;
  std::vector<int> group_sizes;  // sequences of each example, in order (SFT: all 1)
  int64_t answer_tokens = 0;     // the counted targets
};

// The sequence of `prompt` answered by `answer`: tokens [prompt ++ answer ++ end, minus the last
// token] with targets on the answer's (and end's) positions. end < 0: no end token.
void add_answered_sequence(PackedBatch& batch, std::span<const int32_t> prompt,
                           std::span<const int32_t> answer, int32_t end);

std::vector<TextBatch> sft_batches(std::span<const TextExample> examples, int32_t end,
                                   int max_examples, int max_tokens);

// Group size 1 + rejected (capped at an example's answer count).
std::vector<TextBatch> dpo_batches(std::span<const TextExample> examples, int rejected,
                                   uint64_t seed, int max_examples, int max_tokens);

}  // namespace recforge
