// Per-element math shared by the CPU and CUDA backends. Every function here is compiled for both
// (`RECFORGE_HD`), so the CPU tests cover the arithmetic the GPU kernels run; only indexing, tiling
// and shared memory are CUDA-only.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu_math.h"

#if defined(__CUDACC__)
#define RECFORGE_HD __host__ __device__ __forceinline__
#else
#define RECFORGE_HD inline
#endif

namespace recforge {

// exp for the elementwise math: the hardware approximation on the GPU, the vectorizable
// polynomial on the CPU (kernels/cpu_math.h), std::exp in float64.
RECFORGE_HD float elementwise_exp(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  return cpu::vexp(x);
#endif
}
RECFORGE_HD double elementwise_exp(double x) { return exp(x); }

// ---- GELU, tanh approximation (GPT-2, PyTorch's gelu(approximate="tanh")) --------------------
//   gelu(x) = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
// Since 0.5·(1 + tanh(u)) = σ(2u), this is x·σ(2u) = x / (1 + exp(−2u)), which needs one exp
// (and vectorizes on the CPU, where tanh would be a libm call):
//   gelu'(x) = σ(2u) + 2·x·σ(2u)·(1 − σ(2u))·u',  u' = √(2/π)·(1 + 3·0.044715·x²)
template <typename T>
RECFORGE_HD T gelu_sigmoid(T x) {
  const T k = T(0.7978845608028654);  // √(2/π)
  T u = k * (x + T(0.044715) * x * x * x);
  return T(1) / (T(1) + elementwise_exp(T(-2) * u));
}

template <typename T>
RECFORGE_HD T gelu(T x) {
  return x * gelu_sigmoid(x);
}

template <typename T>
RECFORGE_HD T gelu_grad(T x) {
  const T k = T(0.7978845608028654);
  T s = gelu_sigmoid(x);
  return s + T(2) * x * s * (T(1) - s) * k * (T(1) + T(3 * 0.044715) * x * x);
}

// ---- Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11; Random123) ------------
// A pure function of (key, counter): element i of a dropout mask is the same number on every
// device, thread layout and call order, so the backward regenerates the mask instead of storing it.
struct Philox4 {
  uint32_t v[4];
};

RECFORGE_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

RECFORGE_HD Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(0xD2511F53u, counter.v[0], &hi0);
    uint32_t lo1 = mulhilo32(0xCD9E8D57u, counter.v[2], &hi1);
    counter = Philox4{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return counter;
}

// Uniform float in [0, 1) from the top 24 bits.
RECFORGE_HD float uint_to_unit_float(uint32_t x) { return (x >> 8) * (1.0f / 16777216.0f); }

// The uniform number for element `index` of random stream `stream` under `seed`: one Philox call
// yields four numbers, for elements 4j..4j+3.
RECFORGE_HD float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t block = index >> 2;
  Philox4 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                   static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  Philox4 r =
      philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return uint_to_unit_float(r.v[index & 3]);
}

// Inverted dropout: an element is kept with probability 1 − p and then scaled by 1/(1 − p).
RECFORGE_HD float dropout_multiplier(float p, uint64_t seed, uint64_t stream, uint64_t index) {
  return philox_uniform(seed, stream, index) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// ---- AdamW (Loshchilov & Hutter), decoupled weight decay, PyTorch's formulation ----------------
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   θ ← θ − lr·( (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε) + λ·θ )
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1;  // 1 − β1ᵗ
  float bias_correction2;  // 1 − β2ᵗ
};

RECFORGE_HD void adamw_element(float* param, float* m, float* v, float grad, float weight_decay,
                               const AdamWStep& s) {
  float m_new = s.beta1 * *m + (1.0f - s.beta1) * grad;
  float v_new = s.beta2 * *v + (1.0f - s.beta2) * grad * grad;
  float m_hat = m_new / s.bias_correction1;
  float v_hat = v_new / s.bias_correction2;
  *m = m_new;
  *v = v_new;
  *param -= s.lr * (m_hat / (sqrtf(v_hat) + s.eps) + weight_decay * *param);
}

// ---- Online softmax (Milakov & Gimelshein): a running (max, sum of exp(x − max)) pair ---------
struct OnlineSoftmax {
  float max;
  float sum;
};

RECFORGE_HD OnlineSoftmax online_softmax_merge(OnlineSoftmax a, OnlineSoftmax b) {
  if (a.max < b.max) {
    OnlineSoftmax t = a;
    a = b;
    b = t;
  }
  if (b.sum == 0.0f) return a;
  return OnlineSoftmax{a.max, a.sum + b.sum * expf(b.max - a.max)};
}

// ---- Sampled softmax (kernels/sampled_softmax.h) ---------------------------------------------
// A negative's logit: its scaled dot product minus its log sampling probability, or −∞ (removed)
// when it is the row's positive.
template <typename T>
RECFORGE_HD T sampled_negative_logit(T scaled_dot, T log_q, int32_t negative, int32_t positive) {
  return negative == positive ? -static_cast<T>(INFINITY) : scaled_dot - log_q;
}

// A candidate's logit gradient, scale · (π − [candidate is the positive]), π = exp(logit − lse);
// 0 for a removed negative (logit −∞).
template <typename T>
RECFORGE_HD T sampled_logit_gradient(T logit, T lse, T scale, bool is_positive) {
  const T grad = elementwise_exp(logit - lse) * scale;
  return is_positive ? grad - scale : grad;
}

// ---- Logistic functions, stable for any argument (kernels/dpo_loss.h) ------------------------
//   softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^−|x|),  so −log σ(x) = softplus(−x)
//   σ(x) = 1 / (1 + e^−x), written with e^−|x| so neither sign overflows
template <typename T>
RECFORGE_HD T softplus(T x) {
  return std::fmax(x, T(0)) + std::log1p(std::exp(-std::fabs(x)));
}

template <typename T>
RECFORGE_HD T sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// ---- Rotary position embeddings (kernels/rope.h), Hugging Face's LlamaRotaryEmbedding --------
// inv_freq_i = 1 / base^(2i / R) in fp32, as transformers computes it:
//   1.0 / (base ** (torch.arange(0, R, 2, dtype=torch.int64).float() / R))
// the exponent is an fp32 quotient, the power an fp32 result (evaluated in double and rounded
// once, so both backends get the correctly rounded value whatever their powf), and the reciprocal
// an fp32 division.
RECFORGE_HD float rope_inv_freq(int i, int rotary_dim, float base) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
  const float power =
      static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  return 1.0f / power;
}

// The angle θ = p · inv_freq as transformers forms it (an fp32 product, `inv_freq @ position_ids`
// in float32), and its cos and sin in T (fp32 like transformers; double for the gradient check).
template <typename T>
RECFORGE_HD void rope_cos_sin(int32_t position, float inv_freq, T* cos_theta, T* sin_theta) {
  const float angle = static_cast<float>(position) * inv_freq;
  *cos_theta = std::cos(static_cast<T>(angle));
  *sin_theta = std::sin(static_cast<T>(angle));
}

// The rotation of one pair (x_i, x_{i+R/2}) by θ, in place: rotate-half's
//   x_i ← x_i cos θ − x_{i+R/2} sin θ,   x_{i+R/2} ← x_{i+R/2} cos θ + x_i sin θ.
// The backward rotates the gradient by −θ (pass −sin θ): the transpose of a rotation is its
// inverse.
template <typename T>
RECFORGE_HD void rope_rotate_pair(T* first, T* second, T cos_theta, T sin_theta) {
  const T a = *first, b = *second;
  *first = a * cos_theta - b * sin_theta;
  *second = b * cos_theta + a * sin_theta;
}

// ---- SwiGLU (kernels/swiglu.h): out = silu(gate) · up, silu(x) = x·σ(x) ----------------------
//   ∂out/∂gate = up · silu'(gate),  silu'(x) = σ(x)·(1 + x·(1 − σ(x))),   ∂out/∂up = silu(gate)
// σ uses elementwise_exp (one exp; the clamped CPU exp and the GPU's __expf both give σ → 0 for
// very negative x without a NaN).
template <typename T>
RECFORGE_HD T swiglu_sigmoid(T x) {
  return T(1) / (T(1) + elementwise_exp(-x));
}

template <typename T>
RECFORGE_HD T swiglu(T gate, T up) {
  return gate * swiglu_sigmoid(gate) * up;
}

// dgate and dup of one element from dout.
template <typename T>
RECFORGE_HD void swiglu_grad(T gate, T up, T dout, T* dgate, T* dup) {
  const T s = swiglu_sigmoid(gate);
  *dgate = dout * up * s * (T(1) + gate * (T(1) - s));
  *dup = dout * gate * s;
}

}  // namespace recforge
