// Packed ("jagged") batches: the N real tokens of B variable-length sequences, back to back, plus
// an offsets array. Token-wise kernels see N rows; only attention reads the offsets. A padded
// [B, T] batch with lengths is accepted at the edge and packed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/attention.h"
#include "kernels/buffer.h"
#include "kernels/embedding.h"
#include "model/config.h"

namespace recforge {

// What a batch's ids must fit: tokens and targets in [0, vocab_size), sequences and positions
// within max_len.
struct BatchLimits {
  int vocab_size = 0;
  int max_len = 0;
};

struct PackedBatch {
  std::vector<int32_t> tokens;     // [N] token ids
  std::vector<int32_t> positions;  // [N] position of each token within its sequence
  std::vector<int32_t> offsets;    // [B + 1], offsets[0] = 0, offsets[B] = N
  std::vector<int32_t>
      targets;  // [N] target token per position, kIgnoreIndex where none (may be empty)

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_sequences() const { return static_cast<int>(offsets.size()) - 1; }
  int max_length() const;
  // Appends one sequence with positions first_position .. first_position + len - 1; `targets`
  // empty or of the same length.
  void add_sequence(std::span<const int32_t> sequence_tokens,
                    std::span<const int32_t> sequence_targets = {}, int32_t first_position = 0);
  // Appends a sequence right-aligned to max_len (SASRec's convention): its last token takes
  // position max_len - 1, so position embeddings encode recency, not distance from the start.
  void add_recent_sequence(std::span<const int32_t> sequence_tokens, int32_t max_len);
  // Throws recforge::Error naming the first inconsistency (sizes, offsets, ids out of range).
  void validate(const BatchLimits& limits) const;
  void validate(const ModelConfig& config) const {
    validate(BatchLimits{config.vocab_size, config.max_len});
  }
};

PackedBatch empty_batch();

// Packs a padded batch: tokens [B, T] row-major, lengths [B] (0 <= lengths[b] <= T); only the first
// lengths[b] tokens of row b are kept. `targets` is empty or [B, T] like tokens.
PackedBatch pack_padded(std::span<const int32_t> tokens, std::span<const int32_t> lengths, int T,
                        std::span<const int32_t> targets = {});

// A validated batch on the model's device, with the host-built scatter indices that make the
// embedding backward deterministic.
class DeviceBatch {
 public:
  DeviceBatch(Device device, const PackedBatch& batch, const ModelConfig& config);
  DeviceBatch(Device device, const PackedBatch& batch, const BatchLimits& limits);

  int num_tokens() const { return num_tokens_; }
  const int32_t* tokens() const { return tokens_.data(); }
  const int32_t* positions() const { return positions_.data(); }
  // Null when the batch has no targets.
  const int32_t* targets() const { return targets_.size() ? targets_.data() : nullptr; }
  int64_t num_counted_targets() const { return num_counted_targets_; }
  const PackedSequences& sequences() const { return sequences_; }
  ScatterIndex token_index() const { return token_index_.view(); }
  ScatterIndex position_index() const { return position_index_.view(); }

 private:
  struct DeviceScatterIndex {
    Buffer<int32_t> keys, starts, rows;
    ScatterIndex view() const;
  };
  static DeviceScatterIndex upload(Device device, const ScatterIndexHost& host);

  int num_tokens_ = 0;
  int64_t num_counted_targets_ = 0;
  Buffer<int32_t> tokens_, positions_, offsets_, targets_;
  PackedSequences sequences_;
  DeviceScatterIndex token_index_, position_index_;
};

}  // namespace recforge
