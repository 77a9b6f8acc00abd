#include "model/batch.h"

#include <algorithm>

#include "kernels/cross_entropy.h"

namespace recforge {

int PackedBatch::max_length() const {
  int longest = 0;
  for (int b = 0; b < num_sequences(); ++b)
    longest = std::max(longest, offsets[b + 1] - offsets[b]);
  return longest;
}

void PackedBatch::add_sequence(std::span<const int32_t> sequence_tokens,
                               std::span<const int32_t> sequence_targets, int32_t first_position) {
  RECFORGE_CHECK(sequence_targets.empty() || sequence_targets.size() == sequence_tokens.size(),
                 "a sequence of ", sequence_tokens.size(), " tokens got ", sequence_targets.size(),
                 " targets");
  if (offsets.empty()) offsets.push_back(0);
  for (size_t i = 0; i < sequence_tokens.size(); ++i) {
    tokens.push_back(sequence_tokens[i]);
    positions.push_back(first_position + static_cast<int32_t>(i));
    if (!sequence_targets.empty()) targets.push_back(sequence_targets[i]);
  }
  offsets.push_back(static_cast<int32_t>(tokens.size()));
}

void PackedBatch::add_recent_sequence(std::span<const int32_t> sequence_tokens, int32_t max_len) {
  RECFORGE_CHECK(sequence_tokens.size() <= static_cast<size_t>(max_len), "a sequence of ",
                 sequence_tokens.size(), " tokens does not fit max_len ", max_len);
  add_sequence(sequence_tokens, {}, max_len - static_cast<int32_t>(sequence_tokens.size()));
}

void PackedBatch::validate(const BatchLimits& config) const {
  const size_t N = tokens.size();
  RECFORGE_CHECK(!offsets.empty() && offsets.front() == 0, "batch offsets must start at 0");
  RECFORGE_CHECK(offsets.back() == static_cast<int32_t>(N), "batch offsets end at ", offsets.back(),
                 " but the batch holds ", N, " tokens");
  RECFORGE_CHECK(positions.size() == N, "batch has ", N, " tokens but ", positions.size(),
                 " positions");
  RECFORGE_CHECK(targets.empty() || targets.size() == N, "batch has ", N, " tokens but ",
                 targets.size(), " targets");
  for (int b = 0; b < num_sequences(); ++b) {
    int length = offsets[b + 1] - offsets[b];
    RECFORGE_CHECK(length >= 0, "batch offsets decrease at sequence ", b);
    RECFORGE_CHECK(length <= config.max_len, "sequence ", b, " has ", length,
                   " tokens, more than model.max_len = ", config.max_len);
  }
  for (size_t n = 0; n < N; ++n) {
    RECFORGE_CHECK(tokens[n] >= 0 && tokens[n] < config.vocab_size, "token ", tokens[n], " at row ",
                   n, " is outside the vocabulary [0, ", config.vocab_size, ")");
    RECFORGE_CHECK(positions[n] >= 0 && positions[n] < config.max_len, "position ", positions[n],
                   " at row ", n, " is outside [0, ", config.max_len, ")");
    RECFORGE_CHECK(targets.empty() || targets[n] == kIgnoreIndex ||
                       (targets[n] >= 0 && targets[n] < config.vocab_size),
                   "target ", targets[n], " at row ", n, " is outside the vocabulary [0, ",
                   config.vocab_size, ") and is not the ignore index ", kIgnoreIndex);
  }
}

PackedBatch empty_batch() {
  PackedBatch batch;
  batch.offsets.push_back(0);
  return batch;
}

PackedBatch pack_padded(std::span<const int32_t> tokens, std::span<const int32_t> lengths, int T,
                        std::span<const int32_t> targets) {
  const size_t B = lengths.size();
  RECFORGE_CHECK(tokens.size() == B * T, "padded tokens hold ", tokens.size(),
                 " entries, expected B·T = ", B, "·", T);
  RECFORGE_CHECK(targets.empty() || targets.size() == tokens.size(), "padded targets hold ",
                 targets.size(), " entries, expected ", tokens.size());
  PackedBatch batch = empty_batch();
  for (size_t b = 0; b < B; ++b) {
    RECFORGE_CHECK(lengths[b] >= 0 && lengths[b] <= T, "length ", lengths[b], " of row ", b,
                   " is outside [0, ", T, "]");
    auto row = tokens.subspan(b * T, lengths[b]);
    batch.add_sequence(row, targets.empty() ? targets : targets.subspan(b * T, lengths[b]));
  }
  return batch;
}

ScatterIndex DeviceBatch::DeviceScatterIndex::view() const {
  return {keys.data(), starts.data(), rows.data(), static_cast<int>(keys.size())};
}

DeviceBatch::DeviceScatterIndex DeviceBatch::upload(Device device, const ScatterIndexHost& host) {
  return {Buffer<int32_t>(device, host.keys), Buffer<int32_t>(device, host.starts),
          Buffer<int32_t>(device, host.rows)};
}

namespace {
int validated_size(const PackedBatch& batch, const BatchLimits& limits) {
  batch.validate(limits);
  return batch.num_tokens();
}
}  // namespace

DeviceBatch::DeviceBatch(Device device, const PackedBatch& batch, const ModelConfig& config)
    : DeviceBatch(device, batch, BatchLimits{config.vocab_size, config.max_len}) {}

DeviceBatch::DeviceBatch(Device device, const PackedBatch& batch, const BatchLimits& config)
    : num_tokens_(validated_size(batch, config)),
      num_counted_targets_(count_targets(batch.targets)),
      tokens_(device, batch.tokens),
      positions_(device, batch.positions),
      offsets_(device, batch.offsets),
      targets_(device, batch.targets) {
  sequences_ = {offsets_.data(), batch.num_sequences(), num_tokens_, batch.max_length()};
  token_index_ = upload(device, build_scatter_index(batch.tokens, config.vocab_size));
  position_index_ = upload(device, build_scatter_index(batch.positions, config.max_len));
}

}  // namespace recforge
