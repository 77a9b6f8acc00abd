// All parameters live in one flat buffer described by an offset table. Tensors that take weight
// decay (embeddings and matrices) come first, then layer-norm gains and biases, so AdamW's decay
// mask is the single boundary `num_decayed`.
//
//   wte [V, C]  wpe [max_len, C]                          token and position embeddings (wte is
//                                                         also the tied output layer)
//   h.<l>.attn.qkv.weight [3C, C]   .bias [3C]            per layer l
//   h.<l>.attn.out.weight [C, C]    .bias [C]
//   h.<l>.mlp.fc.weight   [F, C]    .bias [F]             F = mlp_ratio · C
//   h.<l>.mlp.proj.weight [C, F]    .bias [C]
//   h.<l>.ln_1.weight/.bias [C]   h.<l>.ln_2.weight/.bias [C]   ln_f.weight/.bias [C]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace recforge {

struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements from the buffer's start
  int64_t size = 0;
  bool decayed = false;
};

class ParameterLayout {
 public:
  // An empty layout, filled by add(): other architectures' tables (model/llama/config.h).
  ParameterLayout() = default;
  // The GPT-style decoder's tensors, as tabled above.
  explicit ParameterLayout(const ModelConfig& config);

  // Appends a tensor; tensors that take weight decay must all come before those that do not.
  void add(std::string name, std::vector<int64_t> shape, bool decayed);

  const std::vector<ParameterInfo>& tensors() const { return tensors_; }
  const ParameterInfo& at(const std::string& name) const;
  int64_t offset(const std::string& name) const { return at(name).offset; }
  int64_t total_size() const { return total_size_; }
  int64_t num_decayed() const { return num_decayed_; }
  // Where token `token`'s row of wte starts (and rows token, token + 1, ... follow).
  int64_t token_row_offset(int32_t token) const;

 private:
  std::vector<ParameterInfo> tensors_;
  int64_t total_size_ = 0;
  int64_t num_decayed_ = 0;
};

// A standard normal draw: Box–Muller over two Philox uniforms of (seed, stream), element `index`.
float philox_normal(uint64_t seed, uint64_t stream, uint64_t index);

// Host values of a freshly initialized model (GPT-2's scheme with σ = init_std, 0.02 by default):
// matrices N(0, σ²), the two residual projections N(0, (σ/√(2L))²), the token and position
// embeddings N(0, embedding_std²) (σ when embedding_std is 0), biases 0, layer-norm gains 1.
// Normals come from the counter-based Philox generator, so a seed gives the same weights on every
// machine and device.
std::vector<float> initial_parameters(const ModelConfig& config, const ParameterLayout& layout,
                                      uint64_t seed, float init_std = 0.02f,
                                      float embedding_std = 0.0f);

}  // namespace recforge
