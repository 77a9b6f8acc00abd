// Pre-training objectives over item sequences (PTUM, Wu et al. 2020), as batch construction:
//
//   NBP, next-K behaviors: causal attention over items x_0 .. x_{n-2}; position i predicts each of
//        x_{i+1} .. x_{i+K} that exists. K = 1 is the classic next-item objective (SASRec).
//   MBP, masked behaviors: ceil(mask_ratio · n) distinct positions (at least one) of x_0 .. x_{n-1}
//        become the MASK token; bidirectional attention; each masked position predicts its item.
//
// Both produce a packed batch of input tokens plus item targets [N, K] (item ids, kIgnoreIndex
// where a position predicts nothing). Sequences are right-aligned to max_len (the most recent
// input item takes position max_len - 1), as evaluation and recommendation place histories. The
// loss over the items (full or sampled softmax) is item_loss.h's; the trainer combines them as L =
// L_MBP + λ·L_NBP.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/batch.h"

namespace recforge {

struct ObjectiveBatch {
  PackedBatch inputs;            // tokens and positions (its own `targets` stay empty)
  std::vector<int32_t> targets;  // [N, K] item ids, kIgnoreIndex where none
  int K = 1;
  int64_t num_targets = 0;  // entries of `targets` that are not kIgnoreIndex
};

using ItemSequence = std::span<const int32_t>;  // item ids, chronological

// Each sequence must hold at most max_len + 1 items and at least 2 (shorter ones are skipped).
ObjectiveBatch make_next_items_batch(std::span<const ItemSequence> sequences, int next_k,
                                     int max_len);

// Each sequence must hold at most max_len items and at least 1. The masked positions are drawn
// from the counter-based generator with (seed, stream = batch's step) and the sequence's index
// (first_index + its index in `sequences`: a data-parallel rank passes where its slice starts),
// so a batch is the same on every run, after a resume and for any number of ranks.
ObjectiveBatch make_masked_items_batch(std::span<const ItemSequence> sequences, float mask_ratio,
                                       int max_len, uint64_t seed, uint64_t stream,
                                       size_t first_index = 0);

}  // namespace recforge
