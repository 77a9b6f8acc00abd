// LoRA adapters in Hugging Face PEFT's layout, a directory holding
//
//   adapter_model.safetensors  one F32 tensor per adapter tensor of the LoraLayout, named
//                              base_model.model.<name>.weight:
//                                base_model.model.h.0.attn.qkv.lora_A.weight  [r, in]
//                                base_model.model.h.0.attn.qkv.lora_B.weight  [out, r]
//   adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "use_rslora",
//                               "lora_dropout", "target_modules": ["attn.qkv", ...] (the adapted
//                               modules' names inside a block), "bias": "none",
//                               "fan_in_fan_out": false, "inference_mode": true}
//
// Each file is written to "<file>.tmp", fsynced and renamed over the old one (the weights first,
// then the configuration), and the directory is synced.
#pragma once

#include <filesystem>

#include "model/decoder.h"
#include "model/lora.h"

namespace recforge {

inline constexpr const char* kPeftWeightsFile = "adapter_model.safetensors";
inline constexpr const char* kPeftConfigFile = "adapter_config.json";

// Writes the decoder's adapters (it must have some) into `dir`, created when missing.
template <typename T>
void save_peft_adapter(const std::filesystem::path& dir, const Decoder<T>& decoder);

// Reads `dir`'s adapters into the decoder: its configuration is checked field by field, the
// decoder gets fresh adapters of that configuration (enable_lora), and every tensor must be
// present, F32 and of exactly the layout's shape, with no other tensor in the file. Errors name
// the file, the key and what was expected. Refused while the decoder's adapters are merged.
// Returns the adapters' configuration (targets as target names, e.g. "qkv").
template <typename T>
LoraConfig load_peft_adapter(const std::filesystem::path& dir, Decoder<T>& decoder);

// The configuration alone, checked as load_peft_adapter does.
LoraConfig read_peft_config(const std::filesystem::path& dir);

}  // namespace recforge
