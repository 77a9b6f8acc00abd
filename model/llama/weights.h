// A Llama model's parameters in one flat buffer, named and ordered as Hugging Face's
// LlamaForCausalLM names them, so exports and PEFT adapters need no renaming:
//   model.embed_tokens.weight                        [V, C]
//   lm_head.weight                                   [V, C]   (untied models only)
//   model.layers.<l>.self_attn.q_proj.weight         [H·HS, C]
//   model.layers.<l>.self_attn.k_proj.weight         [KV·HS, C]
//   model.layers.<l>.self_attn.v_proj.weight         [KV·HS, C]
//   model.layers.<l>.self_attn.o_proj.weight         [C, H·HS]
//   model.layers.<l>.mlp.gate_proj.weight            [F, C]
//   model.layers.<l>.mlp.up_proj.weight              [F, C]
//   model.layers.<l>.mlp.down_proj.weight            [C, F]
//   model.layers.<l>.input_layernorm.weight          [C]
//   model.layers.<l>.post_attention_layernorm.weight [C]
//   model.norm.weight                                [C]
// Matrices and embeddings (which take weight decay) come first, then the norms' gains. The seven
// linear layers of a block are the LoRA targets, by their PEFT module names.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/llama/config.h"
#include "model/parameters.h"

namespace recforge {

enum class LlamaLinear { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLlamaLinears = 7;
inline constexpr std::array<LlamaLinear, kNumLlamaLinears> kAllLlamaLinears = {
    LlamaLinear::kQ,    LlamaLinear::kK,  LlamaLinear::kV,   LlamaLinear::kO,
    LlamaLinear::kGate, LlamaLinear::kUp, LlamaLinear::kDown};

// "q_proj", ..., "down_proj" (PEFT's target module names).
const char* llama_linear_name(LlamaLinear linear);
// "self_attn.q_proj", ..., "mlp.down_proj": the module's path inside a layer.
const char* llama_linear_path(LlamaLinear linear);
int llama_linear_in(const LlamaConfig& config, LlamaLinear linear);
int llama_linear_out(const LlamaConfig& config, LlamaLinear linear);

// "model.layers.<l>.<path>.weight" of a block's linear layer.
std::string llama_linear_tensor(int layer, LlamaLinear linear);

ParameterLayout llama_layout(const LlamaConfig& config);

// Fresh weights for tests and from-scratch models: matrices N(0, std²) from the counter-based
// generator keyed by `seed`, norm gains 1.
std::vector<float> llama_initial_parameters(const ParameterLayout& layout, uint64_t seed,
                                            float std = 0.02f);

}  // namespace recforge
