#include "model/parameters.h"

#include <cmath>
#include <numbers>

#include "kernels/check.h"
#include "kernels/math.h"

namespace recforge {

ParameterLayout::ParameterLayout(const ModelConfig& config) {
  const int64_t V = config.vocab_size, C = config.d_model, F = config.mlp_width();
  add("wte", {V, C}, true);
  add("wpe", {config.max_len, C}, true);
  for (int l = 0; l < config.n_layer; ++l) {
    std::string h = "h." + std::to_string(l) + ".";
    add(h + "attn.qkv.weight", {3 * C, C}, true);
    add(h + "attn.out.weight", {C, C}, true);
    add(h + "mlp.fc.weight", {F, C}, true);
    add(h + "mlp.proj.weight", {C, F}, true);
  }
  for (int l = 0; l < config.n_layer; ++l) {
    std::string h = "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", {C}, false);
    add(h + "ln_1.bias", {C}, false);
    add(h + "attn.qkv.bias", {3 * C}, false);
    add(h + "attn.out.bias", {C}, false);
    add(h + "ln_2.weight", {C}, false);
    add(h + "ln_2.bias", {C}, false);
    add(h + "mlp.fc.bias", {F}, false);
    add(h + "mlp.proj.bias", {C}, false);
  }
  add("ln_f.weight", {C}, false);
  add("ln_f.bias", {C}, false);
}

int64_t ParameterLayout::token_row_offset(int32_t token) const {
  const ParameterInfo& wte = at("wte");
  return wte.offset + static_cast<int64_t>(token) * wte.shape[1];
}

void ParameterLayout::add(std::string name, std::vector<int64_t> shape, bool decayed) {
  RECFORGE_CHECK(!decayed || num_decayed_ == total_size_, "parameter layout: decayed tensor ", name,
                 " after tensors without decay");
  int64_t size = 1;
  for (int64_t dim : shape) size *= dim;
  tensors_.push_back({std::move(name), std::move(shape), total_size_, size, decayed});
  total_size_ += size;
  if (decayed) num_decayed_ = total_size_;
}

const ParameterInfo& ParameterLayout::at(const std::string& name) const {
  for (const ParameterInfo& info : tensors_) {
    if (info.name == name) return info;
  }
  RECFORGE_CHECK(false, "no parameter named '", name, "'");
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

float philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  float u1 = 1.0f - philox_uniform(seed, stream, 2 * index);  // (0, 1]
  float u2 = philox_uniform(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(2.0f * std::numbers::pi_v<float> * u2);
}

std::vector<float> initial_parameters(const ModelConfig& config, const ParameterLayout& layout,
                                      uint64_t seed, float init_std, float embedding_std) {
  std::vector<float> values(layout.total_size());
  const float residual_std = init_std / std::sqrt(2.0f * config.n_layer);
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const ParameterInfo& info = layout.tensors()[t];
    float* out = values.data() + info.offset;
    if (!info.decayed) {
      float fill = ends_with(info.name, "ln_1.weight") || ends_with(info.name, "ln_2.weight") ||
                           info.name == "ln_f.weight"
                       ? 1.0f
                       : 0.0f;
      std::fill(out, out + info.size, fill);
      continue;
    }
    bool residual =
        ends_with(info.name, "attn.out.weight") || ends_with(info.name, "mlp.proj.weight");
    const bool embedding = info.name == "wte" || info.name == "wpe";
    float stddev = residual ? residual_std : init_std;
    if (embedding && embedding_std > 0.0f) stddev = embedding_std;
    for (int64_t i = 0; i < info.size; ++i) out[i] = stddev * philox_normal(seed, t, i);
  }
  return values;
}

}  // namespace recforge
