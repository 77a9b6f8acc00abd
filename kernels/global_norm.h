// Global L2 norm of a gradient buffer and norm clipping. The sum of squares is reduced in a fixed
// order (per-thread / per-block partial sums, then the partials in index order), so the same
// gradients give the same norm, bit for bit, on every run.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace recforge {

namespace cpu {
// Σ x[i]², accumulated in double.
double sum_of_squares(const float* x, int64_t n);
void scale(float* x, int64_t n, float factor);
}  // namespace cpu

namespace cuda {
double sum_of_squares(const Context& ctx, const float* x, int64_t n);
void scale(const Context& ctx, float* x, int64_t n, float factor);
}  // namespace cuda

// Σ x[i]² in double; waits for the device.
double sum_of_squares(const Context& ctx, const float* x, int64_t n);
// √(Σ grads[i]²); waits for the device.
float global_norm(const Context& ctx, const float* grads, int64_t n);
// x[i] *= factor.
void scale(const Context& ctx, float* x, int64_t n, float factor);
// The factor that brings a gradient of norm `norm` down to at most `max_norm` (1 when it is within;
// `max_norm` <= 0 disables clipping).
float clip_factor(float norm, float max_norm);
// Computes the norm, scales the gradients when it exceeds max_norm, returns the norm before
// clipping.
float clip_gradients(const Context& ctx, float* grads, int64_t n, float max_norm);

}  // namespace recforge
