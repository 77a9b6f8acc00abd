// A training run's configuration: the YAML file's shape, validated on load. Every field here is a
// key of the file (same name, same nesting); defaults are the values below. The loader rejects
// unknown keys, wrong types and out-of-range values with the key path and the file's line.
//
//   run:     {output_dir, seed, device, threads, log_every_steps}
//   data:    {path, max_len, split, sliding_windows}
//   model:   {d_model, n_layer, n_head, mlp_ratio, dropout, precision}
//   stages:  [{name, init, data, objective: {..., dpo: {...}}, finetune: {..., lora: {...}},
//              train: {...}, eval: {...}}, ...]
//   distributed: {backend}
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace recforge {

struct RunSection {
  std::string output_dir = "runs/default";
  uint64_t seed = 42;
  std::string device = "auto";  // cpu | cuda | auto
  int threads = 0;              // CPU threads, 0 = all cores
  int log_every_steps = 50;     // console and metrics.jsonl

  bool operator==(const RunSection&) const = default;
};

struct DataSection {
  std::string path;                     // a prepared dataset directory (recforge data prepare)
  int max_len = 50;                     // histories are cut to their most recent max_len items
  std::string split = "leave_one_out";  // leave_one_out | chronological (sft preference/rating)
  bool sliding_windows = false;         // also train on earlier max_len windows of long histories

  bool operator==(const DataSection&) const = default;
};

struct ModelSection {
  int d_model = 64;
  int n_layer = 2;
  int n_head = 2;
  int mlp_ratio = 4;
  float dropout = 0.2f;              // [0, 1)
  float init_std = 0.02f;            // (0, 1]: sigma of the initial matrices
  float embedding_init_std = 0.02f;  // (0, 2]: sigma of the initial token and position embeddings
  std::string precision = "fp32";    // fp32 | bf16 (model/config.h: Precision)

  bool operator==(const ModelSection&) const = default;
};

// Direct preference optimization (objective.type: dpo).
struct DpoSection {
  std::string loss = "sigmoid";      // sigmoid | ipo | hinge | robust | sdpo
  float beta = 0.1f;                 // > 0
  float label_smoothing = 0.0f;      // [0, 0.5): sigmoid and robust
  int rejected = 1;                  // rejected items per pair, [1, 7] (sdpo uses them all)
  std::string pairs = "next_item";   // next_item | rating
  int chosen_min_rating = 4;         // pairs: rating
  int rejected_max_rating = 2;       // pairs: rating
  bool precompute_reference = true;  // reference log-probabilities computed once, before training
  int pairs_per_user = 8;            // training pairs: each user's most recent ones
  bool disable_dropout = true;       // the policy runs without dropout, like its reference

  bool operator==(const DpoSection&) const = default;
};

struct ObjectiveSection {
  std::string type = "mbp_nbp";  // mbp_nbp | nbp | mbp (pre-training) | sft | dpo
  float mask_ratio = 0.2f;       // (0, 1]: share of a sequence's items replaced by MASK (>= 1 item)
  int next_k = 1;                // [1, 8]: NBP predicts each of the next K items
  std::vector<float> next_k_weights;  // empty (all 1) or next_k non-negative weights
  float lambda = 1.0f;                // L = L_MBP + lambda · L_NBP, >= 0
  std::string loss = "full_softmax";  // full_softmax | sampled_softmax
  int negatives = 128;                // sampled softmax: negatives shared by the batch, >= 1
  std::string sampling = "uniform";   // uniform | popularity (from the training part)
  float temperature = 1.0f;           // > 0, logits are divided by it
  std::string task = "next_item";     // sft: next_item | preference | rating
  int like_threshold = 4;             // sft preference: a rating >= this is a like (YES)
  int examples_per_user = 0;          // sft: training examples drawn per user, 0 = every position
  DpoSection dpo;

  bool operator==(const ObjectiveSection&) const = default;
};

struct TrainSection {
  int batch_size = 256;                // sequences per micro-batch (>= 1)
  int token_budget = 0;                // > 0: micro-batches are cut at this many tokens instead
  float lr = 1e-3f;                    // > 0
  int warmup_steps = 0;                // >= 0, linear warmup from 0
  std::string schedule = "constant";   // constant | cosine | linear (decay to min_lr_ratio · lr)
  float min_lr_ratio = 0.0f;           // [0, 1]
  int epochs = 10;                     // >= 1
  int64_t max_steps = 0;               // > 0 stops after this many optimizer steps
  float weight_decay = 0.0f;           // >= 0
  float beta1 = 0.9f, beta2 = 0.999f;  // [0, 1)
  float eps = 1e-8f;                   // > 0
  float grad_clip = 1.0f;              // <= 0 disables
  int grad_accum = 1;                  // micro-batches per optimizer step, >= 1

  bool operator==(const TrainSection&) const = default;
};

struct EvalSection {
  int every_steps = 0;             // 0: once per epoch
  std::string metric = "ndcg@10";  // ndcg@K | hr@K | mrr, K in ks
  int patience = 10;              // evaluations without improvement before stopping; 0 = never stop
  std::string protocol = "full";  // full | sampled
  int sampled_negatives = 100;    // sampled protocol: negatives per user
  std::string sampled_by = "uniform";  // uniform | popularity
  bool exclude_history = true;         // full protocol: a user's earlier items are not ranked
  std::vector<int> ks = {1, 5, 10, 20};
  int batch_size = 512;  // users per scoring batch

  bool operator==(const EvalSection&) const = default;
};

// LoRA adapters on the decoder's linear layers (finetune.method: lora).
struct LoraSection {
  int rank = 8;          // >= 1
  float alpha = 16.0f;   // > 0; scale alpha / rank
  bool rslora = false;   // scale alpha / sqrt(rank)
  float dropout = 0.0f;  // [0, 1) on the adapter's input
  std::vector<std::string> targets = {"qkv",
                                      "attn_out"};  // qkv attn_out mlp_fc mlp_proj all_linear

  bool operator==(const LoraSection&) const = default;
};

// What a stage trains when it starts from a checkpoint, and how it meets new items.
struct FinetuneSection {
  std::string method = "full";  // full | lora
  LoraSection lora;
  std::string new_items_init = "mean";  // mean | random: embedding rows of items the checkpoint
                                        // never saw (matched by original id)
  std::string known_items = "train";    // train | frozen: the embedding rows of items it saw
  float known_items_lr_scale = 1.0f;    // > 0, learning-rate factor of those rows when trained

  bool operator==(const FinetuneSection&) const = default;
};

struct StageSection {
  std::string name = "pretrain";
  // Where the weights come from: auto (scratch for the first stage, else previous), scratch,
  // previous (the previous stage's best checkpoint), or a checkpoint directory.
  std::string init = "auto";
  std::string data = "";  // this stage's prepared dataset; empty = data.path
  ObjectiveSection objective;
  FinetuneSection finetune;
  TrainSection train;
  EvalSection eval;

  bool operator==(const StageSection&) const = default;
};

struct DistributedSection {
  std::string backend = "auto";  // auto | nccl | mpi | none
  int timeout_seconds = 300;     // > 0: rendezvous and collective set-up waits
  bool zero1 = false;            // shard AdamW's moments over the ranks (ZeRO stage 1)
  bool overlap = true;           // reduce gradients tensor by tensor during the last backward

  bool operator==(const DistributedSection&) const = default;
};

struct RunConfig {
  RunSection run;
  DataSection data;
  ModelSection model;
  std::vector<StageSection> stages;  // at least one
  DistributedSection distributed;

  bool operator==(const RunConfig&) const = default;
};

// Loads and validates a YAML file, then applies `overrides` ("a.b.c=value"; stages are addressed
// by index or name: "stages.0.train.lr=3e-4" or "stages.pretrain.train.lr=3e-4"). Throws
// recforge::Error with the file, key path and line of the first problem.
RunConfig load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);
// Same, from text (`source_name` stands for the file in messages).
RunConfig parse_config(const std::string& text, const std::string& source_name,
                       const std::vector<std::string>& overrides);
// The whole resolved configuration (every key, defaults included) as YAML.
std::string to_yaml(const RunConfig& config);

}  // namespace recforge
