#include "model/llama/weights.h"

#include "kernels/check.h"

namespace recforge {

const char* llama_linear_name(LlamaLinear linear) {
  static const char* names[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                "gate_proj", "up_proj", "down_proj"};
  return names[static_cast<int>(linear)];
}

const char* llama_linear_path(LlamaLinear linear) {
  static const char* paths[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                "mlp.down_proj"};
  return paths[static_cast<int>(linear)];
}

int llama_linear_in(const LlamaConfig& config, LlamaLinear linear) {
  switch (linear) {
    case LlamaLinear::kO:
      return config.q_width();
    case LlamaLinear::kDown:
      return config.ffn_dim;
    default:
      return config.d_model;
  }
}

int llama_linear_out(const LlamaConfig& config, LlamaLinear linear) {
  switch (linear) {
    case LlamaLinear::kQ:
      return config.q_width();
    case LlamaLinear::kK:
    case LlamaLinear::kV:
      return config.kv_width();
    case LlamaLinear::kGate:
    case LlamaLinear::kUp:
      return config.ffn_dim;
    default:
      return config.d_model;
  }
}

std::string llama_linear_tensor(int layer, LlamaLinear linear) {
  return concat("model.layers.", layer, ".", llama_linear_path(linear), ".weight");
}

ParameterLayout llama_layout(const LlamaConfig& config) {
  config.validate();
  const int64_t V = config.vocab_size, C = config.d_model;
  ParameterLayout layout;
  layout.add("model.embed_tokens.weight", {V, C}, true);
  if (!config.tied_embeddings) layout.add("lm_head.weight", {V, C}, true);
  for (int l = 0; l < config.n_layer; ++l) {
    for (LlamaLinear linear : kAllLlamaLinears) {
      layout.add(llama_linear_tensor(l, linear),
                 {llama_linear_out(config, linear), llama_linear_in(config, linear)}, true);
    }
  }
  for (int l = 0; l < config.n_layer; ++l) {
    layout.add(concat("model.layers.", l, ".input_layernorm.weight"), {C}, false);
    layout.add(concat("model.layers.", l, ".post_attention_layernorm.weight"), {C}, false);
  }
  layout.add("model.norm.weight", {C}, false);
  return layout;
}

std::vector<float> llama_initial_parameters(const ParameterLayout& layout, uint64_t seed,
                                            float std) {
  std::vector<float> values(layout.total_size(), 1.0f);
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const ParameterInfo& info = layout.tensors()[t];
    if (!info.decayed) continue;  // norm gains stay 1
    for (int64_t i = 0; i < info.size; ++i) {
      values[info.offset + i] = std * philox_normal(seed, t, static_cast<uint64_t>(i));
    }
  }
  return values;
}

}  // namespace recforge
