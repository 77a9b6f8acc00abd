// A short training run for precision tests: a small decoder learns a planted next-item rule
// (item x is followed by item 16 + (3·x + 1) mod 128) from fresh packed batches of uneven
// sequences, with dropout, AdamW and clipping, and reports the loss of every step. The same
// arguments give the same batches and initial weights on every device and precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "tests/support/small_decoder.h"
#include "train/optim/optimizer.h"
#include "train/tasks/next_token.h"
#include "train/train_step.h"

namespace recforge::testing {

// Tokens 16 + item for the 128 items, sequences of up to 32.
inline ModelConfig loss_curve_config(Precision precision) {
  return small_decoder_config(precision, 16 + 128, 32);
}

// Step `step`'s batch: 12 sequences of 1 to 32 items following the rule from a random start.
inline PackedBatch planted_rule_batch(uint32_t step) {
  std::mt19937 rng(1000 + step);
  std::uniform_int_distribution<int32_t> start(0, 127), length(1, 32);
  PackedBatch batch = empty_batch();
  for (int s = 0; s < 12; ++s) {
    std::vector<int32_t> items{start(rng)};
    const int n = length(rng);
    while (static_cast<int>(items.size()) < n) items.push_back((3 * items.back() + 1) % 128);
    std::vector<int32_t> tokens, targets;
    for (size_t i = 0; i < items.size(); ++i) {
      tokens.push_back(16 + items[i]);
      targets.push_back(i + 1 < items.size() ? 16 + items[i + 1] : kIgnoreIndex);
    }
    batch.add_sequence(tokens, targets);
  }
  return batch;
}

// The loss of each of `steps` AdamW steps (lr 3e-3, clip 1) from the seed-0 initialization.
inline std::vector<double> loss_curve(const Context& ctx, Precision precision, int steps) {
  const ModelConfig config = loss_curve_config(precision);
  Decoder<float> model(ctx, config, 12 * config.max_len);
  AdamW optimizer(
      ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    DeviceBatch batch(ctx.device(), planted_rule_batch(step), config);
    const ForwardOptions options{AttentionMask::kCausal, true, 77u + step};
    auto passes = [&](Decoder<float>& m) { return next_token_pass(m, batch, options); };
    losses.push_back(train_step(model, optimizer, passes, {step, 3e-3f, 1.0f}).losses.loss);
  }
  return losses;
}

// Per-step relative gaps |other − reference| / reference between two loss curves of equal length.
struct LossCurveGap {
  double first = 0, mean = 0, max = 0, last = 0;
};

// The gaps, printed under `label` with both curves' first and last losses.
inline LossCurveGap compare_loss_curves(const std::string& label,
                                        const std::vector<double>& reference,
                                        const std::vector<double>& other) {
  LossCurveGap gap;
  for (size_t step = 0; step < reference.size(); ++step) {
    const double difference = std::abs(other[step] - reference[step]) / reference[step];
    gap.max = std::max(gap.max, difference);
    gap.mean += difference / reference.size();
  }
  gap.first = std::abs(other.front() - reference.front()) / reference.front();
  gap.last = std::abs(other.back() - reference.back()) / reference.back();
  std::cout << "[ rel_err ] " << label << ": first " << gap.first << ", mean " << gap.mean
            << ", max " << gap.max << "; reference " << reference.front() << " → "
            << reference.back() << ", other " << other.front() << " → " << other.back()
            << std::endl;
  return gap;
}

}  // namespace recforge::testing
