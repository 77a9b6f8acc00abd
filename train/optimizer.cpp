#include "train/optimizer.h"

#include <cmath>

#include "kernels/global_norm.h"

namespace recforge {

AdamW::AdamW(const Context& ctx, int64_t num_parameters, int64_t num_decayed, AdamWConfig config)
    : ctx_(ctx),
      num_parameters_(num_parameters),
      num_decayed_(num_decayed),
      config_(config),
      m_(ctx.device(), num_parameters),
      v_(ctx.device(), num_parameters) {
  m_.zero(ctx_);
  v_.zero(ctx_);
}

float AdamW::step(Buffer<float>& parameters, Buffer<float>& gradients, float lr,
                  float max_grad_norm) {
  RECFORGE_CHECK(parameters.size() == static_cast<size_t>(num_parameters_) &&
                     gradients.size() == parameters.size(),
                 "optimizer built for ", num_parameters_, " parameters got buffers of ",
                 parameters.size(), " and ", gradients.size());
  float norm = global_norm(ctx_, gradients.data(), num_parameters_);
  RECFORGE_CHECK(std::isfinite(norm), "the gradient norm is ", norm, " at step ", step_ + 1,
                 ": training stopped before the update");
  AdamWConfig config = config_;
  config.lr = lr;
  adamw_update(ctx_, parameters.data(), gradients.data(), m_.data(), v_.data(), num_parameters_,
               num_decayed_, config, ++step_, clip_factor(norm, max_grad_norm));
  return norm;
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, int steps_taken) {
  RECFORGE_CHECK(m.size() == static_cast<size_t>(num_parameters_) && v.size() == m.size(),
                 "optimizer state holds ", m.size(), " and ", v.size(), " moments, expected ",
                 num_parameters_);
  m_.upload(m);
  v_.upload(v);
  step_ = steps_taken;
}

}  // namespace recforge
