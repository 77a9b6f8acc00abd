// AdamW over the trainable parts of a model: a list of parameter groups, each a contiguous range of
// a flat fp32 buffer (the whole model; or only LoRA adapters and some embedding rows when the rest
// is frozen) with its gradients, its weight-decay boundary and a learning-rate factor. The
// optimizer owns the moments m and v of the groups only, laid end to end in group order, counts
// steps and applies global-norm gradient clipping over all groups together.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/buffer.h"

namespace recforge {

struct ParameterGroup {
  float* parameters = nullptr;
  const float* gradients = nullptr;
  int64_t size = 0;
  int64_t num_decayed = 0;  // the leading elements that take weight decay
  float lr_scale = 1.0f;
};

// Every element of a parameter buffer, its first `num_decayed` elements decayed.
ParameterGroup whole_buffer(Buffer<float>& parameters, const Buffer<float>& gradients,
                            int64_t num_decayed);

class AdamW {
 public:
  AdamW(const Context& ctx, std::vector<ParameterGroup> groups, AdamWConfig config);

  // One update of every group. `max_grad_norm` <= 0 disables clipping. Returns the gradient norm
  // before clipping. A non-finite gradient norm throws recforge::Error before anything changes.
  float step(float lr, float max_grad_norm);

  int steps_taken() const { return step_; }
  int64_t num_trainable() const { return num_trainable_; }
  const std::vector<ParameterGroup>& groups() const { return groups_; }
  // The moment estimates, for checkpoints; restore() puts saved ones back with their step count.
  Buffer<float>& first_moment() { return m_; }
  Buffer<float>& second_moment() { return v_; }
  void restore(std::span<const float> m, std::span<const float> v, int steps_taken);
  const AdamWConfig& config() const { return config_; }

 private:
  Context ctx_;
  std::vector<ParameterGroup> groups_;
  int64_t num_trainable_ = 0;
  AdamWConfig config_;
  Buffer<float> m_, v_;
  int step_ = 0;
};

}  // namespace recforge
