#include "model/config.h"

#include <sstream>

#include "kernels/check.h"

namespace recforge {

const char* precision_name(Precision precision) {
  return precision == Precision::kBf16 ? "bf16" : "fp32";
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  throw Error(concat("unknown precision \"", name, "\" (expected fp32 or bf16)"));
}

void ModelConfig::validate() const {
  RECFORGE_CHECK(vocab_size > 0, "model.vocab_size must be positive, got ", vocab_size);
  RECFORGE_CHECK(max_len > 0, "model.max_len must be positive, got ", max_len);
  RECFORGE_CHECK(n_layer > 0, "model.n_layer must be positive, got ", n_layer);
  RECFORGE_CHECK(n_head > 0, "model.n_head must be positive, got ", n_head);
  RECFORGE_CHECK(d_model > 0 && d_model % n_head == 0, "model.d_model (", d_model,
                 ") must be a positive multiple of model.n_head (", n_head, ")");
  int hs = head_size();
  RECFORGE_CHECK(hs == 32 || hs == 64 || hs == 128, "model.d_model / model.n_head = ", hs,
                 " is not a supported head size (expected 32, 64 or 128)");
  RECFORGE_CHECK(mlp_ratio > 0, "model.mlp_ratio must be positive, got ", mlp_ratio);
  RECFORGE_CHECK(dropout >= 0.0f && dropout < 1.0f, "model.dropout must be in [0, 1), got ",
                 dropout);
}

std::string ModelConfig::describe() const {
  std::ostringstream out;
  out << "vocab " << vocab_size << ", max_len " << max_len << ", d_model " << d_model << ", "
      << n_layer << " layers, " << n_head << " heads, mlp " << mlp_width() << ", dropout "
      << dropout << ", " << precision_name(precision);
  return out.str();
}

}  // namespace recforge
