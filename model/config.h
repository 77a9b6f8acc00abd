// The decoder's hyperparameters. Tokens are behaviors: item ids plus the special tokens, all in
// one vocabulary of `vocab_size` entries.
#pragma once

#include <string>

namespace recforge {

struct ModelConfig {
  int vocab_size = 0;    // V
  int max_len = 0;       // longest sequence, rows of the position table
  int d_model = 64;      // C
  int n_layer = 2;       // L
  int n_head = 2;        // NH
  int mlp_ratio = 4;     // the MLP's hidden width is mlp_ratio · C
  float dropout = 0.0f;  // on the embeddings and on both residual branches

  int head_size() const { return d_model / n_head; }
  int mlp_width() const { return mlp_ratio * d_model; }
  // Throws recforge::Error naming the first invalid field.
  void validate() const;
  std::string describe() const;
};

}  // namespace recforge
