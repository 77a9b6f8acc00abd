// A Hugging Face model directory → PretrainedLlama: config.json (LlamaForCausalLM's fields),
// the weights from model.safetensors or the shards a model.safetensors.index.json names (F32, BF16
// or F16), and tokenizer.json.
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "kernels/bf16.h"
#include "kernels/check.h"
#include "model/formats/dequantize.h"
#include "model/llama/load.h"
#include "model/llama/weights.h"
#include "model/safetensors.h"
#include "model/text/tokenizer_json.h"

namespace recforge {
namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  RECFORGE_CHECK(in.good(), file.string(), ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(concat(file.string(), ": not valid JSON: ", e.what()));
  }
}

// A config.json field: present (or defaulted) and of the expected kind.
class ConfigFields {
 public:
  ConfigFields(const json& root, std::string source) : root_(root), source_(std::move(source)) {}

  int positive(const char* key, std::optional<int> fallback = std::nullopt) const {
    if (!root_.contains(key) || root_[key].is_null()) {
      RECFORGE_CHECK(fallback.has_value(), source_, ": missing field ", key);
      return *fallback;
    }
    const json& v = root_[key];
    RECFORGE_CHECK(v.is_number_integer() && v.get<int64_t>() > 0 && v.get<int64_t>() < (1 << 24),
                   source_, ": field ", key, ": expected a positive integer, found ", v.dump());
    return v.get<int>();
  }
  double number(const char* key, double fallback) const {
    if (!root_.contains(key) || root_[key].is_null()) return fallback;
    RECFORGE_CHECK(root_[key].is_number(), source_, ": field ", key, ": expected a number, found ",
                   root_[key].dump());
    return root_[key].get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!root_.contains(key) || root_[key].is_null()) return fallback;
    RECFORGE_CHECK(root_[key].is_boolean(), source_, ": field ", key,
                   ": expected true or false, found ", root_[key].dump());
    return root_[key].get<bool>();
  }
  void require_false(const char* key) const {
    RECFORGE_CHECK(!boolean(key, false), source_, ": field ", key,
                   " is true: biases are not supported (the llama architecture has none)");
  }
  void require_null(const char* key) const {
    RECFORGE_CHECK(!root_.contains(key) || root_[key].is_null(), source_, ": field ", key, " = ",
                   root_.contains(key) ? root_[key].dump() : "",
                   " is not supported (expected null)");
  }

 private:
  const json& root_;
  std::string source_;
};

LlamaConfig config_from_json(const std::filesystem::path& file) {
  const json root = read_json(file);
  RECFORGE_CHECK(root.is_object(), file.string(), ": expected a JSON object");
  const std::string model_type = root.value("model_type", "");
  RECFORGE_CHECK(model_type == "llama", file.string(), ": model_type is \"", model_type,
                 "\"; recforge reads llama models (expected \"llama\")");
  const ConfigFields f(root, file.string());
  f.require_false("attention_bias");
  f.require_false("mlp_bias");
  f.require_null("rope_scaling");
  RECFORGE_CHECK(root.value("hidden_act", "silu") == "silu", file.string(), ": hidden_act is ",
                 root["hidden_act"].dump(), ", expected \"silu\"");
  LlamaConfig config;
  config.vocab_size = f.positive("vocab_size");
  config.d_model = f.positive("hidden_size");
  config.n_layer = f.positive("num_hidden_layers");
  config.n_head = f.positive("num_attention_heads");
  config.n_kv_head = f.positive("num_key_value_heads", config.n_head);
  config.head_dim = f.positive("head_dim", config.d_model / config.n_head);
  config.rotary_dim = static_cast<int>(config.head_dim * f.number("partial_rotary_factor", 1.0));
  config.ffn_dim = f.positive("intermediate_size");
  config.max_len = f.positive("max_position_embeddings");
  config.rope_base = static_cast<float>(f.number("rope_theta", 10000.0));
  config.rms_eps = static_cast<float>(f.number("rms_norm_eps", 1e-6));
  config.tied_embeddings = f.boolean("tie_word_embeddings", false);
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(concat(file.string(), ": ", e.what()));
  }
  return config;
}

// The safetensors file holding each tensor: model.safetensors, or the index's weight_map.
std::map<std::string, std::filesystem::path> weight_files(const std::filesystem::path& dir) {
  const auto single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  std::map<std::string, std::filesystem::path> files;
  if (std::filesystem::exists(single)) return {{"", single}};
  RECFORGE_CHECK(std::filesystem::exists(index), dir.string(),
                 ": no model.safetensors and no model.safetensors.index.json");
  const json root = read_json(index);
  RECFORGE_CHECK(root.is_object() && root.contains("weight_map") && root["weight_map"].is_object(),
                 index.string(), ": field weight_map: expected an object of tensor → file");
  for (const auto& [name, shard] : root["weight_map"].items()) {
    RECFORGE_CHECK(shard.is_string(), index.string(), ": weight_map.", name,
                   ": expected a file name, found ", shard.dump());
    const std::filesystem::path file = shard.get<std::string>();
    RECFORGE_CHECK(file.filename() == file && !file.empty(), index.string(), ": weight_map.", name,
                   ": \"", file.string(), "\" is not a file name inside the directory");
    files[name] = dir / file;
  }
  return files;
}

// Reads tensors by name from model.safetensors or the shards, each shard opened once.
class WeightReader {
 public:
  explicit WeightReader(const std::filesystem::path& dir) : files_(weight_files(dir)) {}

  std::vector<float> read(const std::string& name, const std::vector<int64_t>& shape) {
    const SafetensorsFile& file = file_of(name);
    const std::string source = source_of(name);
    RECFORGE_CHECK(file.has(name), source, ": missing tensor ", name);
    RECFORGE_CHECK(file.shape(name) == shape, source, ": tensor ", name, " has shape ",
                   shape_text(file.shape(name)), ", expected ", shape_text(shape),
                   " from config.json");
    std::vector<float> values = to_float(file, name, source);
    require_finite(values, source, name);
    return values;
  }

 private:
  static std::vector<float> to_float(const SafetensorsFile& file, const std::string& name,
                                     const std::string& source) {
    const std::string& dtype = file.dtype(name);
    if (dtype == "F32") {
      const auto values = file.f32(name);
      return {values.begin(), values.end()};
    }
    RECFORGE_CHECK(dtype == "BF16" || dtype == "F16", source, ": tensor ", name, " is ", dtype,
                   ", expected F32, BF16 or F16");
    const std::span<const uint8_t> bytes = file.bytes(name);
    std::vector<float> values(bytes.size() / 2);
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t bits;
      std::memcpy(&bits, bytes.data() + 2 * i, 2);
      values[i] = dtype == "F16" ? f16_to_float(bits) : bf16_to_float(bf16{bits});
    }
    return values;
  }
  std::string source_of(const std::string& name) const {
    auto it = files_.count("") ? files_.find("") : files_.find(name);
    return it == files_.end() ? "model.safetensors.index.json" : it->second.string();
  }
  const SafetensorsFile& file_of(const std::string& name) {
    auto it = files_.count("") ? files_.find("") : files_.find(name);
    RECFORGE_CHECK(it != files_.end(), "model.safetensors.index.json: no shard holds tensor ",
                   name);
    auto& open = opened_[it->second];
    if (!open) open = std::make_unique<SafetensorsFile>(SafetensorsFile::read(it->second));
    return *open;
  }

  std::map<std::string, std::filesystem::path> files_;
  std::map<std::filesystem::path, std::unique_ptr<SafetensorsFile>> opened_;
};

// bos/eos/pad ids from config.json, add_bos and the chat template from tokenizer_config.json:
// Hugging Face keeps them outside tokenizer.json.
void read_special_ids(const std::filesystem::path& dir, TokenizerSpec& spec) {
  const json config = read_json(dir / "config.json");
  auto id = [&](const char* key, int32_t& out) {
    if (!config.contains(key) || config[key].is_null()) return;
    const json& v = config[key];
    RECFORGE_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                       v.get<int64_t>() < static_cast<int64_t>(spec.tokens.size()),
                   (dir / "config.json").string(), ": field ", key, ": expected a token id below ",
                   spec.tokens.size(), ", found ", v.dump());
    out = v.get<int32_t>();
  };
  id("bos_token_id", spec.bos);
  id("eos_token_id", spec.eos);
  id("pad_token_id", spec.pad);
  const auto tokenizer_config = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(tokenizer_config)) return;
  const json extra = read_json(tokenizer_config);
  if (extra.contains("add_bos_token") && extra["add_bos_token"].is_boolean()) {
    spec.add_bos = extra["add_bos_token"].get<bool>();
  }
  if (extra.contains("chat_template") && extra["chat_template"].is_string()) {
    spec.chat_template = extra["chat_template"].get<std::string>();
  }
}

}  // namespace

PretrainedLlama load_llama_hf_directory(const std::filesystem::path& dir) {
  PretrainedLlama model;
  model.source = dir.string();
  model.config = config_from_json(dir / "config.json");
  model.tokenizer = load_tokenizer_spec(dir);
  const ParameterLayout layout = llama_layout(model.config);
  model.parameters.assign(layout.total_size(), 0.0f);
  WeightReader reader(dir);
  for (const ParameterInfo& info : layout.tensors()) {
    const std::vector<float> values = reader.read(info.name, info.shape);
    std::copy(values.begin(), values.end(), model.parameters.begin() + info.offset);
  }
  return model;
}

TokenizerSpec load_tokenizer_spec(const std::filesystem::path& path) {
  RECFORGE_CHECK(std::filesystem::exists(path), path.string(), ": no such file or directory");
  if (!std::filesystem::is_directory(path)) return tokenizer_spec_from_gguf(GgufFile::open(path));
  const auto tokenizer = path / "tokenizer.json";
  RECFORGE_CHECK(std::filesystem::exists(tokenizer), path.string(),
                 ": missing tokenizer.json (the model's tokenizer)");
  TokenizerSpec spec = tokenizer_spec_from_json(tokenizer);
  read_special_ids(path, spec);
  return spec;
}

PretrainedLlama load_pretrained_llama(const std::filesystem::path& path) {
  RECFORGE_CHECK(std::filesystem::exists(path), path.string(), ": no such file or directory");
  if (std::filesystem::is_directory(path)) return load_llama_hf_directory(path);
  return load_llama_gguf(path);
}

}  // namespace recforge
