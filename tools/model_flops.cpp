#include "tools/model_flops.h"

namespace recforge {

int64_t matmul_parameters(const ModelConfig& config) {
  const int64_t C = config.d_model, L = config.n_layer, V = config.vocab_size;
  return L * (4 + 2 * int64_t{config.mlp_ratio}) * C * C + V * C;
}

double attended_keys(std::span<const int32_t> lengths, AttentionMask mask) {
  double keys = 0;
  for (int32_t length : lengths) {
    const double T = length;
    keys += mask == AttentionMask::kCausal ? T * (T + 1) / 2 : T * T;
  }
  return keys;
}

StepFlops train_step_flops(const ModelConfig& config, std::span<const int32_t> lengths,
                           AttentionMask mask) {
  StepFlops flops;
  for (int32_t length : lengths) flops.tokens += length;
  flops.matmul_parameters = matmul_parameters(config);
  flops.attended_keys = attended_keys(lengths, mask);
  flops.matmul = 2.0 * double(flops.matmul_parameters) * double(flops.tokens);
  flops.attention = 4.0 * config.n_layer * config.d_model * flops.attended_keys;
  return flops;
}

}  // namespace recforge
