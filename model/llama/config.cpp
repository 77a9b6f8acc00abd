#include "model/llama/config.h"

#include <sstream>

#include "kernels/check.h"

namespace recforge {

void LlamaConfig::validate() const {
  auto positive = [](const char* name, int value) {
    RECFORGE_CHECK(value > 0, "llama: ", name, " must be positive, got ", value);
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layer", n_layer);
  positive("n_head", n_head);
  positive("n_kv_head", n_kv_head);
  positive("ffn_dim", ffn_dim);
  positive("max_len", max_len);
  RECFORGE_CHECK(n_head % n_kv_head == 0, "llama: n_head (", n_head,
                 ") must be a multiple of n_kv_head (", n_kv_head, ")");
  RECFORGE_CHECK(head_dim == 32 || head_dim == 64 || head_dim == 128, "llama: head_dim ", head_dim,
                 " is not a supported head size (expected 32, 64 or 128)");
  RECFORGE_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0 && rotary_dim <= head_dim,
                 "llama: rotary_dim ", rotary_dim, " must be even and in (0, head_dim = ", head_dim,
                 "]");
  RECFORGE_CHECK(rope_base > 0.0f, "llama: rope_base must be positive, got ", rope_base);
  RECFORGE_CHECK(rms_eps > 0.0f, "llama: rms_eps must be positive, got ", rms_eps);
}

std::string LlamaConfig::describe() const {
  std::ostringstream out;
  out << "llama: vocab " << vocab_size << ", " << n_layer << " layers, d_model " << d_model << ", "
      << n_head << " heads (" << n_kv_head << " kv) of " << head_dim << ", ffn " << ffn_dim
      << ", rope base " << rope_base << ", " << (tied_embeddings ? "tied" : "untied") << ", "
      << precision_name(precision);
  return out.str();
}

}  // namespace recforge
