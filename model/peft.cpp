#include "model/peft.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "kernels/check.h"
#include "model/durable_file.h"
#include "model/safetensors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxRank = 1 << 16;

// base_model.model.h.0.attn.qkv.lora_A.weight
std::string peft_key(const ParameterInfo& info) {
  return "base_model.model." + info.name + ".weight";
}

// A float as the JSON number of its shortest round-trip decimal form (0.05f is written 0.05).
double json_number(float x) {
  char text[32];
  auto result = std::to_chars(text, text + sizeof(text), x);
  *result.ptr = '\0';
  return std::strtod(text, nullptr);
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(
        concat("cannot rename ", from.string(), " to ", to.string(), ": ", std::strerror(errno)));
  }
}

fs::path temporary_of(const fs::path& file) { return fs::path(file) += ".tmp"; }

nlohmann::json config_to_json(const LoraConfig& config) {
  nlohmann::json modules = nlohmann::json::array();
  for (LoraTarget target : config.resolved_targets()) modules.push_back(lora_module_name(target));
  return {{"peft_type", "LORA"},
          {"r", config.rank},
          {"lora_alpha", json_number(config.alpha)},
          {"use_rslora", config.rslora},
          {"lora_dropout", json_number(config.dropout)},
          {"target_modules", modules},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true}};
}

[[noreturn]] void config_error(const fs::path& file, const std::string& key,
                               const std::string& expected, const nlohmann::json* got) {
  throw Error(concat(file.string(), ": key '", key, "': expected ", expected, ", got ",
                     got ? got->dump() : std::string("nothing (the key is missing)")));
}

// The target a target_modules entry names: a module name ("attn.qkv") or a target name ("qkv").
std::optional<LoraTarget> target_of_module(const std::string& name) {
  for (LoraTarget target : kAllLoraTargets) {
    if (name == lora_module_name(target) || name == lora_target_name(target)) return target;
  }
  return std::nullopt;
}

std::vector<std::string> targets_from_json(const fs::path& file, const nlohmann::json& j) {
  const char* key = "target_modules";
  const std::string expected =
      "a list of some of \"attn.qkv\", \"attn.out\", \"mlp.fc\", \"mlp.proj\" (or \"all-linear\")";
  auto it = j.find(key);
  if (it == j.end()) config_error(file, key, expected, nullptr);
  if (it->is_string() && (*it == "all-linear" || *it == "all_linear")) return {"all_linear"};
  if (!it->is_array() || it->empty()) config_error(file, key, expected, &*it);
  std::vector<std::string> targets;
  for (const nlohmann::json& entry : *it) {
    std::optional<LoraTarget> target =
        entry.is_string() ? target_of_module(entry.get<std::string>()) : std::nullopt;
    if (!target) config_error(file, concat(key, "[", targets.size(), "]"), expected, &entry);
    targets.push_back(lora_target_name(*target));
  }
  return targets;
}

LoraConfig config_from_json(const fs::path& file, const nlohmann::json& j) {
  if (!j.is_object()) throw Error(concat(file.string(), ": not a JSON object"));
  auto field = [&](const char* key) -> const nlohmann::json* {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  };
  const nlohmann::json* peft_type = field("peft_type");
  if (!peft_type || *peft_type != "LORA") config_error(file, "peft_type", "\"LORA\"", peft_type);

  LoraConfig config;
  const nlohmann::json* r = field("r");
  if (!r || !r->is_number_integer() || *r < 1 || *r > kMaxRank) {
    config_error(file, "r", concat("an integer in [1, ", kMaxRank, "]"), r);
  }
  config.rank = r->get<int>();
  const nlohmann::json* alpha = field("lora_alpha");
  if (!alpha || !alpha->is_number() || !std::isfinite(alpha->get<double>()) ||
      alpha->get<double>() <= 0.0) {
    config_error(file, "lora_alpha", "a positive number", alpha);
  }
  config.alpha = alpha->get<float>();
  if (const nlohmann::json* rslora = field("use_rslora")) {
    if (!rslora->is_boolean()) config_error(file, "use_rslora", "true or false", rslora);
    config.rslora = rslora->get<bool>();
  }
  if (const nlohmann::json* dropout = field("lora_dropout")) {
    if (!dropout->is_number() || !(*dropout >= 0.0 && *dropout < 1.0)) {
      config_error(file, "lora_dropout", "a number in [0, 1)", dropout);
    }
    config.dropout = dropout->get<float>();
  }
  if (const nlohmann::json* bias = field("bias"); bias && *bias != "none") {
    config_error(file, "bias", "\"none\" (adapters carry no bias)", bias);
  }
  if (const nlohmann::json* transposed = field("fan_in_fan_out");
      transposed && *transposed != false) {
    config_error(file, "fan_in_fan_out", "false (lora_A is [r, in], lora_B [out, r])", transposed);
  }
  config.targets = targets_from_json(file, j);
  // The canonical target names, so a configuration read back compares equal to the one written.
  std::vector<std::string> names;
  for (LoraTarget target : config.resolved_targets()) names.push_back(lora_target_name(target));
  config.targets = names;
  return config;
}

// The adapters of `layout` from `file`: every tensor present, F32 and of the layout's shape, no
// other tensor. Shapes are checked before anything is copied.
std::vector<float> read_adapter_tensors(const fs::path& path, const LoraLayout& layout) {
  const std::string source = path.string();
  SafetensorsFile file = SafetensorsFile::read(path);
  std::set<std::string> expected;
  for (const ParameterInfo& info : layout.tensors()) {
    const std::string key = peft_key(info);
    expected.insert(key);
    if (!file.has(key)) {
      throw Error(concat(source, ": missing tensor '", key, "' (expected shape ",
                         shape_text(info.shape), ")"));
    }
    if (file.shape(key) != info.shape) {
      throw Error(concat(source, ": tensor '", key, "' has shape ", shape_text(file.shape(key)),
                         ", expected ", shape_text(info.shape)));
    }
    if (file.dtype(key) != "F32") {
      throw Error(concat(source, ": tensor '", key, "' is ", file.dtype(key), ", expected F32"));
    }
  }
  for (const std::string& name : file.names()) {
    if (!expected.count(name)) {
      throw Error(concat(source, ": unexpected tensor '", name,
                         "' (not an adapter of the layers adapter_config.json targets)"));
    }
  }
  std::vector<float> values(layout.total_size(), 0.0f);
  for (const ParameterInfo& info : layout.tensors()) {
    std::span<const float> data = file.f32(peft_key(info));
    require_finite(data, source, peft_key(info));
    std::copy(data.begin(), data.end(), values.begin() + info.offset);
  }
  return values;
}

}  // namespace

template <typename T>
void save_peft_adapter(const fs::path& dir, const Decoder<T>& decoder) try {
  const LoraLayout& layout = decoder.lora_layout();
  const std::vector<T> raw = decoder.adapter_parameters().download();
  const std::vector<float> values(raw.begin(), raw.end());
  std::vector<SafetensorsTensor> tensors;
  for (const ParameterInfo& info : layout.tensors()) {
    tensors.push_back({peft_key(info), info.shape,
                       std::span<const float>(values).subspan(info.offset, info.size)});
  }
  fs::create_directories(dir);
  const fs::path weights = dir / kPeftWeightsFile, config = dir / kPeftConfigFile;
  write_safetensors(temporary_of(weights), tensors, {{"format", "pt"}});
  rename_or_fail(temporary_of(weights), weights);
  const std::string text = config_to_json(layout.config()).dump(2) + "\n";
  DurableFile out(temporary_of(config));
  out.write(text.data(), text.size());
  out.finish();
  rename_or_fail(temporary_of(config), config);
  sync_directory(dir);
} catch (const fs::filesystem_error& e) {
  throw Error(concat("saving the LoRA adapter in ", dir.string(), ": ", e.what()));
}

LoraConfig read_peft_config(const fs::path& dir) {
  const fs::path file = dir / kPeftConfigFile;
  std::ifstream in(file);
  if (!in) throw Error(concat(file.string(), ": cannot open the file"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(concat(file.string(), ": not valid JSON"));
  return config_from_json(file, j);
}

template <typename T>
LoraConfig load_peft_adapter(const fs::path& dir, Decoder<T>& decoder) {
  RECFORGE_CHECK(!decoder.lora_merged(), "load_peft_adapter: the decoder's LoRA adapters are ",
                 "merged into its weights; unmerge_lora() first");
  const LoraConfig config = read_peft_config(dir);
  const LoraLayout layout(decoder.config(), config);
  const std::vector<float> values = read_adapter_tensors(dir / kPeftWeightsFile, layout);
  decoder.enable_lora(config, 0);
  decoder.load_adapter_parameters(values);
  return config;
}

template void save_peft_adapter<float>(const fs::path&, const Decoder<float>&);
template void save_peft_adapter<double>(const fs::path&, const Decoder<double>&);
template LoraConfig load_peft_adapter<float>(const fs::path&, Decoder<float>&);
template LoraConfig load_peft_adapter<double>(const fs::path&, Decoder<double>&);

}  // namespace recforge
