// A Llama model written where the Hugging Face ecosystem reads it:
//   save_llama_hf_directory: config.json (LlamaForCausalLM), model.safetensors (F32, Hugging
//     Face's tensor names; a tied model has no lm_head.weight), tokenizer.json and
//     tokenizer_config.json — `transformers` loads it with AutoModelForCausalLM.from_pretrained,
//     and load_llama_hf_directory reads it back.
//   save_llama_peft_adapter: adapter_model.safetensors with PEFT's names
//     (base_model.model.model.layers.<l>.self_attn.q_proj.lora_A.weight [r, in], ...lora_B.weight
//     [out, r]) and adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout, use_rslora,
//     target_modules q_proj ... down_proj) — `peft` loads it with PeftModel.from_pretrained.
// Every file is written to "<file>.tmp", synced and renamed into place; the directory is created
// when missing and synced at the end.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "model/llama/config.h"
#include "model/llama/lora.h"
#include "model/text/tokenizer.h"

namespace recforge {

void save_llama_hf_directory(const std::filesystem::path& dir, const LlamaConfig& config,
                             std::span<const float> parameters, const TokenizerSpec& tokenizer);

void save_llama_peft_adapter(const std::filesystem::path& dir, const LlamaConfig& config,
                             const LlamaLoraConfig& lora, std::span<const float> adapters,
                             const std::string& base_model);

struct LlamaPeftAdapter {
  LlamaLoraConfig config;
  std::vector<float> values;  // llama_lora_layout order
};

// Reads an adapter written by save_llama_peft_adapter (or by peft for a Llama model) for a model
// of `config`: every tensor present, F32 and of the layout's shape, nothing else in the file.
LlamaPeftAdapter load_llama_peft_adapter(const std::filesystem::path& dir,
                                         const LlamaConfig& config);

}  // namespace recforge
