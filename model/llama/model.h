// A Llama-family decoder (model/llama/config.h) with an explicit forward and backward over the
// kernels, beside the GPT-style decoder of model/decoder.h and with the same contract: forward()
// leaves the final hidden states [N, C] in hidden(); an objective writes ∂L/∂hidden into
// hidden_gradient(); backward() carries it through the trunk.
//
// One block, for the N packed tokens of a batch (shapes in model.cpp):
//   h1 = rmsnorm(x)                                      (fused with the previous block's residual)
//   q, k, v = h1·Wqᵀ, h1·Wkᵀ, h1·Wvᵀ  (+ LoRA)  → rope(q), rope(k) → qkv [N, H + 2·KV, HS]
//   att = attention(qkv)  (grouped-query, packed, causal)
//   r2 = x + att·Woᵀ,  h2 = rmsnorm(r2)                  (one fused kernel)
//   x' = r2 + (silu(h2·Wgᵀ) ⊙ h2·Wuᵀ)·Wdᵀ
//
// A frozen base (LoRA fine-tuning) owns no gradient buffer at all: only the adapters have
// gradients and optimizer state. The generation path (model/llama/generator.h) runs the same blocks
// over a key/value cache.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "kernels/attention.h"
#include "kernels/bf16.h"
#include "kernels/buffer.h"
#include "kernels/lora.h"
#include "kernels/rope.h"
#include "model/batch.h"
#include "model/llama/config.h"
#include "model/llama/lora.h"
#include "model/llama/weights.h"
#include "model/parameters.h"

namespace recforge {

// Pointers to one block's tensors inside a flat buffer (parameters or their gradients).
template <typename T>
struct LlamaBlockTensors {
  T* input_norm;
  std::array<T*, kNumLlamaLinears> linear;  // indexed by LlamaLinear
  T* post_attention_norm;
  T* operator[](LlamaLinear l) const { return linear[static_cast<int>(l)]; }
};

template <typename T>
struct LlamaTensors {
  T* embed;    // [V, C]
  T* lm_head;  // [V, C]: embed when tied
  T* norm;     // [C]
  std::vector<LlamaBlockTensors<T>> blocks;
};

// Slices every tensor of `layout` (llama_layout order) out of `base`; without `linears` the
// linear weights are left null (a layout that holds only the other tensors).
template <typename T>
LlamaTensors<T> llama_tensors(const LlamaConfig& config, const ParameterLayout& layout, T* base,
                              bool linears = true);

struct LlamaForwardOptions {
  AttentionMask mask = AttentionMask::kCausal;
  bool use_adapters = true;   // false runs the base model without its adapters (a reference)
  bool training = false;      // applies the adapters' dropout
  uint64_t dropout_seed = 0;  // one per step
};

// The keys and values of every block for one sequence being generated: per layer
// [capacity, KV, HS] each, rows 0 .. length() − 1 filled.
template <typename T>
class LlamaKvCache {
 public:
  LlamaKvCache(Device device, const LlamaConfig& config, int capacity);
  int capacity() const { return capacity_; }
  int length() const { return length_; }
  void clear() { length_ = 0; }
  // Forgets every token after the first `length` (a shared prompt kept, its continuation dropped).
  void truncate(int length) {
    RECFORGE_CHECK(length >= 0 && length <= length_, "cannot truncate a cache of ", length_,
                   " tokens to ", length);
    length_ = length;
  }
  T* keys(int layer) { return keys_.data() + layer * layer_stride_; }
  T* values(int layer) { return values_.data() + layer * layer_stride_; }
  void extend(int n) { length_ += n; }

 private:
  Buffer<T> keys_, values_;
  int capacity_;
  int64_t layer_stride_;
  int length_ = 0;
};

// T is float on both backends; double runs on the CPU only (finite-difference gradient checks).
//
// Precision (LlamaConfig::precision): with bf16 the blocks' linear weights — nearly all of a
// model's parameters — are held in bf16 only (half the memory, no fp32 copy), which suits a frozen
// base under LoRA and inference; each is widened into one fp32 scratch just before its GEMM, so
// the arithmetic is fp32 on bf16-rounded weights. The embeddings, the output layer and the norm
// gains stay fp32, as in the GPT decoder's bf16 policy. A trainable base needs fp32 masters.
template <typename T>
class LlamaModel {
 public:
  // Activations are sized for batches of up to `max_tokens` packed tokens. A model built with
  // `base_trains` false starts frozen (no gradient buffer: inference and LoRA fine-tuning).
  LlamaModel(Context ctx, LlamaConfig config, int max_tokens, bool base_trains = true);

  const LlamaConfig& config() const { return config_; }
  const ParameterLayout& layout() const { return layout_; }
  const Context& context() const { return ctx_; }
  int max_tokens() const { return max_tokens_; }

  // The fp32 parameters: every tensor (layout order) in fp32; with bf16 storage the tensors that
  // are not linear weights (stored_layout() order).
  Buffer<T>& parameters() { return parameters_; }
  const ParameterLayout& stored_layout() const { return stored_layout_; }
  bool bf16_storage() const { return config_.precision == Precision::kBf16; }
  // Bytes the weights occupy on the device.
  size_t weight_bytes() const { return parameters_.bytes() + linear16_.bytes(); }
  const LlamaTensors<T>& weights() const { return weights_; }
  // Copies host values (layout order) into the parameters (rounding the linear weights to bf16
  // with bf16 storage).
  void load_parameters(std::span<const float> values);

  // ---- Training -----------------------------------------------------------------------------
  // A frozen base frees its gradient buffer (and needs none again until unfrozen): only the
  // adapters train. An unfrozen base has gradients for every parameter.
  void set_base_frozen(bool frozen);
  bool base_frozen() const { return base_frozen_; }
  Buffer<T>& gradients();  // an error while the base is frozen
  void zero_gradients();   // the base's (when it trains) and the adapters'

  void forward(const DeviceBatch& batch, const LlamaForwardOptions& options = {});
  const T* hidden() const { return final_out_; }  // [N, C]
  T* hidden_gradient() { return grad_.hidden; }   // [N, C]

  // Mean next-token cross-entropy of the output layer over the batch's counted targets (fused,
  // never materializing the logits). With `backward`, writes ∂L/∂hidden and (an untied or trained
  // tied output layer) accumulates the output layer's gradient. Returns the mean loss.
  double output_loss(const DeviceBatch& batch, bool backward);
  // L = Σ_s weights[s] · CE_s, CE_s the summed next-token cross-entropy of sequence s's counted
  // targets (host: the batch as packed on the host), for losses that are functions of
  // per-sequence log-probabilities (DPO over text: weights[s] = −∂L/∂log p_s; SFT: every weight
  // 1/count). Only the counted rows reach the output layer: they are gathered into a compact
  // [R, C] block first (a prompt's rows cost nothing there), and their ∂L/∂hidden scattered back
  // (every other row zero). With `backward`, writes ∂L/∂hidden (and accumulates a trained output
  // layer's gradient). Returns L.
  double weighted_sequence_loss(const DeviceBatch& batch, const PackedBatch& host,
                                std::span<const double> weights, bool backward);
  // CE_s of every sequence (forward only, the same compact path): −log p of its counted targets.
  std::vector<double> sequence_losses(const DeviceBatch& batch, const PackedBatch& host);
  // −log p(target) of every row of the last forward ([N], 0 on ignored targets), on the host.
  std::vector<double> target_losses(const DeviceBatch& batch);
  // logits [N, V] = hidden · lm_headᵀ for the first num_tokens rows.
  void logits(T* out, int num_tokens);
  // logits [V] of one row of hidden().
  void row_logits(T* out, int row);

  // ---- Generation ----------------------------------------------------------------------------
  // Runs tokens (host ids, at most max_tokens()) that continue the cache's sequence, at positions
  // cache.length() onwards, and appends their keys and values: hidden() then holds their final
  // hidden states. Attention reads the cache (kernels/cached_attention.h) instead of a batch.
  void forward_cached(std::span<const int32_t> tokens, LlamaKvCache<T>& cache);

  using GradientReducer = std::function<void(T* gradient, int64_t count)>;
  void set_gradient_reducer(GradientReducer reducer) { reducer_ = std::move(reducer); }
  // Carries hidden_gradient() back through the last forward(), accumulating into gradients() and
  // adapter_gradients(). `last_of_step`: hand each gradient to the reducer once final.
  void backward(const DeviceBatch& batch, bool last_of_step);

  // ---- LoRA ----------------------------------------------------------------------------------
  // Adds adapters (A from `seed`, B = 0) to the targeted linear layers of every block.
  void enable_lora(const LlamaLoraConfig& config, uint64_t seed);
  bool has_lora() const { return lora_config_.has_value(); }
  const LlamaLoraConfig& lora_config() const;
  const ParameterLayout& lora_layout() const { return lora_layout_; }
  Buffer<T>& adapter_parameters() { return adapter_parameters_; }
  Buffer<T>& adapter_gradients() { return adapter_gradients_; }
  void load_adapter_parameters(std::span<const float> values);
  // W ← W + s·B·A on the host in double; the forward then skips the adapters (for export).
  void merge_lora();

  // ---- Pieces the generator shares ------------------------------------------------------------
  RopeShape rope_shape(int heads) const;
  AttentionShape attention_shape(AttentionMask mask) const;

 private:
  struct BlockActivations {
    T *h1, *rstd1;       // [N, C], [N]   input norm
    T *qkv, *att, *lse;  // [N, H+2KV, HS], [N, H·HS], [N, H]
    T* residual2;        // [N, C]
    T *h2, *rstd2;       // [N, C], [N]   post-attention norm
    T *gate, *up, *act;  // [N, F] each
    T* residual3;        // [N, C]   the block's output
  };
  struct Scratch {
    T *q, *k, *v, *branch;  // [N, H·HS], [N, KV·HS] ×2, [N, max(C, F)]
  };
  struct GradientScratch {
    T *hidden, *residual, *dh, *branch, *dqkv, *dq, *dk, *dv, *dgate, *dup, *dact, *datt, *delta;
  };
  // One adapted linear layer: adapter weights, their gradients and the saved u [N, r].
  struct LoraSite {
    T *a, *b, *da, *db, *u;
  };

  // What one block's forward reads besides the weights: a packed batch or a cached sequence.
  struct BlockInput {
    int N;
    const int32_t* positions;          // [N] on the device
    const PackedSequences* sequences;  // the batch's, or null
    LlamaKvCache<T>* cache;            // or null
  };

  void allocate_activations();
  void allocate_bf16_storage();
  void allocate_gradient_scratch();
  // The fp32 weight of a block's linear layer: in place, or widened from bf16 into widened_.
  const T* linear_weight(int l, LlamaLinear linear);
  std::vector<double> counted_row_losses(const DeviceBatch& batch, const PackedBatch& host,
                                         std::span<const double> weights, bool backward);
  void allocate_lora_activations();
  bool base_trains() const { return !base_frozen_; }
  const T* block_input(int l) const;
  void trunk_forward(const int32_t* tokens, const BlockInput& in);
  void block_forward(int l, const BlockInput& in);
  void attention_forward(int l, const BlockInput& in);
  void cached_attention(int l, const BlockInput& in);
  void norm_into_next(int l);
  void block_backward(int l, const DeviceBatch& batch);
  void attention_backward(int l, const DeviceBatch& batch);
  void mlp_backward(int l);
  void embedding_backward(const DeviceBatch& batch);
  void linear_forward(int l, LlamaLinear linear, T* out, const T* inp, int N);
  // dinp [N, in] overwritten (or added into when `accumulate`), weight and adapter gradients
  // accumulated.
  void linear_backward(int l, LlamaLinear linear, T* dinp, const T* dout, const T* inp, int N,
                       bool accumulate);
  bool adapter_active(LlamaLinear linear) const;
  LoraWeights<T> lora_weights(int l, LlamaLinear linear) const;
  std::vector<double> download_losses(int N) const;  // losses_ [N] on the host
  void reduce(T* gradient, int64_t count) const;
  void reduce_block(int l) const;

  Context ctx_;
  LlamaConfig config_;
  ParameterLayout layout_;
  ParameterLayout stored_layout_;  // parameters_'s: layout_, or its tensors but the linear weights
  int max_tokens_;
  int num_tokens_ = 0;  // of the last forward
  Buffer<T> parameters_, gradients_, activations_, gradient_scratch_, losses_;
  // The counted rows' hidden states, their gradients, indices and targets (weighted losses).
  Buffer<T> counted_hidden_, counted_dhidden_;
  Buffer<int32_t> counted_rows_, counted_targets_;
  LlamaTensors<T> weights_, weight_gradients_{};
  Buffer<bf16> linear16_;  // bf16 storage: every linear weight, layout order
  std::vector<std::array<const bf16*, kNumLlamaLinears>> linear16_of_;  // [n_layer]
  Buffer<T> widened_;      // [max out · in] fp32 scratch for one widened linear weight
  T* embedded_ = nullptr;  // [N, C]
  Buffer<int32_t> cached_tokens_, cached_positions_;  // forward_cached's ids and positions
  std::vector<BlockActivations> blocks_;
  T *final_out_ = nullptr, *final_rstd_ = nullptr;
  Scratch scratch_{};
  GradientScratch grad_{};
  LlamaForwardOptions last_options_;
  GradientReducer reducer_;
  bool base_frozen_ = false, lora_merged_ = false;
  bool last_of_step_ = false;

  std::optional<LlamaLoraConfig> lora_config_;
  ParameterLayout lora_layout_;
  Buffer<T> adapter_parameters_, adapter_gradients_, lora_activations_;
  std::vector<std::array<LoraSite, kNumLlamaLinears>> lora_sites_;  // [n_layer]
  T* lora_du_ = nullptr;                                            // [N, r]
  T* lora_dropped_ = nullptr;  // [N, max in] drop(x) scratch (only with adapter dropout)
};

extern template class LlamaKvCache<float>;
extern template class LlamaKvCache<double>;
extern template class LlamaModel<float>;
extern template class LlamaModel<double>;

}  // namespace recforge
