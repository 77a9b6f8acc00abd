#include "model/llama/model.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "kernels/add.h"
#include "kernels/cached_attention.h"
#include "kernels/classifier.h"
#include "kernels/columns.h"
#include "kernels/convert.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/nvtx.h"
#include "kernels/rmsnorm.h"
#include "kernels/rows.h"
#include "kernels/swiglu.h"
#include "model/activation_carver.h"

namespace recforge {
namespace {

// Adapter dropout: one stream per adapted layer.
uint64_t lora_stream(int layer, LlamaLinear linear) {
  return (uint64_t{1} << 40) + static_cast<uint64_t>(layer) * kNumLlamaLinears +
         static_cast<uint64_t>(linear);
}

int index_of(LlamaLinear linear) { return static_cast<int>(linear); }

bool is_linear_weight(const std::string& name) { return name.ends_with("_proj.weight"); }

// The layout's tensors but the linear weights, in the same order.
ParameterLayout without_linears(const ParameterLayout& layout) {
  ParameterLayout out;
  for (const ParameterInfo& info : layout.tensors()) {
    if (!is_linear_weight(info.name)) out.add(info.name, info.shape, info.decayed);
  }
  return out;
}

}  // namespace

template <typename T>
LlamaTensors<T> llama_tensors(const LlamaConfig& config, const ParameterLayout& layout, T* base,
                              bool linears) {
  auto at = [&](const std::string& name) { return base + layout.offset(name); };
  LlamaTensors<T> t;
  t.embed = at("model.embed_tokens.weight");
  t.lm_head = config.tied_embeddings ? t.embed : at("lm_head.weight");
  t.norm = at("model.norm.weight");
  for (int l = 0; l < config.n_layer; ++l) {
    const std::string prefix = concat("model.layers.", l, ".");
    LlamaBlockTensors<T> block{};
    block.input_norm = at(prefix + "input_layernorm.weight");
    block.post_attention_norm = at(prefix + "post_attention_layernorm.weight");
    for (LlamaLinear linear : kAllLlamaLinears) {
      block.linear[index_of(linear)] = linears ? at(llama_linear_tensor(l, linear)) : nullptr;
    }
    t.blocks.push_back(block);
  }
  return t;
}

template <typename T>
LlamaKvCache<T>::LlamaKvCache(Device device, const LlamaConfig& config, int capacity)
    : capacity_(capacity), layer_stride_(static_cast<int64_t>(capacity) * config.kv_width()) {
  RECFORGE_CHECK(capacity > 0, "a key/value cache needs room for at least one token, got ",
                 capacity);
  keys_ = Buffer<T>(device, layer_stride_ * config.n_layer);
  values_ = Buffer<T>(device, layer_stride_ * config.n_layer);
}

template <typename T>
LlamaModel<T>::LlamaModel(Context ctx, LlamaConfig config, int max_tokens, bool base_trains)
    : ctx_(std::move(ctx)),
      config_((config.validate(), config)),
      layout_(llama_layout(config_)),
      stored_layout_(bf16_storage() ? without_linears(layout_) : layout_),
      max_tokens_(max_tokens),
      parameters_(ctx_.device(), stored_layout_.total_size()),
      losses_(ctx_.device(), std::max(max_tokens, 1)) {
  RECFORGE_CHECK(max_tokens > 0, "a model needs room for at least one token, got max_tokens ",
                 max_tokens);
  RECFORGE_CHECK(!bf16_storage() || !base_trains,
                 "model.precision bf16 holds a frozen base (LoRA fine-tuning, inference); a base "
                 "that trains needs fp32 weights");
  weights_ = llama_tensors(config_, stored_layout_, parameters_.data(), !bf16_storage());
  if (bf16_storage()) allocate_bf16_storage();
  cached_tokens_ = Buffer<int32_t>(ctx_.device(), max_tokens);
  cached_positions_ = Buffer<int32_t>(ctx_.device(), max_tokens);
  set_base_frozen(!base_trains);
  allocate_activations();
}

template <typename T>
void LlamaModel<T>::allocate_activations() {
  const int C = config_.d_model, F = config_.ffn_dim, H = config_.n_head;
  const int qw = config_.q_width(), kvw = config_.kv_width();
  auto carve = [&](ActivationCarver<T>& a) {
    embedded_ = a.take(C);
    blocks_.clear();
    for (int l = 0; l < config_.n_layer; ++l) {
      BlockActivations b;
      b.h1 = a.take(C);
      b.rstd1 = a.take(1);
      b.qkv = a.take(config_.qkv_width());
      b.att = a.take(qw);
      b.lse = a.take(H);
      b.residual2 = a.take(C);
      b.h2 = a.take(C);
      b.rstd2 = a.take(1);
      b.gate = a.take(F);
      b.up = a.take(F);
      b.act = a.take(F);
      b.residual3 = a.take(C);
      blocks_.push_back(b);
    }
    final_out_ = a.take(C);
    final_rstd_ = a.take(1);
    scratch_ = {a.take(qw), a.take(kvw), a.take(kvw), a.take(C)};
  };
  activations_ = carved_buffer<T>(ctx_.device(), max_tokens_, carve);
}

template <typename T>
void LlamaModel<T>::allocate_bf16_storage() {
  RECFORGE_CHECK((std::is_same_v<T, float>), "bf16 storage is for float models");
  int64_t total = 0, largest = 0;
  for (const ParameterInfo& info : layout_.tensors()) {
    if (!is_linear_weight(info.name)) continue;
    total += info.size;
    largest = std::max(largest, info.size);
  }
  linear16_ = Buffer<bf16>(ctx_.device(), total);
  widened_ = Buffer<T>(ctx_.device(), largest);
  linear16_of_.assign(config_.n_layer, {});
  const bf16* next = linear16_.data();
  for (int l = 0; l < config_.n_layer; ++l) {
    for (LlamaLinear linear : kAllLlamaLinears) {  // the layout's order within a block
      linear16_of_[l][index_of(linear)] = next;
      next += layout_.at(llama_linear_tensor(l, linear)).size;
    }
  }
}

template <typename T>
const T* LlamaModel<T>::linear_weight(int l, LlamaLinear linear) {
  if (!bf16_storage()) return weights_.blocks[l][linear];
  if constexpr (std::is_same_v<T, float>) {
    const int64_t n =
        static_cast<int64_t>(llama_linear_in(config_, linear)) * llama_linear_out(config_, linear);
    convert(ctx_, widened_.data(), linear16_of_[l][index_of(linear)], n);
  }
  return widened_.data();
}

template <typename T>
void LlamaModel<T>::allocate_gradient_scratch() {
  if (gradient_scratch_.size() > 0) return;
  const int C = config_.d_model, F = config_.ffn_dim, H = config_.n_head;
  const int qw = config_.q_width(), kvw = config_.kv_width();
  auto carve = [&](ActivationCarver<T>& a) {
    grad_ = {a.take(C),  a.take(C),   a.take(C),   a.take(C), a.take(config_.qkv_width()),
             a.take(qw), a.take(kvw), a.take(kvw), a.take(F), a.take(F),
             a.take(F),  a.take(qw),  a.take(H)};
  };
  gradient_scratch_ = carved_buffer<T>(ctx_.device(), max_tokens_, carve);
}

template <typename T>
void LlamaModel<T>::load_parameters(std::span<const float> values) {
  RECFORGE_CHECK(values.size() == static_cast<size_t>(layout_.total_size()), "expected ",
                 layout_.total_size(), " parameter values, got ", values.size());
  if (!bf16_storage()) {
    std::vector<T> converted(values.begin(), values.end());
    parameters_.upload(converted);
    return;
  }
  std::vector<T> stored(stored_layout_.total_size());
  std::vector<bf16> rounded;
  rounded.reserve(linear16_.size());
  for (const ParameterInfo& info : layout_.tensors()) {
    const auto tensor = values.subspan(info.offset, info.size);
    if (is_linear_weight(info.name)) {
      for (float x : tensor) rounded.push_back(float_to_bf16(x));
    } else {
      std::copy(tensor.begin(), tensor.end(), stored.begin() + stored_layout_.offset(info.name));
    }
  }
  parameters_.upload(stored);
  linear16_.upload(rounded);
}

template <typename T>
void LlamaModel<T>::set_base_frozen(bool frozen) {
  RECFORGE_CHECK(frozen || !bf16_storage(),
                 "a model with bf16 weights keeps its base frozen (it has no fp32 masters)");
  base_frozen_ = frozen;
  if (frozen) {
    gradients_ = Buffer<T>();
    weight_gradients_ = {};
  } else if (gradients_.size() == 0) {
    gradients_ = Buffer<T>(ctx_.device(), layout_.total_size());
    gradients_.zero(ctx_);
    weight_gradients_ = llama_tensors(config_, layout_, gradients_.data());
  }
}

template <typename T>
Buffer<T>& LlamaModel<T>::gradients() {
  RECFORGE_CHECK(base_trains(), "the base model is frozen: it has no gradients");
  return gradients_;
}

template <typename T>
void LlamaModel<T>::zero_gradients() {
  if (base_trains()) gradients_.zero(ctx_);
  if (has_lora()) adapter_gradients_.zero(ctx_);
}

template <typename T>
RopeShape LlamaModel<T>::rope_shape(int heads) const {
  return {heads, config_.head_dim, config_.rotary_dim, config_.rope_base};
}

template <typename T>
AttentionShape LlamaModel<T>::attention_shape(AttentionMask mask) const {
  AttentionShape shape;
  shape.num_heads = config_.n_head;
  shape.head_size = config_.head_dim;
  shape.mask = mask;
  shape.num_kv_heads = config_.n_kv_head;
  return shape;
}

template <typename T>
const T* LlamaModel<T>::block_input(int l) const {
  return l == 0 ? embedded_ : blocks_[l - 1].residual3;
}

// ---- Forward ---------------------------------------------------------------------------------

template <typename T>
void LlamaModel<T>::forward(const DeviceBatch& batch, const LlamaForwardOptions& options) {
  NvtxRange range("llama forward");
  const int N = batch.num_tokens();
  RECFORGE_CHECK(N <= max_tokens_, "batch of ", N, " tokens exceeds the model's max_tokens ",
                 max_tokens_);
  last_options_ = options;
  num_tokens_ = N;
  if (N == 0) return;
  trunk_forward(batch.tokens(), {N, batch.positions(), &batch.sequences(), nullptr});
}

template <typename T>
void LlamaModel<T>::forward_cached(std::span<const int32_t> tokens, LlamaKvCache<T>& cache) {
  NvtxRange range("llama forward (cached)");
  const int N = static_cast<int>(tokens.size()), start = cache.length();
  RECFORGE_CHECK(N <= max_tokens_, "a chunk of ", N, " tokens exceeds the model's max_tokens ",
                 max_tokens_);
  RECFORGE_CHECK(start + N <= cache.capacity(), "the sequence would reach ", start + N,
                 " tokens, more than the cache's ", cache.capacity());
  for (int32_t token : tokens) {
    RECFORGE_CHECK(token >= 0 && token < config_.vocab_size, "token id ", token,
                   " is outside the vocabulary [0, ", config_.vocab_size, ")");
  }
  last_options_ = LlamaForwardOptions{};
  num_tokens_ = N;
  if (N == 0) return;
  std::vector<int32_t> positions(N);
  for (int i = 0; i < N; ++i) positions[i] = start + i;
  cached_tokens_.upload(tokens);
  cached_positions_.upload(positions);
  trunk_forward(cached_tokens_.data(), {N, cached_positions_.data(), nullptr, &cache});
  cache.extend(N);
}

// embedded [N, C] = embed[tokens]; h1 of block 0 = rmsnorm(embedded); then every block.
template <typename T>
void LlamaModel<T>::trunk_forward(const int32_t* tokens, const BlockInput& in) {
  const int C = config_.d_model;
  gather_rows(ctx_, embedded_, weights_.embed, tokens, in.N, C);
  rmsnorm_forward(ctx_, blocks_[0].h1, blocks_[0].rstd1, static_cast<const T*>(embedded_),
                  weights_.blocks[0].input_norm, in.N, C, config_.rms_eps);
  for (int l = 0; l < config_.n_layer; ++l) block_forward(l, in);
}

template <typename T>
void LlamaModel<T>::block_forward(int l, const BlockInput& in) {
  const int N = in.N, C = config_.d_model;
  const BlockActivations& a = blocks_[l];
  attention_forward(l, in);
  // r2 = x + att·Woᵀ, h2 = rmsnorm(r2)
  linear_forward(l, LlamaLinear::kO, scratch_.branch, a.att, N);
  residual_rmsnorm_forward(ctx_, a.residual2, a.h2, a.rstd2, block_input(l),
                           static_cast<const T*>(scratch_.branch),
                           weights_.blocks[l].post_attention_norm, N, C, config_.rms_eps);
  // act [N, F] = silu(h2·Wgᵀ) ⊙ h2·Wuᵀ; the MLP's output [N, C] goes to the next norm's residual
  linear_forward(l, LlamaLinear::kGate, a.gate, a.h2, N);
  linear_forward(l, LlamaLinear::kUp, a.up, a.h2, N);
  swiglu_forward(ctx_, a.act, static_cast<const T*>(a.gate), static_cast<const T*>(a.up),
                 static_cast<int64_t>(N) * config_.ffn_dim);
  linear_forward(l, LlamaLinear::kDown, scratch_.branch, a.act, N);
  norm_into_next(l);
}

template <typename T>
void LlamaModel<T>::attention_forward(int l, const BlockInput& in) {
  const int N = in.N;
  const BlockActivations& a = blocks_[l];
  // q [N, H·HS], k and v [N, KV·HS]; rotary positions on q and k
  linear_forward(l, LlamaLinear::kQ, scratch_.q, a.h1, N);
  linear_forward(l, LlamaLinear::kK, scratch_.k, a.h1, N);
  linear_forward(l, LlamaLinear::kV, scratch_.v, a.h1, N);
  rope_forward(ctx_, scratch_.q, in.positions, N, rope_shape(config_.n_head));
  rope_forward(ctx_, scratch_.k, in.positions, N, rope_shape(config_.n_kv_head));
  if (in.cache) return cached_attention(l, in);
  // packed side by side, [N, H + 2·KV, HS], for the batch's attention (and its backward)
  ColumnParts<const T> parts{{scratch_.q, scratch_.k, scratch_.v},
                             {config_.q_width(), config_.kv_width(), config_.kv_width()},
                             3};
  concat_columns(ctx_, a.qkv, parts, N);
  recforge::attention_forward(ctx_, a.att, a.lse, static_cast<const T*>(a.qkv), *in.sequences,
                              attention_shape(last_options_.mask));
}

// The new keys and values go to the cache's rows start .. start + N − 1; the queries attend to
// every cached row up to their own.
template <typename T>
void LlamaModel<T>::cached_attention(int l, const BlockInput& in) {
  LlamaKvCache<T>& cache = *in.cache;
  const int start = cache.length();
  const int64_t row = config_.kv_width();
  const size_t bytes = static_cast<size_t>(in.N) * row * sizeof(T);
  copy_bytes(cache.keys(l) + start * row, ctx_.device(), scratch_.k, ctx_.device(), bytes);
  copy_bytes(cache.values(l) + start * row, ctx_.device(), scratch_.v, ctx_.device(), bytes);
  const CachedAttentionShape shape{config_.n_head, config_.n_kv_head, config_.head_dim};
  cached_attention_forward(ctx_, blocks_[l].att, static_cast<const T*>(scratch_.q),
                           static_cast<const T*>(cache.keys(l)),
                           static_cast<const T*>(cache.values(l)), start, in.N, shape);
}

// x' = r2 + mlp (in scratch_.branch), then the next block's input norm (or the final norm) of x'.
template <typename T>
void LlamaModel<T>::norm_into_next(int l) {
  const bool last = l + 1 == config_.n_layer;
  T* out = last ? final_out_ : blocks_[l + 1].h1;
  T* rstd = last ? final_rstd_ : blocks_[l + 1].rstd1;
  const T* weight = last ? weights_.norm : weights_.blocks[l + 1].input_norm;
  const BlockActivations& a = blocks_[l];
  residual_rmsnorm_forward(ctx_, a.residual3, out, rstd, static_cast<const T*>(a.residual2),
                           static_cast<const T*>(scratch_.branch), weight, num_tokens_,
                           config_.d_model, config_.rms_eps);
}

template <typename T>
void LlamaModel<T>::linear_forward(int l, LlamaLinear linear, T* out, const T* inp, int N) {
  const int in = llama_linear_in(config_, linear), out_width = llama_linear_out(config_, linear);
  const T* weight = linear_weight(l, linear);
  if (adapter_active(linear)) {
    const LoraSite& site = lora_sites_[l][index_of(linear)];
    lora_forward(ctx_, out, site.u, lora_dropped_, inp, weight, static_cast<const T*>(nullptr),
                 lora_weights(l, linear), N, in, out_width);
  } else {
    matmul_forward(ctx_, out, inp, weight, nullptr, N, in, out_width);
  }
}

// ---- Output layer ----------------------------------------------------------------------------

template <typename T>
double LlamaModel<T>::output_loss(const DeviceBatch& batch, bool backward) {
  NvtxRange range("llama output loss");
  const int N = batch.num_tokens(), C = config_.d_model, V = config_.vocab_size;
  RECFORGE_CHECK(batch.targets() != nullptr, "output_loss needs a batch with targets");
  const int64_t counted = batch.num_counted_targets();
  if (backward) {
    allocate_gradient_scratch();
    zero_bytes(ctx_, grad_.hidden, static_cast<size_t>(N) * C * sizeof(T));
  }
  if (counted == 0) return 0.0;
  T* dlm_head = backward && base_trains() ? weight_gradients_.lm_head : nullptr;
  classifier_forward_backward(ctx_, losses_.data(), backward ? grad_.hidden : nullptr, dlm_head,
                              hidden(), weights_.lm_head, batch.targets(), N, C, V,
                              T(1) / T(counted));
  double sum = 0.0;
  for (double loss : download_losses(N)) sum += loss;
  return sum / static_cast<double>(counted);
}

// The rows of `host` with a counted target, per sequence (sequence s: rows[firsts[s] ..
// firsts[s + 1])), and those targets.
struct CountedRows {
  std::vector<int32_t> rows, targets, firsts;
};

CountedRows counted_rows_of(const PackedBatch& host) {
  CountedRows counted;
  for (int s = 0; s < host.num_sequences(); ++s) {
    counted.firsts.push_back(static_cast<int32_t>(counted.rows.size()));
    for (int n = host.offsets[s]; n < host.offsets[s + 1]; ++n) {
      if (host.targets[n] == kIgnoreIndex) continue;
      counted.rows.push_back(n);
      counted.targets.push_back(host.targets[n]);
    }
  }
  counted.firsts.push_back(static_cast<int32_t>(counted.rows.size()));
  return counted;
}

template <typename T>
std::vector<double> LlamaModel<T>::counted_row_losses(const DeviceBatch& batch,
                                                      const PackedBatch& host,
                                                      std::span<const double> weights,
                                                      bool backward) {
  NvtxRange range("llama counted-row loss");
  const int N = batch.num_tokens(), C = config_.d_model, V = config_.vocab_size;
  RECFORGE_CHECK(host.num_tokens() == N && host.targets.size() == static_cast<size_t>(N) &&
                     weights.size() == static_cast<size_t>(host.num_sequences()),
                 "weighted_sequence_loss: a host batch of ", host.num_tokens(), " tokens and ",
                 weights.size(), " weights for a batch of ", N, " tokens and ",
                 host.num_sequences(), " sequences");
  if (counted_hidden_.size() == 0) {
    counted_hidden_ = Buffer<T>(ctx_.device(), static_cast<size_t>(max_tokens_) * C);
    counted_rows_ = Buffer<int32_t>(ctx_.device(), max_tokens_);
    counted_targets_ = Buffer<int32_t>(ctx_.device(), max_tokens_);
  }
  if (backward) {
    allocate_gradient_scratch();
    if (counted_dhidden_.size() == 0) {
      counted_dhidden_ = Buffer<T>(ctx_.device(), static_cast<size_t>(max_tokens_) * C);
    }
  }
  const CountedRows counted = counted_rows_of(host);
  const int R = static_cast<int>(counted.rows.size());
  if (R > 0) {
    counted_rows_.upload(counted.rows);
    counted_targets_.upload(counted.targets);
    gather_rows(ctx_, counted_hidden_.data(), hidden(), counted_rows_.data(), R, C);
  }
  T* dlm_head = backward && base_trains() ? weight_gradients_.lm_head : nullptr;
  // One classifier call per run of consecutive sequences with the same weight.
  for (size_t s = 0, end = 0; s < weights.size(); s = end) {
    for (end = s + 1; end < weights.size() && weights[end] == weights[s];) ++end;
    const int first = counted.firsts[s], rows = counted.firsts[end] - first;
    if (rows == 0) continue;
    const int64_t at = static_cast<int64_t>(first) * C;
    classifier_forward_backward(
        ctx_, losses_.data() + first, backward ? counted_dhidden_.data() + at : nullptr,
        backward ? dlm_head : nullptr, counted_hidden_.data() + at, weights_.lm_head,
        counted_targets_.data() + first, rows, C, V, static_cast<T>(weights[s]));
  }
  if (backward) {
    zero_bytes(ctx_, grad_.hidden, static_cast<size_t>(N) * C * sizeof(T));
    if (R > 0) {
      scatter_rows(ctx_, grad_.hidden, counted_dhidden_.data(), counted_rows_.data(), R, N, C);
    }
  }
  const std::vector<double> row_losses = download_losses(R);
  std::vector<double> sequence_losses(weights.size(), 0.0);
  for (size_t s = 0; s < weights.size(); ++s) {
    for (int i = counted.firsts[s]; i < counted.firsts[s + 1]; ++i) {
      sequence_losses[s] += row_losses[i];
    }
  }
  return sequence_losses;
}

template <typename T>
double LlamaModel<T>::weighted_sequence_loss(const DeviceBatch& batch, const PackedBatch& host,
                                             std::span<const double> weights, bool backward) {
  const std::vector<double> losses = counted_row_losses(batch, host, weights, backward);
  double loss = 0.0;
  for (size_t s = 0; s < weights.size(); ++s) loss += weights[s] * losses[s];
  return loss;
}

template <typename T>
std::vector<double> LlamaModel<T>::sequence_losses(const DeviceBatch& batch,
                                                   const PackedBatch& host) {
  const std::vector<double> ones(host.num_sequences(), 1.0);
  return counted_row_losses(batch, host, ones, false);
}

template <typename T>
std::vector<double> LlamaModel<T>::target_losses(const DeviceBatch& batch) {
  const int N = batch.num_tokens();
  RECFORGE_CHECK(batch.targets() != nullptr, "target_losses needs a batch with targets");
  if (N == 0) return {};
  classifier_forward_backward(ctx_, losses_.data(), static_cast<T*>(nullptr),
                              static_cast<T*>(nullptr), hidden(), weights_.lm_head, batch.targets(),
                              N, config_.d_model, config_.vocab_size, T(1));
  return download_losses(N);
}

template <typename T>
std::vector<double> LlamaModel<T>::download_losses(int N) const {
  std::vector<T> losses(N);
  copy_bytes(losses.data(), Device::kCpu, losses_.data(), ctx_.device(), N * sizeof(T));
  return std::vector<double>(losses.begin(), losses.end());
}

template <typename T>
void LlamaModel<T>::row_logits(T* out, int row) {
  RECFORGE_CHECK(row >= 0 && row < num_tokens_, "row ", row, " is outside the last forward's ",
                 num_tokens_, " tokens");
  matmul_forward(ctx_, out, hidden() + static_cast<int64_t>(row) * config_.d_model,
                 weights_.lm_head, nullptr, 1, config_.d_model, config_.vocab_size);
}

template <typename T>
void LlamaModel<T>::logits(T* out, int num_tokens) {
  matmul_forward(ctx_, out, hidden(), weights_.lm_head, nullptr, num_tokens, config_.d_model,
                 config_.vocab_size);
}

// ---- Backward --------------------------------------------------------------------------------

template <typename T>
void LlamaModel<T>::backward(const DeviceBatch& batch, bool last_of_step) {
  NvtxRange range("llama backward");
  const int N = batch.num_tokens(), C = config_.d_model;
  last_of_step_ = last_of_step;
  allocate_gradient_scratch();
  if (N > 0) {
    // hidden = rmsnorm(x_L): grad_.residual becomes ∂L/∂x_L
    zero_bytes(ctx_, grad_.residual, static_cast<size_t>(N) * C * sizeof(T));
    rmsnorm_backward(ctx_, grad_.residual, base_trains() ? weight_gradients_.norm : nullptr,
                     static_cast<const T*>(grad_.hidden),
                     static_cast<const T*>(blocks_.back().residual3), weights_.norm, final_rstd_, N,
                     C);
  }
  if (last_of_step_ && base_trains()) reduce(weight_gradients_.norm, C);
  for (int l = config_.n_layer - 1; l >= 0; --l) {
    if (N > 0) block_backward(l, batch);
    if (last_of_step_) reduce_block(l);
  }
  if (N > 0) embedding_backward(batch);
  if (last_of_step_ && base_trains()) {
    const int64_t table = static_cast<int64_t>(config_.vocab_size) * C;
    reduce(weight_gradients_.embed, table);
    if (!config_.tied_embeddings) reduce(weight_gradients_.lm_head, table);
  }
}

// grad_.residual holds ∂L/∂x' of block l on entry and ∂L/∂x on exit.
template <typename T>
void LlamaModel<T>::block_backward(int l, const DeviceBatch& batch) {
  mlp_backward(l);
  attention_backward(l, batch);
}

template <typename T>
void LlamaModel<T>::mlp_backward(int l) {
  const int N = num_tokens_, C = config_.d_model;
  const BlockActivations& a = blocks_[l];
  linear_backward(l, LlamaLinear::kDown, grad_.dact, grad_.residual, a.act, N, false);
  swiglu_backward(ctx_, grad_.dgate, grad_.dup, static_cast<const T*>(grad_.dact),
                  static_cast<const T*>(a.gate), static_cast<const T*>(a.up),
                  static_cast<int64_t>(N) * config_.ffn_dim);
  linear_backward(l, LlamaLinear::kGate, grad_.dh, grad_.dgate, a.h2, N, false);
  linear_backward(l, LlamaLinear::kUp, grad_.dh, grad_.dup, a.h2, N, true);
  // r2 feeds both the residual and the norm: ∂L/∂r2 = ∂L/∂x' + rmsnorm'ᵀ·dh
  rmsnorm_backward(ctx_, grad_.residual,
                   base_trains() ? weight_gradients_.blocks[l].post_attention_norm : nullptr,
                   static_cast<const T*>(grad_.dh), static_cast<const T*>(a.residual2),
                   weights_.blocks[l].post_attention_norm, static_cast<const T*>(a.rstd2), N, C);
}

template <typename T>
void LlamaModel<T>::attention_backward(int l, const DeviceBatch& batch) {
  const int N = batch.num_tokens(), C = config_.d_model;
  const BlockActivations& a = blocks_[l];
  linear_backward(l, LlamaLinear::kO, grad_.datt, grad_.residual, a.att, N, false);
  recforge::attention_backward(ctx_, grad_.dqkv, grad_.delta, static_cast<const T*>(grad_.datt),
                               static_cast<const T*>(a.qkv), static_cast<const T*>(a.att),
                               static_cast<const T*>(a.lse), batch.sequences(),
                               attention_shape(last_options_.mask));
  ColumnParts<T> parts{{grad_.dq, grad_.dk, grad_.dv},
                       {config_.q_width(), config_.kv_width(), config_.kv_width()},
                       3};
  split_columns(ctx_, parts, static_cast<const T*>(grad_.dqkv), N);
  rope_backward(ctx_, grad_.dq, batch.positions(), N, rope_shape(config_.n_head));
  rope_backward(ctx_, grad_.dk, batch.positions(), N, rope_shape(config_.n_kv_head));
  linear_backward(l, LlamaLinear::kQ, grad_.dh, grad_.dq, a.h1, N, false);
  linear_backward(l, LlamaLinear::kK, grad_.dh, grad_.dk, a.h1, N, true);
  linear_backward(l, LlamaLinear::kV, grad_.dh, grad_.dv, a.h1, N, true);
  rmsnorm_backward(ctx_, grad_.residual,
                   base_trains() ? weight_gradients_.blocks[l].input_norm : nullptr,
                   static_cast<const T*>(grad_.dh), block_input(l), weights_.blocks[l].input_norm,
                   static_cast<const T*>(a.rstd1), N, C);
}

template <typename T>
void LlamaModel<T>::embedding_backward(const DeviceBatch& batch) {
  if (!base_trains()) return;
  recforge::embedding_backward(ctx_, weight_gradients_.embed, static_cast<T*>(nullptr),
                               static_cast<const T*>(grad_.residual), batch.token_index(),
                               batch.position_index(), config_.d_model);
}

template <typename T>
void LlamaModel<T>::linear_backward(int l, LlamaLinear linear, T* dinp, const T* dout, const T* inp,
                                    int N, bool accumulate) {
  const int in = llama_linear_in(config_, linear), out_width = llama_linear_out(config_, linear);
  const T* weight = linear_weight(l, linear);
  T* dweight = base_trains() ? weight_gradients_.blocks[l][linear] : nullptr;
  T* target = accumulate ? grad_.branch : dinp;
  if (adapter_active(linear)) {
    const LoraSite& site = lora_sites_[l][index_of(linear)];
    lora_backward(ctx_, target, site.da, site.db, lora_du_, lora_dropped_, dout, inp,
                  static_cast<const T*>(site.u), weight, lora_weights(l, linear), N, in, out_width);
    if (dweight) {
      matmul_backward<T>(ctx_, static_cast<T*>(nullptr), dweight, nullptr, dout, inp, weight, N, in,
                         out_width);
    }
  } else {
    matmul_backward<T>(ctx_, target, dweight, nullptr, dout, inp, weight, N, in, out_width);
  }
  if (accumulate)
    add_into(ctx_, dinp, static_cast<const T*>(grad_.branch), static_cast<int64_t>(N) * in);
}

template <typename T>
void LlamaModel<T>::reduce(T* gradient, int64_t count) const {
  if (reducer_) reducer_(gradient, count);
}

template <typename T>
void LlamaModel<T>::reduce_block(int l) const {
  const int C = config_.d_model;
  if (base_trains()) {
    const LlamaBlockTensors<T>& g = weight_gradients_.blocks[l];
    reduce(g.post_attention_norm, C);
    reduce(g.input_norm, C);
    for (LlamaLinear linear : kAllLlamaLinears) {
      reduce(g[linear], static_cast<int64_t>(llama_linear_in(config_, linear)) *
                            llama_linear_out(config_, linear));
    }
  }
  if (!has_lora()) return;
  const int r = lora_config_->rank;
  for (LlamaLinear linear : lora_config_->resolved_targets()) {
    const LoraSite& site = lora_sites_[l][index_of(linear)];
    reduce(site.da, static_cast<int64_t>(r) * llama_linear_in(config_, linear));
    reduce(site.db, static_cast<int64_t>(r) * llama_linear_out(config_, linear));
  }
}

// ---- LoRA ------------------------------------------------------------------------------------

template <typename T>
void LlamaModel<T>::enable_lora(const LlamaLoraConfig& config, uint64_t seed) {
  config.validate();
  lora_config_ = config;
  lora_layout_ = llama_lora_layout(config_, config);
  adapter_parameters_ = Buffer<T>(ctx_.device(), lora_layout_.total_size());
  adapter_gradients_ = Buffer<T>(ctx_.device(), lora_layout_.total_size());
  adapter_gradients_.zero(ctx_);
  load_adapter_parameters(llama_lora_initial(lora_layout_, seed));
  lora_merged_ = false;
  allocate_lora_activations();
}

template <typename T>
const LlamaLoraConfig& LlamaModel<T>::lora_config() const {
  RECFORGE_CHECK(has_lora(), "the model has no LoRA adapters");
  return *lora_config_;
}

template <typename T>
void LlamaModel<T>::allocate_lora_activations() {
  const int r = lora_config_->rank;
  const int max_in = std::max({config_.d_model, config_.q_width(), config_.ffn_dim});
  const std::vector<LlamaLinear> targets = lora_config_->resolved_targets();
  auto carve = [&](ActivationCarver<T>& a) {
    lora_sites_.assign(config_.n_layer, {});
    for (int l = 0; l < config_.n_layer; ++l) {
      for (LlamaLinear linear : targets) lora_sites_[l][index_of(linear)].u = a.take(r);
    }
    lora_du_ = a.take(r);
    lora_dropped_ = lora_config_->dropout > 0.0f ? a.take(max_in) : nullptr;
  };
  lora_activations_ = carved_buffer<T>(ctx_.device(), max_tokens_, carve);
  for (int l = 0; l < config_.n_layer; ++l) {
    for (LlamaLinear linear : targets) {
      LoraSite& site = lora_sites_[l][index_of(linear)];
      const int64_t a = lora_layout_.offset(llama_lora_tensor(l, linear, 'A'));
      const int64_t b = lora_layout_.offset(llama_lora_tensor(l, linear, 'B'));
      site.a = adapter_parameters_.data() + a;
      site.b = adapter_parameters_.data() + b;
      site.da = adapter_gradients_.data() + a;
      site.db = adapter_gradients_.data() + b;
    }
  }
}

template <typename T>
void LlamaModel<T>::load_adapter_parameters(std::span<const float> values) {
  RECFORGE_CHECK(has_lora(), "the model has no LoRA adapters to load");
  RECFORGE_CHECK(values.size() == static_cast<size_t>(lora_layout_.total_size()), "expected ",
                 lora_layout_.total_size(), " adapter values, got ", values.size());
  std::vector<T> converted(values.begin(), values.end());
  adapter_parameters_.upload(converted);
}

template <typename T>
bool LlamaModel<T>::adapter_active(LlamaLinear linear) const {
  return has_lora() && !lora_merged_ && last_options_.use_adapters &&
         lora_sites_[0][index_of(linear)].a != nullptr;
}

template <typename T>
LoraWeights<T> LlamaModel<T>::lora_weights(int l, LlamaLinear linear) const {
  const LoraSite& site = lora_sites_[l][index_of(linear)];
  const float p = last_options_.training ? lora_config_->dropout : 0.0f;
  return {site.a, site.b, lora_config_->rank, lora_config_->scale(),
          DropoutParams{p, last_options_.dropout_seed, lora_stream(l, linear)}};
}

template <typename T>
void LlamaModel<T>::merge_lora() {
  RECFORGE_CHECK(has_lora() && !lora_merged_, "merge_lora: no unmerged adapters");
  RECFORGE_CHECK(!bf16_storage(),
                 "merge_lora: the base weights are bf16; merge into an fp32 model");
  std::vector<T> weights = parameters_.download();
  const std::vector<T> adapters = adapter_parameters_.download();
  const int r = lora_config_->rank;
  const double s = lora_config_->scale();
  for (int l = 0; l < config_.n_layer; ++l) {
    for (LlamaLinear linear : lora_config_->resolved_targets()) {
      const int in = llama_linear_in(config_, linear), out = llama_linear_out(config_, linear);
      T* w = weights.data() + layout_.offset(llama_linear_tensor(l, linear));
      const T* a = adapters.data() + lora_layout_.offset(llama_lora_tensor(l, linear, 'A'));
      const T* b = adapters.data() + lora_layout_.offset(llama_lora_tensor(l, linear, 'B'));
      for (int o = 0; o < out; ++o) {
        for (int i = 0; i < in; ++i) {
          double update = 0.0;
          for (int k = 0; k < r; ++k) update += static_cast<double>(b[o * r + k]) * a[k * in + i];
          w[static_cast<int64_t>(o) * in + i] += static_cast<T>(s * update);
        }
      }
    }
  }
  parameters_.upload(weights);
  lora_merged_ = true;
}

template class LlamaKvCache<float>;
template class LlamaKvCache<double>;
template class LlamaModel<float>;
template class LlamaModel<double>;

}  // namespace recforge
