// A Llama-family decoder's hyperparameters (Llama 2/3, SmolLM2, Qwen2 without biases...):
// pre-norm blocks of RMSNorm → grouped-query attention with rotary positions → residual, then
// RMSNorm → SwiGLU MLP → residual; a final RMSNorm and an output layer, tied to the token
// embedding or not. Read from a model file (model/llama/load.h) or set by hand (tests).
#pragma once

#include <cstdint>
#include <string>

#include "model/batch.h"
#include "model/config.h"

namespace recforge {

struct LlamaConfig {
  int vocab_size = 0;  // V
  int d_model = 0;     // C
  int n_layer = 0;     // L
  int n_head = 0;      // H, query heads
  int n_kv_head = 0;   // KV, key/value heads; H % KV == 0
  int head_dim = 0;    // HS ∈ {32, 64, 128}; H·HS need not equal C
  int ffn_dim = 0;     // F, the SwiGLU MLP's width
  int max_len = 0;     // the longest sequence (context length)
  int rotary_dim = 0;  // R ≤ HS, even (usually HS)
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_embeddings = true;             // the output layer is the token embedding
  Precision precision = Precision::kFp32;  // the frozen weights' storage (fp32 or bf16)

  int q_width() const { return n_head * head_dim; }
  int kv_width() const { return n_kv_head * head_dim; }
  // q, k and v side by side, as attention reads them.
  int qkv_width() const { return q_width() + 2 * kv_width(); }
  BatchLimits batch_limits() const { return {vocab_size, max_len}; }
  // Throws recforge::Error naming the first invalid field.
  void validate() const;
  std::string describe() const;
};

}  // namespace recforge
