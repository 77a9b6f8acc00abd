#include "model/memory.h"

#include <cstdio>

namespace recforge {

MemoryEstimate training_memory(const ModelConfig& config, int64_t max_tokens, Device device) {
  const double V = config.vocab_size, T = config.max_len, C = config.d_model, L = config.n_layer,
               NH = config.n_head, F = static_cast<double>(config.mlp_ratio) * C;
  MemoryEstimate estimate;
  estimate.parameters = V * C + T * C + L * (4 * C * C + 2 * F * C + 9 * C + F) + 2 * C;
  // fp32 parameters, gradients, m and v; on the CPU two host copies during a load as well.
  const double copies = 4 + (device == Device::kCpu ? 2 : 0);
  const double bf16_copy = config.precision == Precision::kBf16 ? 2 : 0;
  estimate.weights = estimate.parameters * (copies * sizeof(float) + bf16_copy);
  const double per_token = C + L * (10 * C + 2 * F + NH + 4) + 9 * C + F + NH + 2;
  estimate.activations = static_cast<double>(max_tokens) * per_token * sizeof(float);
  return estimate;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 6) {
    bytes /= 1000;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.1f %s", bytes, units[unit]);
  return text;
}

}  // namespace recforge
