#include "train/optimizer.h"

#include <cmath>

#include "kernels/global_norm.h"

namespace recforge {

ParameterGroup whole_buffer(Buffer<float>& parameters, const Buffer<float>& gradients,
                            int64_t num_decayed) {
  RECFORGE_CHECK(parameters.size() == gradients.size(), "parameters (", parameters.size(),
                 ") and gradients (", gradients.size(), ") differ in size");
  return {parameters.data(), gradients.data(), static_cast<int64_t>(parameters.size()),
          num_decayed};
}

namespace {

int64_t total_size(const std::vector<ParameterGroup>& groups) {
  int64_t total = 0;
  for (const ParameterGroup& g : groups) {
    RECFORGE_CHECK(g.size > 0 && g.num_decayed >= 0 && g.num_decayed <= g.size &&
                       g.parameters != nullptr && g.gradients != nullptr && g.lr_scale > 0.0f,
                   "AdamW: a parameter group of ", g.size, " elements (", g.num_decayed,
                   " decayed, lr scale ", g.lr_scale, ") is malformed");
    total += g.size;
  }
  return total;
}

}  // namespace

AdamW::AdamW(const Context& ctx, std::vector<ParameterGroup> groups, AdamWConfig config)
    : ctx_(ctx),
      groups_(std::move(groups)),
      num_trainable_(total_size(groups_)),
      config_(config),
      m_(ctx.device(), num_trainable_),
      v_(ctx.device(), num_trainable_) {
  m_.zero(ctx_);
  v_.zero(ctx_);
}

// The norm of all groups' gradients together: sqrt(Σ_g ‖grad_g‖²).
float AdamW::step(float lr, float max_grad_norm) {
  double squares = 0.0;
  for (const ParameterGroup& g : groups_) {
    const double norm = global_norm(ctx_, g.gradients, g.size);
    squares += norm * norm;
  }
  const float norm = static_cast<float>(std::sqrt(squares));
  RECFORGE_CHECK(std::isfinite(norm), "the gradient norm is ", norm, " at step ", step_ + 1,
                 ": training stopped before the update");
  const float clip = clip_factor(norm, max_grad_norm);
  ++step_;
  int64_t offset = 0;
  for (const ParameterGroup& g : groups_) {
    AdamWConfig config = config_;
    config.lr = lr * g.lr_scale;
    adamw_update(ctx_, g.parameters, g.gradients, m_.data() + offset, v_.data() + offset, g.size,
                 g.num_decayed, config, step_, clip);
    offset += g.size;
  }
  return norm;
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, int steps_taken) {
  RECFORGE_CHECK(m.size() == static_cast<size_t>(num_trainable_) && v.size() == m.size(),
                 "optimizer state holds ", m.size(), " and ", v.size(), " moments, expected ",
                 num_trainable_);
  m_.upload(m);
  v_.upload(v);
  step_ = steps_taken;
}

}  // namespace recforge
