#include "model/lora.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/math.h"

namespace recforge {
namespace {

constexpr int64_t kAlignElements = 16;  // 64 bytes of float
constexpr const char* kAllLinear = "all_linear";
constexpr const char* kValidTargets = "qkv, attn_out, mlp_fc, mlp_proj, all_linear";

int64_t aligned(int64_t n) { return (n + kAlignElements - 1) / kAlignElements * kAlignElements; }

}  // namespace

const char* lora_target_name(LoraTarget target) {
  constexpr const char* kNames[] = {"qkv", "attn_out", "mlp_fc", "mlp_proj"};
  return kNames[static_cast<int>(target)];
}

const char* lora_module_name(LoraTarget target) {
  constexpr const char* kNames[] = {"attn.qkv", "attn.out", "mlp.fc", "mlp.proj"};
  return kNames[static_cast<int>(target)];
}

int lora_in_features(const ModelConfig& model, LoraTarget target) {
  return target == LoraTarget::kMlpProj ? model.mlp_width() : model.d_model;
}

int lora_out_features(const ModelConfig& model, LoraTarget target) {
  switch (target) {
    case LoraTarget::kQkv:
      return 3 * model.d_model;
    case LoraTarget::kMlpFc:
      return model.mlp_width();
    default:
      return model.d_model;
  }
}

float LoraConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<float>(rank)) : alpha / static_cast<float>(rank);
}

void LoraConfig::validate() const {
  RECFORGE_CHECK(rank > 0, "lora.rank must be positive, got ", rank);
  RECFORGE_CHECK(std::isfinite(alpha) && alpha > 0.0f, "lora.alpha must be a positive number, got ",
                 alpha);
  RECFORGE_CHECK(dropout >= 0.0f && dropout < 1.0f, "lora.dropout must be in [0, 1), got ",
                 dropout);
  RECFORGE_CHECK(!targets.empty(), "lora.targets is empty (expected some of: ", kValidTargets, ")");
  resolved_targets();
}

std::vector<LoraTarget> LoraConfig::resolved_targets() const {
  std::array<bool, kNumLoraTargets> wanted{};
  for (const std::string& name : targets) {
    if (name == kAllLinear) {
      wanted.fill(true);
      continue;
    }
    auto target = std::find_if(kAllLoraTargets.begin(), kAllLoraTargets.end(),
                               [&](LoraTarget t) { return name == lora_target_name(t); });
    RECFORGE_CHECK(target != kAllLoraTargets.end(), "unknown LoRA target '", name,
                   "' (expected one of: ", kValidTargets, ")");
    wanted[static_cast<int>(*target)] = true;
  }
  std::vector<LoraTarget> resolved;
  for (LoraTarget target : kAllLoraTargets) {
    if (wanted[static_cast<int>(target)]) resolved.push_back(target);
  }
  return resolved;
}

LoraLayout::LoraLayout(const ModelConfig& model, const LoraConfig& lora)
    : config_(lora), n_layer_(model.n_layer) {
  model.validate();
  config_.validate();
  const std::vector<LoraTarget> targets = config_.resolved_targets();
  for (LoraTarget target : targets) adapts_[static_cast<int>(target)] = true;
  index_.assign(static_cast<size_t>(n_layer_) * kNumLoraTargets * 2, -1);
  const int64_t r = config_.rank;
  for (int l = 0; l < n_layer_; ++l) {
    for (LoraTarget target : targets) {
      const int64_t in = lora_in_features(model, target), out = lora_out_features(model, target);
      for (bool is_b : {false, true}) {
        std::vector<int64_t> shape = is_b ? std::vector<int64_t>{out, r} : std::vector{r, in};
        const int64_t size = shape[0] * shape[1];
        index_[(static_cast<size_t>(l) * kNumLoraTargets + static_cast<int>(target)) * 2 + is_b] =
            static_cast<int>(tensors_.size());
        tensors_.push_back({tensor_name(l, target, is_b), shape, total_size_, size, true});
        total_size_ += aligned(size);
      }
    }
  }
}

const ParameterInfo& LoraLayout::at(const std::string& name) const {
  for (const ParameterInfo& info : tensors_) {
    if (info.name == name) return info;
  }
  RECFORGE_CHECK(false, "no LoRA adapter tensor named '", name, "'");
}

const ParameterInfo& LoraLayout::find(int layer, LoraTarget target, bool is_b) const {
  RECFORGE_CHECK(layer >= 0 && layer < n_layer_, "layer ", layer, " is outside [0, ", n_layer_,
                 ")");
  const int i =
      index_[(static_cast<size_t>(layer) * kNumLoraTargets + static_cast<int>(target)) * 2 + is_b];
  RECFORGE_CHECK(i >= 0, "the LoRA layout does not adapt ", lora_target_name(target));
  return tensors_[i];
}

const ParameterInfo& LoraLayout::lora_a(int layer, LoraTarget target) const {
  return find(layer, target, false);
}

const ParameterInfo& LoraLayout::lora_b(int layer, LoraTarget target) const {
  return find(layer, target, true);
}

std::string LoraLayout::tensor_name(int layer, LoraTarget target, bool is_b) {
  return "h." + std::to_string(layer) + "." + lora_module_name(target) +
         (is_b ? ".lora_B" : ".lora_A");
}

std::string LoraLayout::base_weight_name(int layer, LoraTarget target) {
  return "h." + std::to_string(layer) + "." + lora_module_name(target) + ".weight";
}

std::vector<float> initial_lora_parameters(const LoraLayout& layout, uint64_t seed) {
  std::vector<float> values(layout.total_size(), 0.0f);
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const ParameterInfo& info = layout.tensors()[t];
    if (info.name.ends_with(".lora_B")) continue;
    const float bound = 1.0f / std::sqrt(static_cast<float>(info.shape[1]));  // A is [r, in]
    float* out = values.data() + info.offset;
    for (int64_t i = 0; i < info.size; ++i) {
      out[i] = bound * (2.0f * philox_uniform(seed, t, static_cast<uint64_t>(i)) - 1.0f);
    }
  }
  return values;
}

}  // namespace recforge
