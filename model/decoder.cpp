#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "kernels/classifier.h"
#include "kernels/convert.h"
#include "kernels/dropout.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "kernels/nvtx.h"
#include "model/activation_carver.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

// Dropout streams: one per call site, so masks never repeat within a step.
constexpr uint64_t kEmbeddingStream = 0;
uint64_t attention_stream(int layer) { return 1 + 2 * static_cast<uint64_t>(layer); }
uint64_t mlp_stream(int layer) { return 2 + 2 * static_cast<uint64_t>(layer); }
// Adapter dropout: one stream per adapted layer, far above the trunk's.
uint64_t lora_stream(int layer, LoraTarget target) {
  return (uint64_t{1} << 32) + kNumLoraTargets * static_cast<uint64_t>(layer) +
         static_cast<uint64_t>(target);
}

// The weight and bias of one of a block's linear layers (or their gradients).
template <typename T>
struct Linear {
  T *weight, *bias;
};

template <typename T>
Linear<T> linear_of(const LayerTensors<T>& t, LoraTarget target) {
  switch (target) {
    case LoraTarget::kQkv:
      return {t.qkv_w, t.qkv_b};
    case LoraTarget::kAttnOut:
      return {t.out_w, t.out_b};
    case LoraTarget::kMlpFc:
      return {t.fc_w, t.fc_b};
    default:
      return {t.proj_w, t.proj_b};
  }
}

// Pointers into a buffer holding the parameters from offset `first` on (0: all of them); tensors
// before `first` are null.
template <typename T>
ModelTensors<T> tensors_in(T* base, const ParameterLayout& layout, int n_layer, int64_t first = 0) {
  auto at = [&](const std::string& name) -> T* {
    const int64_t offset = layout.offset(name);
    return offset < first ? nullptr : base + (offset - first);
  };
  ModelTensors<T> t{at("wte"), at("wpe"), at("ln_f.weight"), at("ln_f.bias"), {}};
  for (int l = 0; l < n_layer; ++l) {
    std::string h = "h." + std::to_string(l) + ".";
    t.layers.push_back({at(h + "ln_1.weight"), at(h + "ln_1.bias"), at(h + "attn.qkv.weight"),
                        at(h + "attn.qkv.bias"), at(h + "attn.out.weight"), at(h + "attn.out.bias"),
                        at(h + "ln_2.weight"), at(h + "ln_2.bias"), at(h + "mlp.fc.weight"),
                        at(h + "mlp.fc.bias"), at(h + "mlp.proj.weight"), at(h + "mlp.proj.bias")});
  }
  return t;
}

}  // namespace

template <typename T>
Decoder<T>::Decoder(Context ctx, ModelConfig config, int max_tokens)
    : ctx_(std::move(ctx)),
      config_((config.validate(), config)),
      layout_(config_),
      max_tokens_(max_tokens),
      parameters_(ctx_.device(), layout_.total_size()),
      gradients_(ctx_.device(), layout_.total_size()),
      losses_(ctx_.device(), std::max(max_tokens, 1)) {
  RECFORGE_CHECK(max_tokens > 0, "a model needs room for at least one token, got max_tokens ",
                 max_tokens);
  RECFORGE_CHECK(
      (!mixed() || std::is_same_v<T, float>),
      "model.precision bf16 needs float master weights (a float64 decoder is fp64 only)");
  weights_ = tensors_in(parameters_.data(), layout_, config_.n_layer);
  weight_gradients_ = tensors_in(gradients_.data(), layout_, config_.n_layer);
  if (mixed()) {
    const ParameterInfo& wpe = layout_.at("wpe");
    compute_first_ = wpe.offset + wpe.size;
    compute_parameters_ = Buffer<bf16>(ctx_.device(), layout_.total_size() - compute_first_);
    compute_weights_ =
        tensors_in(compute_parameters_.data(), layout_, config_.n_layer, compute_first_);
  }
  allocate_activations();
  load_parameters(initial_parameters(config_, layout_, 0));
  zero_gradients();
}

// One layer's activations: the T tensors from `full`, the operands from `operands` (the same
// carver in fp32).
template <typename T>
template <typename A>
void Decoder<T>::carve_activations(ActivationCarver<T>& full, ActivationCarver<A>& operands,
                                   std::vector<LayerActivations<A>>& layers) {
  const int C = config_.d_model, F = config_.mlp_width(), NH = config_.n_head;
  auto norm = [&] { return Norm<A>{operands.take(C), full.take(1), full.take(1)}; };
  layers.clear();
  for (int l = 0; l < config_.n_layer; ++l) {
    LayerActivations<A> a;
    a.ln1 = norm();
    a.qkv = operands.take(3 * C);
    a.att = operands.take(C);
    a.lse = full.take(NH);
    a.attproj = full.take(C);
    a.residual2 = full.take(C);
    a.ln2 = norm();
    a.fch = operands.take(F);
    a.fch_gelu = operands.take(F);
    a.fcproj = full.take(C);
    a.residual3 = full.take(C);
    layers.push_back(a);
  }
}

// Activations: per layer 11 [N, ·] tensors plus norm statistics, carved from one buffer sized for
// max_tokens rows (two in bf16 mode: T and bf16); the gradient scratch likewise. Each carve runs
// twice: to measure, then to place.
template <typename T>
void Decoder<T>::allocate_activations() {
  const int C = config_.d_model, F = config_.mlp_width(), NH = config_.n_head;
  auto carve = [&](T* base, bf16* operand_base) {
    ActivationCarver<T> full(base, max_tokens_);
    ActivationCarver<bf16> operands(operand_base, max_tokens_);
    encoded_ = full.take(C);
    if (mixed()) {
      carve_activations(full, operands, layers16_);
    } else {
      carve_activations(full, full, layers_);
    }
    final_norm_ = Norm<T>{full.take(C), full.take(1), full.take(1)};
    return std::pair{full.used(), operands.used()};
  };
  auto [size, operand_size] = carve(nullptr, nullptr);
  activations_ = Buffer<T>(ctx_.device(), size);
  if (mixed()) operand_activations_ = Buffer<bf16>(ctx_.device(), operand_size);
  carve(activations_.data(), operand_activations_.data());

  auto carve_gradients = [&](T* base) {
    ActivationCarver<T> c(base, max_tokens_);
    // bf16 mode takes ∂L/∂qkv as a bf16 operand (grad16_.dqkv), not here. Braced
    // initializers run left to right, so the slices keep their order.
    grad_ = GradientScratch{c.take(C), c.take(C), c.take(C),
                            c.take(C), c.take(F), mixed() ? nullptr : c.take(3 * C),
                            c.take(NH)};
    return c.used();
  };
  gradient_scratch_ = Buffer<T>(ctx_.device(), carve_gradients(nullptr));
  carve_gradients(gradient_scratch_.data());
  if (!mixed()) return;
  auto carve_operand_gradients = [&](bf16* base) {
    ActivationCarver<bf16> c(base, max_tokens_);
    grad16_ = OperandGradients<bf16>{c.take(C), c.take(F), c.take(C), c.take(3 * C)};
    return c.used();
  };
  operand_scratch_ = Buffer<bf16>(ctx_.device(), carve_operand_gradients(nullptr));
  carve_operand_gradients(operand_scratch_.data());
}

template <typename T>
void Decoder<T>::load_parameters(std::span<const float> values) {
  RECFORGE_CHECK(values.size() == static_cast<size_t>(layout_.total_size()), "expected ",
                 layout_.total_size(), " parameter values, got ", values.size());
  std::vector<T> converted(values.begin(), values.end());
  parameters_.upload(converted);
}

template <typename T>
void Decoder<T>::zero_gradients() {
  gradients_.zero(ctx_);
  if (has_lora()) adapter_gradients_.zero(ctx_);
}

template <typename T>
const T* Decoder<T>::layer_input(int l) const {
  if (l == 0) return encoded_;
  return mixed() ? layers16_[l - 1].residual3 : layers_[l - 1].residual3;
}

template <typename T>
AttentionShape Decoder<T>::attention_shape(AttentionMask mask) const {
  return {config_.n_head, config_.head_size(), mask};
}

template <typename T>
void Decoder<T>::dropout(T* x, int N, uint64_t stream) const {
  if (!last_options_.training || config_.dropout == 0.0f) return;
  DropoutParams params{config_.dropout, last_options_.dropout_seed, stream};
  dropout_forward(ctx_, x, x, static_cast<int64_t>(N) * config_.d_model, params);
}

// The gradient through a dropout site: dout itself when no dropout ran, else masked into scratch.
template <typename T>
const T* Decoder<T>::dropout_gradient(const T* dout, T* scratch, int N, uint64_t stream) const {
  if (!last_options_.training || config_.dropout == 0.0f) return dout;
  DropoutParams params{config_.dropout, last_options_.dropout_seed, stream};
  dropout_backward(ctx_, scratch, dout, static_cast<int64_t>(N) * config_.d_model, params);
  return scratch;
}

// bf16 mode computes with a bf16 copy of the fp32 masters, made again at every forward (the
// optimizer changes the masters between steps): one read of 4 and one write of 2 bytes per
// block parameter.
template <typename T>
void Decoder<T>::refresh_compute_weights() {
  if constexpr (std::is_same_v<T, float>) {
    convert(ctx_, compute_parameters_.data(), parameters_.data() + compute_first_,
            static_cast<int64_t>(compute_parameters_.size()));
  }
}

template <typename T>
void Decoder<T>::forward(const DeviceBatch& batch, const ForwardOptions& options) {
  const int N = batch.num_tokens(), C = config_.d_model;
  RECFORGE_CHECK(N <= max_tokens_, "batch of ", N, " tokens exceeds the model's max_tokens ",
                 max_tokens_);
  last_options_ = options;
  if (N == 0) return;
  // encoded[N, C] = wte[tokens] + wpe[positions], then dropout
  embedding_forward(ctx_, encoded_, batch.tokens(), batch.positions(), weights_.wte, weights_.wpe,
                    N, C);
  dropout(encoded_, N, kEmbeddingStream);
  const LayerTensors<T>& w0 = weights_.layers[0];
  if constexpr (std::is_same_v<T, float>) {
    if (mixed()) {
      refresh_compute_weights();
      const Norm<bf16>& ln1 = layers16_[0].ln1;
      layernorm_forward(ctx_, ln1.out, ln1.mean, ln1.rstd, encoded_, w0.ln1_w, w0.ln1_b, N, C);
      for (int l = 0; l < config_.n_layer; ++l) {
        layer_forward(l, batch, compute_weights_.layers[l]);
      }
      return;
    }
  }
  const Norm<T>& ln1 = layers_[0].ln1;
  layernorm_forward(ctx_, ln1.out, ln1.mean, ln1.rstd, encoded_, w0.ln1_w, w0.ln1_b, N, C);
  for (int l = 0; l < config_.n_layer; ++l) layer_forward(l, batch, weights_.layers[l]);
}

// One block: x → x + attn(ln1(x)) = r2 → r2 + mlp(ln2(r2)) = r3, with ln1(x) computed by the
// previous step and the norm after r3 fused into this one. The GEMMs read their weights from
// `compute` (the masters in fp32, their bf16 copy in bf16); the norms read the fp32 masters.
template <typename T>
template <typename A>
void Decoder<T>::layer_forward(int l, const DeviceBatch& batch, const LayerTensors<A>& compute) {
  NvtxRange range("layer ", l, " forward");
  const int N = batch.num_tokens(), C = config_.d_model, F = config_.mlp_width();
  const LayerTensors<T>& w = weights_.layers[l];
  const LayerActivations<A>& a = layer_activations<A>()[l];
  linear_forward(l, LoraTarget::kQkv, a.qkv, a.ln1.out, N, compute);  // [N, 3C]
  attention_forward(ctx_, a.att, a.lse, a.qkv, batch.sequences(),
                    attention_shape(last_options_.mask));                 // [N, C], [N, NH]
  linear_forward(l, LoraTarget::kAttnOut, a.attproj, a.att, N, compute);  // [N, C]
  dropout(a.attproj, N, attention_stream(l));
  residual_layernorm_forward(ctx_, a.residual2, a.ln2.out, a.ln2.mean, a.ln2.rstd, layer_input(l),
                             a.attproj, w.ln2_w, w.ln2_b, N, C);
  linear_forward(l, LoraTarget::kMlpFc, a.fch, a.ln2.out, N, compute);  // [N, F]
  gelu_forward(ctx_, a.fch_gelu, a.fch, static_cast<int64_t>(N) * F);
  linear_forward(l, LoraTarget::kMlpProj, a.fcproj, a.fch_gelu, N, compute);  // [N, C]
  dropout(a.fcproj, N, mlp_stream(l));
  // r3 and the norm after it: the next layer's ln_1 (an operand), or ln_f (T, read by objectives).
  if (l + 1 == config_.n_layer) {
    const Norm<T>& next = final_norm_;
    residual_layernorm_forward(ctx_, a.residual3, next.out, next.mean, next.rstd, a.residual2,
                               a.fcproj, weights_.lnf_w, weights_.lnf_b, N, C);
  } else {
    const Norm<A>& next = layer_activations<A>()[l + 1].ln1;
    const LayerTensors<T>& nw = weights_.layers[l + 1];
    residual_layernorm_forward(ctx_, a.residual3, next.out, next.mean, next.rstd, a.residual2,
                               a.fcproj, nw.ln1_w, nw.ln1_b, N, C);
  }
}

template <typename T>
double Decoder<T>::output_loss(const DeviceBatch& batch, bool backward) {
  NvtxRange range("output loss");
  const int N = batch.num_tokens(), C = config_.d_model, V = config_.vocab_size;
  RECFORGE_CHECK(batch.targets() != nullptr, "output_loss needs a batch with targets");
  const int64_t counted = batch.num_counted_targets();
  if (backward) zero_bytes(ctx_, grad_.hidden, static_cast<size_t>(N) * C * sizeof(T));
  if (counted == 0) return 0.0;
  classifier_forward_backward(ctx_, losses_.data(), backward ? grad_.hidden : nullptr,
                              backward ? weight_gradients_.wte : nullptr, hidden(), weights_.wte,
                              batch.targets(), N, C, V, T(1) / T(counted));
  std::vector<T> losses(N);
  copy_bytes(losses.data(), Device::kCpu, losses_.data(), ctx_.device(), N * sizeof(T));
  double sum = 0.0;
  for (T loss : losses) sum += loss;
  return sum / counted;
}

template <typename T>
void Decoder<T>::logits(T* out, int num_tokens) {
  matmul_forward(ctx_, out, hidden(), weights_.wte, static_cast<const T*>(nullptr), num_tokens,
                 config_.d_model, config_.vocab_size);
}

template <typename T>
const T* Decoder<T>::item_rows() const {
  return weights_.wte + static_cast<int64_t>(kFirstItemToken) * config_.d_model;
}

template <typename T>
T* Decoder<T>::item_row_gradients() {
  return weight_gradients_.wte + static_cast<int64_t>(kFirstItemToken) * config_.d_model;
}

template <typename T>
void Decoder<T>::reduce_gradients(const std::string& prefix) {
  for (const ParameterInfo& info : layout_.tensors()) {
    if (info.name.rfind(prefix, 0) == 0) reducer_(gradients_.data() + info.offset, info.size);
  }
}

template <typename T>
void Decoder<T>::backward(const DeviceBatch& batch, bool last_of_step) {
  const int N = batch.num_tokens(), C = config_.d_model;
  const int last = config_.n_layer - 1;
  const bool reduce = last_of_step && reducer_;
  // Names are built only on the reducing pass, off the usual path.
  auto final_now = [&](const auto&... name_parts) {
    if (reduce) reduce_gradients(concat(name_parts...));
  };
  if (N == 0) {
    final_now("ln_f.");
    for (int l = last; l >= 0; --l) final_now("h.", l, ".");
    final_now("wte");
    final_now("wpe");
    return;
  }
  // grad_.residual accumulates ∂L/∂(residual stream) from the top down.
  zero_bytes(ctx_, grad_.residual, static_cast<size_t>(N) * C * sizeof(T));
  const ModelTensors<T>& g = weight_gradients_;
  layernorm_backward(ctx_, grad_.residual, base_frozen_ ? nullptr : g.lnf_w,
                     base_frozen_ ? nullptr : g.lnf_b, grad_.hidden, layer_input(last + 1),
                     weights_.lnf_w, final_norm_.mean, final_norm_.rstd, N, C);
  final_now("ln_f.");
  for (int l = last; l >= 0; --l) {
    layer_backward_dispatch(l, batch);
    final_now("h.", l, ".");
  }
  const T* dencoded = dropout_gradient(grad_.residual, grad_.channels, N, kEmbeddingStream);
  embedding_backward(ctx_, g.wte, base_frozen_ ? nullptr : g.wpe, dencoded, batch.token_index(),
                     batch.position_index(), C);
  final_now("wte");
  final_now("wpe");
}

template <typename T>
void Decoder<T>::layer_backward_dispatch(int l, const DeviceBatch& batch) {
  if constexpr (std::is_same_v<T, float>) {
    if (mixed()) return layer_backward(l, batch, compute_weights_.layers[l], grad16_);
  }
  const OperandGradients<T> d{nullptr, grad_.mlp, grad_.channels2, grad_.qkv};
  layer_backward(l, batch, weights_.layers[l], d);
}

// A T gradient as a GEMM operand: itself in fp32, rounded into `scratch` in bf16.
template <typename T>
template <typename A>
const A* Decoder<T>::as_operand(const T* x, A* scratch, int64_t n) const {
  if constexpr (std::is_same_v<A, T>) {
    return x;
  } else {
    convert(ctx_, scratch, x, n);
    return scratch;
  }
}

// Backward of layer_forward, in reverse. On entry grad_.residual holds ∂L/∂r3; on exit ∂L/∂x.
// The operand gradients (∂L/∂fch, ∂L/∂att, ∂L/∂qkv) take the operands' type; the GEMMs accumulate
// the weight gradients in T.
template <typename T>
template <typename A>
void Decoder<T>::layer_backward(int l, const DeviceBatch& batch, const LayerTensors<A>& compute,
                                const OperandGradients<A>& d) {
  NvtxRange range("layer ", l, " backward");
  const int N = batch.num_tokens(), C = config_.d_model, F = config_.mlp_width();
  const int64_t NC = static_cast<int64_t>(N) * C;
  const LayerTensors<T>& w = weights_.layers[l];
  const LayerTensors<T>& g = weight_gradients_.layers[l];
  const LayerActivations<A>& a = layer_activations<A>()[l];
  // r3 = r2 + dropout(fcproj): the MLP branch sees ∂L/∂r3 through the dropout mask.
  const T* dfcproj = dropout_gradient(grad_.residual, grad_.channels, N, mlp_stream(l));
  linear_backward(l, LoraTarget::kMlpProj, grad_.mlp, as_operand(dfcproj, d.dout, NC), a.fch_gelu,
                  N, compute);
  gelu_backward(ctx_, d.dfch, a.fch, grad_.mlp, static_cast<int64_t>(N) * F);
  linear_backward(l, LoraTarget::kMlpFc, grad_.channels2, d.dfch, a.ln2.out, N, compute);
  layernorm_backward(ctx_, grad_.residual, base_frozen_ ? nullptr : g.ln2_w,
                     base_frozen_ ? nullptr : g.ln2_b, grad_.channels2, a.residual2, w.ln2_w,
                     a.ln2.mean, a.ln2.rstd, N, C);  // now ∂L/∂r2
  // r2 = x + dropout(attproj)
  const T* dattproj = dropout_gradient(grad_.residual, grad_.channels, N, attention_stream(l));
  linear_backward(l, LoraTarget::kAttnOut, d.datt, as_operand(dattproj, d.dout, NC), a.att, N,
                  compute);
  attention_backward(ctx_, d.dqkv, grad_.delta, d.datt, a.qkv, a.att, a.lse, batch.sequences(),
                     attention_shape(last_options_.mask));
  linear_backward(l, LoraTarget::kQkv, grad_.channels, d.dqkv, a.ln1.out, N, compute);
  layernorm_backward(ctx_, grad_.residual, base_frozen_ ? nullptr : g.ln1_w,
                     base_frozen_ ? nullptr : g.ln1_b, grad_.channels, layer_input(l), w.ln1_w,
                     a.ln1.mean, a.ln1.rstd, N, C);  // now ∂L/∂x
}

// An output that is itself an operand (Out = A) takes the bias of the weights it computes with;
// a T output takes the fp32 master bias.
template <typename T>
template <typename Out, typename A>
void Decoder<T>::linear_forward(int l, LoraTarget target, Out* out, const A* inp, int N,
                                const LayerTensors<A>& compute) {
  const int in = lora_in_features(config_, target),
            out_features = lora_out_features(config_, target);
  const Linear<A> w = linear_of(compute, target);
  if constexpr (std::is_same_v<A, T> && std::is_same_v<Out, T>) {
    if (adapter_active(target)) {
      lora_forward(ctx_, out, lora_sites_[l][static_cast<int>(target)].u, lora_dropped_, inp,
                   w.weight, w.bias, lora_weights(l, target), N, in, out_features);
      return;
    }
    matmul_forward(ctx_, out, inp, w.weight, w.bias, N, in, out_features);
  } else if constexpr (std::is_same_v<Out, A>) {
    matmul_forward(ctx_, out, inp, w.weight, w.bias, N, in, out_features);
  } else {
    const T* bias = linear_of(weights_.layers[l], target).bias;
    matmul_forward(ctx_, out, inp, w.weight, bias, N, in, out_features);
  }
}

// A frozen base passes null weight gradients; an adapted layer's dinp comes from lora_backward,
// with matmul_backward adding only the base weight's gradients when the base trains.
template <typename T>
template <typename Dinp, typename A>
void Decoder<T>::linear_backward(int l, LoraTarget target, Dinp* dinp, const A* dout, const A* inp,
                                 int N, const LayerTensors<A>& compute) {
  const int in = lora_in_features(config_, target),
            out_features = lora_out_features(config_, target);
  const A* weight = linear_of(compute, target).weight;
  const Linear<T> g =
      base_frozen_ ? Linear<T>{nullptr, nullptr} : linear_of(weight_gradients_.layers[l], target);
  if constexpr (std::is_same_v<A, T> && std::is_same_v<Dinp, T>) {
    if (adapter_active(target)) {
      const LoraSite& site = lora_sites_[l][static_cast<int>(target)];
      lora_backward(ctx_, dinp, site.da, site.db, lora_du_, lora_dropped_, dout, inp, site.u,
                    weight, lora_weights(l, target), N, in, out_features);
      if (g.weight) {
        matmul_backward(ctx_, static_cast<T*>(nullptr), g.weight, g.bias, dout, inp, weight, N, in,
                        out_features);
      }
      return;
    }
  }
  matmul_backward(ctx_, dinp, g.weight, g.bias, dout, inp, weight, N, in, out_features);
}

// ---- LoRA ------------------------------------------------------------------------------------

template <typename T>
bool Decoder<T>::adapter_active(LoraTarget target) const {
  return has_lora() && !lora_merged_ && last_options_.use_adapters && lora_layout_->adapts(target);
}

template <typename T>
LoraWeights<T> Decoder<T>::lora_weights(int l, LoraTarget target) const {
  const LoraConfig& config = lora_layout_->config();
  const LoraSite& site = lora_sites_[l][static_cast<int>(target)];
  const float p = last_options_.training ? config.dropout : 0.0f;
  return {site.a, site.b, config.rank, config.scale(),
          DropoutParams{p, last_options_.dropout_seed, lora_stream(l, target)}};
}

template <typename T>
void Decoder<T>::enable_lora(const LoraConfig& config, uint64_t seed) {
  RECFORGE_CHECK(!mixed(), "LoRA adapters run in fp32 only: set model.precision to fp32 for a ",
                 "LoRA stage (bf16 LoRA is not implemented)");
  lora_layout_.emplace(config_, config);
  lora_merged_ = false;
  adapter_parameters_ = Buffer<T>(ctx_.device(), lora_layout_->total_size());
  adapter_gradients_ = Buffer<T>(ctx_.device(), lora_layout_->total_size());
  allocate_lora_activations();
  load_adapter_parameters(initial_lora_parameters(*lora_layout_, seed));
  adapter_gradients_.zero(ctx_);
}

// Per adapted layer its u [N, r]; shared by all of them the backward's du [N, r] and, with adapter
// dropout, drop(x) [N, widest input]. Carved like the activations: measure, then place.
template <typename T>
void Decoder<T>::allocate_lora_activations() {
  const LoraLayout& layout = *lora_layout_;
  const int r = layout.config().rank;
  int widest_input = 0;
  for (LoraTarget target : layout.config().resolved_targets()) {
    widest_input = std::max(widest_input, lora_in_features(config_, target));
  }
  auto carve = [&](T* base) {
    ActivationCarver<T> carver(base, max_tokens_);
    lora_sites_.assign(config_.n_layer, {});
    for (int l = 0; l < config_.n_layer; ++l) {
      for (LoraTarget target : layout.config().resolved_targets()) {
        const int64_t a = layout.lora_a(l, target).offset, b = layout.lora_b(l, target).offset;
        lora_sites_[l][static_cast<int>(target)] =
            LoraSite{adapter_parameters_.data() + a, adapter_parameters_.data() + b,
                     adapter_gradients_.data() + a, adapter_gradients_.data() + b, carver.take(r)};
      }
    }
    lora_du_ = carver.take(r);
    lora_dropped_ = layout.config().dropout > 0.0f ? carver.take(widest_input) : nullptr;
    return carver.used();
  };
  lora_activations_ = Buffer<T>(ctx_.device(), carve(nullptr));
  carve(lora_activations_.data());
}

template <typename T>
const LoraLayout& Decoder<T>::lora_layout() const {
  RECFORGE_CHECK(has_lora(), "the decoder has no LoRA adapters (call enable_lora first)");
  return *lora_layout_;
}

template <typename T>
void Decoder<T>::load_adapter_parameters(std::span<const float> values) {
  const LoraLayout& layout = lora_layout();
  RECFORGE_CHECK(!lora_merged_, "the LoRA adapters are merged into the weights: unmerge_lora() ",
                 "before loading new adapter values");
  RECFORGE_CHECK(values.size() == static_cast<size_t>(layout.total_size()), "expected ",
                 layout.total_size(), " adapter values, got ", values.size());
  std::vector<T> converted(values.begin(), values.end());
  adapter_parameters_.upload(converted);
}

template <typename T>
void Decoder<T>::merge_lora() {
  RECFORGE_CHECK(!lora_merged_, "merge_lora: the LoRA adapters are already merged");
  apply_lora_merge(+1);
  lora_merged_ = true;
}

template <typename T>
void Decoder<T>::unmerge_lora() {
  RECFORGE_CHECK(lora_merged_, "unmerge_lora: the LoRA adapters are not merged");
  apply_lora_merge(-1);
  lora_merged_ = false;
}

// W ← W + sign · s · B·A for every adapted layer. Every new weight is computed (in double on the
// host) and checked before any is written back, so a refusal leaves the model as it was.
template <typename T>
void Decoder<T>::apply_lora_merge(int sign) {
  const LoraLayout& layout = lora_layout();
  const std::vector<T> adapters = adapter_parameters_.download();
  const double s = sign * static_cast<double>(layout.config().scale());
  const int64_t r = layout.config().rank;
  struct Update {
    T* weight;  // on the device
    std::vector<T> values;
  };
  std::vector<Update> updates;
  for (int l = 0; l < config_.n_layer; ++l) {
    for (LoraTarget target : layout.config().resolved_targets()) {
      const T* a = adapters.data() + layout.lora_a(l, target).offset;  // [r, in]
      const T* b = adapters.data() + layout.lora_b(l, target).offset;  // [out, r]
      const std::string name = LoraLayout::base_weight_name(l, target);
      const ParameterInfo& info = layout_.at(name);
      const int64_t out = info.shape[0], in = info.shape[1];
      Update update{parameters_.data() + info.offset, std::vector<T>(info.size)};
      copy_bytes(update.values.data(), Device::kCpu, update.weight, ctx_.device(),
                 info.size * sizeof(T));
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t c = 0; c < in; ++c) {
          double delta = 0.0;
          for (int64_t k = 0; k < r; ++k) delta += double(b[o * r + k]) * double(a[k * in + c]);
          T& w = update.values[o * in + c];
          const T merged = static_cast<T>(static_cast<double>(w) + s * delta);
          RECFORGE_CHECK(std::isfinite(merged), sign > 0 ? "merge_lora" : "unmerge_lora", ": ",
                         name, " ", sign > 0 ? "+" : "−", " s·B·A is not finite at [", o, ", ", c,
                         "] (", w, " and s·(B·A) = ", s * delta, "); the weights are unchanged");
          w = merged;
        }
      }
      updates.push_back(std::move(update));
    }
  }
  for (const Update& update : updates) {
    copy_bytes(update.weight, ctx_.device(), update.values.data(), Device::kCpu,
               update.values.size() * sizeof(T));
  }
}

template class Decoder<float>;
template class Decoder<double>;

}  // namespace recforge
