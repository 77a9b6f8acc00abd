// The small Llama model several suites build: 2 layers, 64 wide, 4 query heads on 2 key/value
// heads of 32, SwiGLU 96, up to 64 tokens, full rotary dimension; the vocabulary is the caller's.
#pragma once

#include "model/llama/config.h"

namespace recforge::testing {

inline LlamaConfig small_llama_config(int vocab_size) {
  LlamaConfig config;
  config.vocab_size = vocab_size;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_kv_head = 2;
  config.head_dim = 32;
  config.ffn_dim = 96;
  config.max_len = 64;
  config.rotary_dim = 32;
  return config;
}

}  // namespace recforge::testing
