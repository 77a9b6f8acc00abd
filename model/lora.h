// LoRA adapters for the decoder's linear layers (Hu et al. 2021): a targeted layer computes
//   y = x · Wᵀ + b + s · (drop(x) · Aᵀ) · Bᵀ,   A [r, in], B [out, r],
// s = alpha / r (alpha / √r with rsLoRA, Kalajdzievski 2023). W and b stay as they are (frozen
// or not, see Decoder::set_base_frozen); A starts uniform in ±1/√in, B at zero, so a fresh adapter
// leaves the model unchanged.
//
// Targets, by name, and the base weight each one adapts (model/parameters.h):
//   qkv       h.<l>.attn.qkv.weight   [3C, C]
//   attn_out  h.<l>.attn.out.weight   [C, C]
//   mlp_fc    h.<l>.mlp.fc.weight     [F, C]
//   mlp_proj  h.<l>.mlp.proj.weight   [C, F]
//   all_linear  the four above
//
// The adapter tensors live in one flat buffer (LoraLayout), per layer and per target in the order
// above, A then B, each starting on a 64-byte boundary (a multiple of 16 elements; the padding is
// zero and stays zero). Each is named after the weight it adapts, with `lora_A` / `lora_B` in
// place of `weight`: h.<l>.attn.qkv.lora_A [r, C], h.<l>.attn.qkv.lora_B [3C, r], ...
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace recforge {

enum class LoraTarget { kQkv, kAttnOut, kMlpFc, kMlpProj };
inline constexpr int kNumLoraTargets = 4;
inline constexpr std::array<LoraTarget, kNumLoraTargets> kAllLoraTargets = {
    LoraTarget::kQkv, LoraTarget::kAttnOut, LoraTarget::kMlpFc, LoraTarget::kMlpProj};

// "qkv", "attn_out", "mlp_fc", "mlp_proj".
const char* lora_target_name(LoraTarget target);
// The adapted layer's name inside a block: "attn.qkv", "attn.out", "mlp.fc", "mlp.proj".
const char* lora_module_name(LoraTarget target);
// The adapted linear layer's input and output widths.
int lora_in_features(const ModelConfig& model, LoraTarget target);
int lora_out_features(const ModelConfig& model, LoraTarget target);

struct LoraConfig {
  int rank = 8;                                         // r
  float alpha = 16.0f;                                  // the scale's numerator
  bool rslora = false;                                  // s = alpha / √r instead of alpha / r
  float dropout = 0.0f;                                 // on each adapter's input, in training only
  std::vector<std::string> targets{"qkv", "attn_out"};  // target names or "all_linear"

  // s: alpha / rank, or alpha / √rank with rslora.
  float scale() const;
  // Throws recforge::Error naming the first invalid field.
  void validate() const;
  // The adapted layers in canonical order (qkv, attn_out, mlp_fc, mlp_proj), "all_linear"
  // expanded and duplicates dropped.
  std::vector<LoraTarget> resolved_targets() const;
  bool operator==(const LoraConfig&) const = default;
};

class LoraLayout {
 public:
  LoraLayout(const ModelConfig& model, const LoraConfig& lora);

  const LoraConfig& config() const { return config_; }
  // Every adapter tensor, in buffer order; `decayed` is true for all (they are matrices).
  const std::vector<ParameterInfo>& tensors() const { return tensors_; }
  const ParameterInfo& at(const std::string& name) const;
  // Elements of the flat buffer, padding included.
  int64_t total_size() const { return total_size_; }
  bool adapts(LoraTarget target) const { return adapts_[static_cast<int>(target)]; }
  // Layer l's A [r, in] and B [out, r] for an adapted target.
  const ParameterInfo& lora_a(int layer, LoraTarget target) const;
  const ParameterInfo& lora_b(int layer, LoraTarget target) const;
  // "h.<l>.attn.qkv.lora_A" and the like; `base_weight_name` gives "h.<l>.attn.qkv.weight".
  static std::string tensor_name(int layer, LoraTarget target, bool is_b);
  static std::string base_weight_name(int layer, LoraTarget target);

 private:
  const ParameterInfo& find(int layer, LoraTarget target, bool is_b) const;
  LoraConfig config_;
  int n_layer_;
  std::array<bool, kNumLoraTargets> adapts_{};
  std::vector<ParameterInfo> tensors_;
  std::vector<int> index_;  // [layer][target][A/B] → position in tensors_, -1 when not adapted
  int64_t total_size_ = 0;
};

// Host values of fresh adapters: A uniform in ±1/√in from the counter-based Philox generator
// (stream = the tensor's position in the layout), so a seed gives the same numbers on every
// device; B and the padding zero.
std::vector<float> initial_lora_parameters(const LoraLayout& layout, uint64_t seed);

}  // namespace recforge
