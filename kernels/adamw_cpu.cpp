#include <cmath>

#include "kernels/adamw.h"
#include "kernels/dispatch.h"

namespace recforge {

AdamWStep adamw_step(const AdamWConfig& config, int step) {
  return {config.lr,
          config.beta1,
          config.beta2,
          config.eps,
          config.weight_decay,
          1.0f - std::pow(config.beta1, static_cast<float>(step)),
          1.0f - std::pow(config.beta2, static_cast<float>(step))};
}

namespace cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  int64_t num_decayed, const AdamWConfig& config, int step, float grad_scale) {
  const AdamWStep s = adamw_step(config, step);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    adamw_element(params + i, m + i, v + i, grads[i] * grad_scale,
                  i < num_decayed ? s.weight_decay : 0.0f, s);
  }
}

}  // namespace cpu

void adamw_update(const Context& ctx, float* params, const float* grads, float* m, float* v,
                  int64_t n, int64_t num_decayed, const AdamWConfig& config, int step,
                  float grad_scale) {
  RECFORGE_CHECK(step >= 1, "adamw_update: step counts from 1, got ", step);
  RECFORGE_CHECK(num_decayed >= 0 && num_decayed <= n, "adamw_update: num_decayed ", num_decayed,
                 " outside [0, ", n, "]");
  dispatch(
      ctx, "adamw_update",
      [&](const auto& on) {
        cuda::adamw_update(on, params, grads, m, v, n, num_decayed, config, step, grad_scale);
      },
      [&] { cpu::adamw_update(params, grads, m, v, n, num_decayed, config, step, grad_scale); });
}

}  // namespace recforge
