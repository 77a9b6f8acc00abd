#include "model/llama/lora.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/math.h"

namespace recforge {

float LlamaLoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<float>(rank)) : alpha / static_cast<float>(rank);
}

void LlamaLoraConfig::validate() const {
  RECFORGE_CHECK(rank >= 1, "lora.rank must be >= 1, got ", rank);
  RECFORGE_CHECK(alpha > 0.0f, "lora.alpha must be > 0, got ", alpha);
  RECFORGE_CHECK(dropout >= 0.0f && dropout < 1.0f, "lora.dropout must be in [0, 1), got ",
                 dropout);
  RECFORGE_CHECK(!resolved_targets().empty(), "lora.targets is empty");
}

std::vector<LlamaLinear> LlamaLoraConfig::resolved_targets() const {
  std::vector<LlamaLinear> resolved;
  for (LlamaLinear linear : kAllLlamaLinears) {
    const bool wanted = std::any_of(targets.begin(), targets.end(), [&](const std::string& t) {
      return t == "all_linear" || t == llama_linear_name(linear);
    });
    if (wanted) resolved.push_back(linear);
  }
  for (const std::string& t : targets) {
    const bool known =
        t == "all_linear" ||
        std::any_of(kAllLlamaLinears.begin(), kAllLlamaLinears.end(),
                    [&](LlamaLinear linear) { return t == llama_linear_name(linear); });
    RECFORGE_CHECK(known, "lora.targets: unknown module \"", t,
                   "\" (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or "
                   "all_linear)");
  }
  return resolved;
}

std::string llama_lora_tensor(int layer, LlamaLinear linear, char which) {
  return concat("model.layers.", layer, ".", llama_linear_path(linear), ".lora_", which);
}

ParameterLayout llama_lora_layout(const LlamaConfig& model, const LlamaLoraConfig& lora) {
  lora.validate();
  ParameterLayout layout;
  const int64_t r = lora.rank;
  for (int l = 0; l < model.n_layer; ++l) {
    for (LlamaLinear linear : lora.resolved_targets()) {
      layout.add(llama_lora_tensor(l, linear, 'A'), {r, llama_linear_in(model, linear)}, true);
      layout.add(llama_lora_tensor(l, linear, 'B'), {llama_linear_out(model, linear), r}, true);
    }
  }
  return layout;
}

std::vector<float> llama_lora_initial(const ParameterLayout& layout, uint64_t seed) {
  std::vector<float> values(layout.total_size(), 0.0f);
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const ParameterInfo& info = layout.tensors()[t];
    if (info.name.back() != 'A') continue;
    const float bound = 1.0f / std::sqrt(static_cast<float>(info.shape[1]));
    for (int64_t i = 0; i < info.size; ++i) {
      values[info.offset + i] = bound * (2.0f * philox_uniform(seed, t, i) - 1.0f);
    }
  }
  return values;
}

}  // namespace recforge
