// AdamW over one flat fp32 parameter buffer (the master weights), with decoupled weight decay.
// Parameters are laid out so every tensor that decays (matrices, embeddings) comes first: elements
// [0, num_decayed) get weight decay, the rest (layer-norm gains, biases) do not. The element update
// is adamw_element in kernels/math.h. `grad_scale` multiplies every gradient first (clipping,
// loss scaling).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/math.h"

namespace recforge {

struct AdamWConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// The per-step constants of the element update, bias corrections 1 − βᵗ included; both backends
// compute them on the host with this one function.
AdamWStep adamw_step(const AdamWConfig& config, int step);

namespace cpu {
// params, grads, m, v [n]; step t >= 1 (bias correction).
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  int64_t num_decayed, const AdamWConfig& config, int step, float grad_scale);
}  // namespace cpu

namespace cuda {
void adamw_update(const Context& ctx, float* params, const float* grads, float* m, float* v,
                  int64_t n, int64_t num_decayed, const AdamWConfig& config, int step,
                  float grad_scale);
}  // namespace cuda

void adamw_update(const Context& ctx, float* params, const float* grads, float* m, float* v,
                  int64_t n, int64_t num_decayed, const AdamWConfig& config, int step,
                  float grad_scale = 1.0f);

}  // namespace recforge
