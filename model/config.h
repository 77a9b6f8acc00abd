// The decoder's hyperparameters. Tokens are behaviors: item ids plus the special tokens, all in
// one vocabulary of `vocab_size` entries.
#pragma once

#include <string>

namespace recforge {

// Storage precision of the GPU work (kernels/bf16.h has the policy): kFp32 everywhere, or kBf16
// operands for the GEMMs and attention with fp32 master weights, gradients, optimizer state,
// residual stream, statistics and losses.
enum class Precision { kFp32, kBf16 };

// "fp32" or "bf16"; parse_precision throws recforge::Error for anything else.
const char* precision_name(Precision precision);
Precision parse_precision(const std::string& name);

struct ModelConfig {
  int vocab_size = 0;    // V
  int max_len = 0;       // longest sequence, rows of the position table
  int d_model = 64;      // C
  int n_layer = 2;       // L
  int n_head = 2;        // NH
  int mlp_ratio = 4;     // the MLP's hidden width is mlp_ratio · C
  float dropout = 0.0f;  // on the embeddings and on both residual branches
  Precision precision = Precision::kFp32;

  int head_size() const { return d_model / n_head; }
  int mlp_width() const { return mlp_ratio * d_model; }
  // Throws recforge::Error naming the first invalid field.
  void validate() const;
  std::string describe() const;
};

}  // namespace recforge
