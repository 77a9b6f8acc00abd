// LoRA adapters on a Llama model's linear layers (model/lora.h has the method; kernels/lora.h the
// kernel). Targets are PEFT's module names — q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
// down_proj — or all_linear. The adapters live in one flat buffer, per layer and per target in
// that order, A then B, named after the weight they adapt with lora_A / lora_B in place of
// weight: model.layers.<l>.self_attn.q_proj.lora_A [r, in], ....lora_B [out, r].
#pragma once

#include <string>
#include <vector>

#include "model/llama/weights.h"
#include "model/parameters.h"

namespace recforge {

struct LlamaLoraConfig {
  int rank = 8;
  float alpha = 16.0f;
  bool rslora = false;  // s = alpha / √r instead of alpha / r
  float dropout = 0.0f;
  std::vector<std::string> targets{"q_proj", "v_proj"};

  float scale() const;
  // Throws recforge::Error naming the first invalid field.
  void validate() const;
  // The adapted layers in canonical order, all_linear expanded, duplicates dropped.
  std::vector<LlamaLinear> resolved_targets() const;
  bool operator==(const LlamaLoraConfig&) const = default;
};

// "model.layers.<l>.<path>.lora_A" / ".lora_B".
std::string llama_lora_tensor(int layer, LlamaLinear linear, char which);

ParameterLayout llama_lora_layout(const LlamaConfig& model, const LlamaLoraConfig& lora);

// Fresh adapters: A uniform in ±1/√in (Philox, keyed by seed), B = 0, so the adapted model starts
// as the base.
std::vector<float> llama_lora_initial(const ParameterLayout& layout, uint64_t seed);

}  // namespace recforge
