// AdamW over a model's flat fp32 parameter buffer: owns the moment buffers m and v (same device
// and layout as the parameters), counts steps, and applies global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/adamw.h"
#include "kernels/buffer.h"

namespace recforge {

class AdamW {
 public:
  // `num_decayed`: the leading elements that take weight decay (ParameterLayout::num_decayed).
  AdamW(const Context& ctx, int64_t num_parameters, int64_t num_decayed, AdamWConfig config);

  // One update. `max_grad_norm` <= 0 disables clipping. Returns the gradient norm before clipping.
  // A non-finite gradient norm throws recforge::Error before anything changes.
  float step(Buffer<float>& parameters, Buffer<float>& gradients, float lr, float max_grad_norm);

  int steps_taken() const { return step_; }
  // The moment estimates, for checkpoints; restore() puts saved ones back with their step count.
  Buffer<float>& first_moment() { return m_; }
  Buffer<float>& second_moment() { return v_; }
  void restore(std::span<const float> m, std::span<const float> v, int steps_taken);
  const AdamWConfig& config() const { return config_; }

 private:
  Context ctx_;
  int64_t num_parameters_, num_decayed_;
  AdamWConfig config_;
  Buffer<float> m_, v_;
  int step_ = 0;
};

}  // namespace recforge
