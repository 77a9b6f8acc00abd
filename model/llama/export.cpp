#include "model/llama/export.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "model/durable_file.h"
#include "model/llama/weights.h"
#include "model/safetensors.h"
#include "model/text/tokenizer_json.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPeftPrefix = "base_model.model.";

fs::path temporary_of(const fs::path& file) { return fs::path(file) += ".tmp"; }

void write_tensors_atomically(const fs::path& file, const std::vector<SafetensorsTensor>& tensors) {
  write_safetensors(temporary_of(file), tensors, {{"format", "pt"}});
  fs::rename(temporary_of(file), file);
}

void write_json(const fs::path& file, const json& value) {
  write_file_atomically(file, value.dump(2) + "\n");
}

std::vector<SafetensorsTensor> tensors_of(const ParameterLayout& layout,
                                          std::span<const float> values,
                                          const std::string& prefix = "",
                                          const std::string& suffix = "") {
  RECFORGE_CHECK(values.size() == static_cast<size_t>(layout.total_size()), "expected ",
                 layout.total_size(), " values to save, got ", values.size());
  std::vector<SafetensorsTensor> tensors;
  for (const ParameterInfo& info : layout.tensors()) {
    tensors.push_back(
        {prefix + info.name + suffix, info.shape, values.subspan(info.offset, info.size)});
  }
  return tensors;
}

json config_json(const LlamaConfig& config, const TokenizerSpec& tokenizer) {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", config.vocab_size},
            {"hidden_size", config.d_model},
            {"intermediate_size", config.ffn_dim},
            {"num_hidden_layers", config.n_layer},
            {"num_attention_heads", config.n_head},
            {"num_key_value_heads", config.n_kv_head},
            {"head_dim", config.head_dim},
            {"max_position_embeddings", config.max_len},
            {"rope_theta", config.rope_base},
            {"rope_scaling", nullptr},
            {"rms_norm_eps", config.rms_eps},
            {"tie_word_embeddings", config.tied_embeddings},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"torch_dtype", "float32"}};
  if (config.rotary_dim != config.head_dim) {
    j["partial_rotary_factor"] = static_cast<double>(config.rotary_dim) / config.head_dim;
  }
  if (tokenizer.bos >= 0) j["bos_token_id"] = tokenizer.bos;
  if (tokenizer.eos >= 0) j["eos_token_id"] = tokenizer.eos;
  if (tokenizer.pad >= 0) j["pad_token_id"] = tokenizer.pad;
  return j;
}

json tokenizer_config_json(const TokenizerSpec& tokenizer) {
  auto text = [&](int32_t id) { return id >= 0 ? json(tokenizer.tokens[id]) : json(nullptr); };
  json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
            {"bos_token", text(tokenizer.bos)},
            {"eos_token", text(tokenizer.eos)},
            {"unk_token", text(tokenizer.unk)},
            {"pad_token", text(tokenizer.pad)},
            {"add_bos_token", tokenizer.add_bos},
            {"clean_up_tokenization_spaces", false}};
  if (!tokenizer.chat_template.empty()) j["chat_template"] = tokenizer.chat_template;
  return j;
}

json peft_config_json(const LlamaLoraConfig& lora, const std::string& base_model) {
  json targets = json::array();
  for (LlamaLinear linear : lora.resolved_targets()) targets.push_back(llama_linear_name(linear));
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"base_model_name_or_path", base_model},
          {"r", lora.rank},
          {"lora_alpha", lora.alpha},
          {"lora_dropout", lora.dropout},
          {"use_rslora", lora.rslora},
          {"target_modules", targets},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true}};
}

LlamaLoraConfig peft_config_from_json(const fs::path& file) {
  std::ifstream in(file);
  RECFORGE_CHECK(in.good(), file.string(), ": cannot open the file");
  const json j = json::parse(in, nullptr, false);
  RECFORGE_CHECK(!j.is_discarded() && j.is_object(), file.string(), ": not a JSON object");
  auto field = [&](const char* key) -> const json& {
    RECFORGE_CHECK(j.contains(key), file.string(), ": missing field ", key);
    return j[key];
  };
  RECFORGE_CHECK(field("peft_type") == "LORA", file.string(), ": peft_type is ",
                 field("peft_type").dump(), ", expected \"LORA\"");
  RECFORGE_CHECK(!j.contains("bias") || j["bias"] == "none", file.string(),
                 ": bias adapters are not supported (expected \"none\")");
  LlamaLoraConfig lora;
  RECFORGE_CHECK(field("r").is_number_integer(), file.string(), ": field r: expected an integer");
  lora.rank = field("r").get<int>();
  RECFORGE_CHECK(field("lora_alpha").is_number(), file.string(),
                 ": field lora_alpha: expected a number");
  lora.alpha = field("lora_alpha").get<float>();
  lora.dropout = j.value("lora_dropout", 0.0f);
  lora.rslora = j.value("use_rslora", false);
  RECFORGE_CHECK(field("target_modules").is_array(), file.string(),
                 ": field target_modules: expected a list of module names");
  lora.targets = field("target_modules").get<std::vector<std::string>>();
  try {
    lora.validate();
  } catch (const Error& e) {
    throw Error(concat(file.string(), ": ", e.what()));
  }
  return lora;
}

}  // namespace

void save_llama_hf_directory(const fs::path& dir, const LlamaConfig& config,
                             std::span<const float> parameters, const TokenizerSpec& tokenizer) {
  try {
    fs::create_directories(dir);
    write_tensors_atomically(dir / "model.safetensors",
                             tensors_of(llama_layout(config), parameters));
    write_json(dir / "config.json", config_json(config, tokenizer));
    write_file_atomically(dir / "tokenizer.json", tokenizer_spec_to_json(tokenizer));
    write_json(dir / "tokenizer_config.json", tokenizer_config_json(tokenizer));
    sync_directory(dir);
  } catch (const fs::filesystem_error& e) {
    throw Error(concat("saving the model in ", dir.string(), ": ", e.what()));
  }
}

void save_llama_peft_adapter(const fs::path& dir, const LlamaConfig& config,
                             const LlamaLoraConfig& lora, std::span<const float> adapters,
                             const std::string& base_model) {
  try {
    fs::create_directories(dir);
    write_tensors_atomically(
        dir / "adapter_model.safetensors",
        tensors_of(llama_lora_layout(config, lora), adapters, kPeftPrefix, ".weight"));
    write_json(dir / "adapter_config.json", peft_config_json(lora, base_model));
    sync_directory(dir);
  } catch (const fs::filesystem_error& e) {
    throw Error(concat("saving the LoRA adapter in ", dir.string(), ": ", e.what()));
  }
}

LlamaPeftAdapter load_llama_peft_adapter(const fs::path& dir, const LlamaConfig& config) {
  LlamaPeftAdapter adapter;
  adapter.config = peft_config_from_json(dir / "adapter_config.json");
  const fs::path weights = dir / "adapter_model.safetensors";
  const SafetensorsFile file = SafetensorsFile::read(weights);
  const ParameterLayout layout = llama_lora_layout(config, adapter.config);
  RECFORGE_CHECK(file.names().size() == layout.tensors().size(), weights.string(), ": holds ",
                 file.names().size(), " tensors, expected ", layout.tensors().size(),
                 " for the adapter configuration");
  adapter.values.assign(layout.total_size(), 0.0f);
  for (const ParameterInfo& info : layout.tensors()) {
    const std::string name = kPeftPrefix + info.name + ".weight";
    RECFORGE_CHECK(file.has(name), weights.string(), ": missing tensor ", name);
    RECFORGE_CHECK(file.shape(name) == info.shape, weights.string(), ": tensor ", name,
                   " has shape ", shape_text(file.shape(name)), ", expected ",
                   shape_text(info.shape));
    const std::span<const float> values = file.f32(name);
    require_finite(values, weights.string(), name);
    std::copy(values.begin(), values.end(), adapter.values.begin() + info.offset);
  }
  return adapter;
}

}  // namespace recforge
