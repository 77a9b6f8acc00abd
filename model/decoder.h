// The GPT-style decoder over behavior tokens: learned token and position embeddings, n_layer
// pre-LayerNorm blocks (attention, GELU MLP, both with residual connections), a final LayerNorm,
// and the output layer tied to the token embedding. No autograd: forward and backward are explicit
// sequences of kernel calls, each written down with its shapes in decoder.cpp.
//
// The trunk (embeddings → blocks → final norm) is separate from the objective: forward() leaves
// the hidden states [N, C] in hidden(); an objective turns them into a loss and writes
// ∂L/∂hidden into hidden_gradient() (adding its share of ∂L/∂wte into the gradients when it uses
// the tied output layer); backward() then carries that gradient through the trunk.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/bf16.h"
#include "kernels/buffer.h"
#include "kernels/lora.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/parameters.h"

namespace recforge {

template <typename T>
class ActivationCarver;  // model/activation_carver.h

struct ForwardOptions {
  AttentionMask mask = AttentionMask::kCausal;
  bool training = false;      // applies dropout when the config has any
  uint64_t dropout_seed = 0;  // one per step: the same seed gives the same masks on any device
  bool use_adapters = true;   // false runs the base model without its LoRA adapters (a reference)
};

// Pointers to every tensor of one layer inside a flat buffer (parameters or their gradients).
template <typename T>
struct LayerTensors {
  T *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;
};

template <typename T>
struct ModelTensors {
  T *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<LayerTensors<T>> layers;
};

// T is float on both backends; double runs on the CPU only (finite-difference gradient checks).
//
// Precision (ModelConfig::precision, float decoders only): in bf16 mode the GEMMs and attention
// take bf16 operands — the layer norms' outputs, qkv, the attention output, the MLP pre-activation
// and its GELU, and a bf16 copy of the block weights made from the fp32 masters at each forward —
// and accumulate in fp32. Parameters, gradients, the residual stream, norm statistics, lse and the
// final hidden states stay T, so optimizers and objectives are the same in both modes. The CPU
// backend runs bf16 too, rounding at the same points: it is the GPU path's reference.
template <typename T>
class Decoder {
 public:
  // Activations are sized for batches of up to `max_tokens` packed tokens.
  Decoder(Context ctx, ModelConfig config, int max_tokens);

  const ModelConfig& config() const { return config_; }
  const ParameterLayout& layout() const { return layout_; }
  const Context& context() const { return ctx_; }
  int max_tokens() const { return max_tokens_; }

  Buffer<T>& parameters() { return parameters_; }
  Buffer<T>& gradients() { return gradients_; }
  const ModelTensors<T>& weights() const { return weights_; }
  const ModelTensors<T>& weight_gradients() const { return weight_gradients_; }
  // Copies host values (layout order) into the parameters.
  void load_parameters(std::span<const float> values);
  void zero_gradients();

  void forward(const DeviceBatch& batch, const ForwardOptions& options);
  const T* hidden() const { return final_norm_.out; }  // [N, C]
  T* hidden_gradient() { return grad_.hidden; }        // [N, C]

  // Mean softmax cross-entropy of the tied output layer over the full vocabulary and the batch's
  // counted targets (fused, never materializing the logits). With `backward`, writes ∂L/∂hidden
  // and accumulates ∂L/∂wte. Returns the mean loss (0 when no target counts).
  double output_loss(const DeviceBatch& batch, bool backward);
  // logits [N, V] = hidden · wteᵀ, for inference and tests.
  void logits(T* out, int num_tokens);

  // The output layer's rows (the token embedding, tied): item i's row starts at item_rows() + i·C,
  // the special tokens' at special_rows() (model/vocabulary.h). Losses over items read these.
  const T* item_rows() const;
  T* item_row_gradients();
  const T* special_rows() const { return weights_.wte; }

  // Data-parallel overlap (llm.c's gpt2_backward_and_reduce): the backward that is the last of its
  // optimizer step hands each parameter tensor's gradient to the reducer as soon as it is final —
  // ln_f's first, each layer's tensors right after that layer's backward, the embeddings last —
  // so the reduction over the ranks runs while the backward goes on. Empty: no reduction.
  using GradientReducer = std::function<void(T* gradient, int64_t count)>;
  void set_gradient_reducer(GradientReducer reducer) { reducer_ = std::move(reducer); }
  bool has_gradient_reducer() const { return static_cast<bool>(reducer_); }

  // Carries hidden_gradient() back through the trunk of the last forward(), accumulating into
  // gradients() (and the adapters' into adapter_gradients() when the forward used them).
  // `last_of_step`: no other backward follows before the optimizer step, so the gradients are
  // reduced as they become final. A batch without tokens (a rank's empty share of a micro-batch)
  // computes nothing, and as the last of its step still hands every gradient to the reducer.
  void backward(const DeviceBatch& batch, bool last_of_step);

  // ---- LoRA (model/lora.h) ----------------------------------------------------------------
  // Adds adapters (A from `seed`, B = 0) and their gradients to the targeted layers, replacing any
  // earlier ones; a merged adapter's update stays in the weights. The forward then computes
  // x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ for every targeted layer (ForwardOptions::use_adapters).
  void enable_lora(const LoraConfig& config, uint64_t seed);
  bool has_lora() const { return lora_layout_.has_value(); }
  const LoraLayout& lora_layout() const;
  Buffer<T>& adapter_parameters() { return adapter_parameters_; }  // lora_layout() order
  const Buffer<T>& adapter_parameters() const { return adapter_parameters_; }
  Buffer<T>& adapter_gradients() { return adapter_gradients_; }
  const Buffer<T>& adapter_gradients() const { return adapter_gradients_; }
  // Copies host values (lora_layout() order, total_size() of them) into the adapters.
  void load_adapter_parameters(std::span<const float> values);
  // A frozen base gets no gradient for its linear weights and biases, layer norms and position
  // embeddings (they stay as zero_gradients() left them); the token embedding's gradient is still
  // accumulated (new item rows may train), as are the adapters'.
  void set_base_frozen(bool frozen) { base_frozen_ = frozen; }
  bool base_frozen() const { return base_frozen_; }
  // W ← W + s·B·A for every adapted layer, computed on the host in double and rounded to T; the
  // forward then skips the adapters. Throws, changing nothing, when any merged weight would not be
  // finite. unmerge_lora() subtracts the same product (W is restored up to rounding).
  void merge_lora();
  void unmerge_lora();
  bool lora_merged() const { return lora_merged_; }

 private:
  // Activations whose storage follows the precision: A = T in fp32, bf16 in bf16 mode (the GEMM and
  // attention operands). Residual stream, statistics and lse stay T.
  template <typename A>
  struct Norm {
    A* out;          // [N, C]
    T *mean, *rstd;  // [N], [N]
  };
  template <typename A>
  struct LayerActivations {
    Norm<A> ln1;   // layernorm of the layer's input
    A* qkv;        // [N, 3C]
    A* att;        // [N, C] attention output, heads side by side
    T* lse;        // [N, NH]
    T* attproj;    // [N, C] attention projection (after dropout)
    T* residual2;  // [N, C] input + attproj
    Norm<A> ln2;   // layernorm of residual2
    A* fch;        // [N, F] MLP pre-activation
    A* fch_gelu;   // [N, F]
    T* fcproj;     // [N, C] MLP output (after dropout)
    T* residual3;  // [N, C] residual2 + fcproj: the layer's output
  };
  struct GradientScratch {
    T *hidden, *residual, *channels, *channels2, *mlp, *qkv, *delta;
  };
  // The backward's operand-typed gradients. In fp32 they alias GradientScratch (dout unused);
  // in bf16 they are bf16 scratch: dout [N, C] (a residual-branch gradient rounded for its GEMM),
  // dfch [N, F], datt [N, C], dqkv [N, 3C].
  template <typename A>
  struct OperandGradients {
    A *dout, *dfch, *datt, *dqkv;
  };
  // One adapted layer: its adapter, the adapter's gradients and its saved u [N, r]; all null when
  // the target is not adapted.
  struct LoraSite {
    T *a, *b, *da, *db, *u;
  };
  bool mixed() const { return config_.precision == Precision::kBf16; }

  void allocate_activations();
  template <typename A>
  void carve_activations(ActivationCarver<T>& full, ActivationCarver<A>& operands,
                         std::vector<LayerActivations<A>>& layers);
  void refresh_compute_weights();
  const T* layer_input(int l) const;
  AttentionShape attention_shape(AttentionMask mask) const;
  void dropout(T* x, int N, uint64_t stream) const;
  const T* dropout_gradient(const T* dout, T* scratch, int N, uint64_t stream) const;
  template <typename A>
  void layer_forward(int l, const DeviceBatch& batch, const LayerTensors<A>& compute);
  void layer_backward_dispatch(int l, const DeviceBatch& batch);
  template <typename A>
  void layer_backward(int l, const DeviceBatch& batch, const LayerTensors<A>& compute,
                      const OperandGradients<A>& d);
  template <typename A>
  const std::vector<LayerActivations<A>>& layer_activations() const {
    if constexpr (std::is_same_v<A, bf16>) {
      return layers16_;
    } else {
      return layers_;
    }
  }
  template <typename A>
  const A* as_operand(const T* x, A* scratch, int64_t n) const;
  // Hands every parameter tensor whose name starts with `prefix` to the reducer, in layout order.
  void reduce_gradients(const std::string& prefix);
  // The targeted linear layer of block l: out[N, out] = inp[N, in] · Wᵀ + b (+ its adapter),
  // with W (and b when out is an operand) from `compute`, the weights the precision computes with.
  template <typename Out, typename A>
  void linear_forward(int l, LoraTarget target, Out* out, const A* inp, int N,
                      const LayerTensors<A>& compute);
  // dinp [N, in] = ∂L/∂inp (overwritten) and the weights' fp32 gradients from dout [N, out].
  template <typename Dinp, typename A>
  void linear_backward(int l, LoraTarget target, Dinp* dinp, const A* dout, const A* inp, int N,
                       const LayerTensors<A>& compute);
  bool adapter_active(LoraTarget target) const;
  LoraWeights<T> lora_weights(int l, LoraTarget target) const;
  void allocate_lora_activations();
  void apply_lora_merge(int sign);

  Context ctx_;
  ModelConfig config_;
  ParameterLayout layout_;
  int max_tokens_;
  Buffer<T> parameters_, gradients_, activations_, gradient_scratch_, losses_;
  ModelTensors<T> weights_, weight_gradients_;
  T* encoded_ = nullptr;                     // [N, C] embeddings (after dropout)
  std::vector<LayerActivations<T>> layers_;  // fp32 mode
  Norm<T> final_norm_;                       // always T: the objectives read hidden() in T
  GradientScratch grad_;
  // bf16 mode: the bf16 copy of every parameter after the embeddings (the blocks and ln_f), made
  // from the fp32 masters at each forward; the bf16 activations and backward scratch.
  Buffer<bf16> compute_parameters_, operand_activations_, operand_scratch_;
  int64_t compute_first_ = 0;  // offset of the first copied parameter in parameters()
  ModelTensors<bf16> compute_weights_;
  std::vector<LayerActivations<bf16>> layers16_;
  OperandGradients<bf16> grad16_{};
  ForwardOptions last_options_;
  GradientReducer reducer_;

  std::optional<LoraLayout> lora_layout_;
  Buffer<T> adapter_parameters_, adapter_gradients_, lora_activations_;
  std::vector<std::array<LoraSite, kNumLoraTargets>> lora_sites_;  // [n_layer]
  T* lora_dropped_ = nullptr;  // [N, max in] drop(x) scratch (only with adapter dropout)
  T* lora_du_ = nullptr;       // [N, r] backward scratch
  bool base_frozen_ = false, lora_merged_ = false;
};

extern template class Decoder<float>;
extern template class Decoder<double>;

}  // namespace recforge
