// A training run's configuration: the YAML file's shape, validated on load. Every field here is a
// key of the file (same name, same nesting); defaults are the values below. The loader rejects
// unknown keys, wrong types and out-of-range values with the key path and the file's line.
//
//   run:     {output_dir, seed, device, threads, log_every_steps}
//   data:    {path, max_len, split, sliding_windows}
//   model:   {d_model, n_layer, n_head, mlp_ratio, dropout, init_std, embedding_init_std,
//             precision}
//   stages:  [{name, init, data, objective: {..., dpo: {...}}, finetune: {..., lora: {...}},
//              train: {...}, eval: {...}}, ...]
//   distributed: {backend, timeout_seconds, zero1, overlap}
//   prompts: {task, train, train_first, train_count, shots, shots_seed, valid, valid_first,
//             valid_count, test, test_limit, template, in_context, max_context, valid_ratio}
//
// A run with model.pretrained set fine-tunes that language model on text prompts (prompts:
// section, train/text/) instead of training an item-ID decoder: its stages are sft and dpo.
//
// Every choice among names (objective.type, train.schedule, ...) is read into an enum once, here:
// the code that acts on it switches on the enum. name_of() gives a choice's name in the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/context.h"
#include "kernels/dpo_loss.h"
#include "model/config.h"
#include "train/dist/communicator.h"

namespace recforge {

// ---- Choices. ----------------------------------------------------------------------------------

enum class SplitProtocol { kLeaveOneOut, kChronological };  // data.split
enum class ObjectiveType { kMbpNbp, kNbp, kMbp, kSft, kDpo };
enum class ItemLossType { kFullSoftmax, kSampledSoftmax };  // objective.loss
enum class NegativeSampling { kUniform, kPopularity };      // objective.sampling, eval.sampled_by
enum class SftTask { kNextItem, kPreference, kRating };     // objective.task
enum class PairSource { kNextItem, kRating };               // objective.dpo.pairs
enum class LrSchedule { kConstant, kCosine, kLinear };      // train.schedule
enum class EvalProtocol { kFull, kSampled };                // eval.protocol
enum class FinetuneMethod { kFull, kLora };
enum class NewItemsInit { kMean, kRandom };
enum class KnownItems { kTrain, kFrozen };
enum class InitFrom { kAuto, kScratch, kPrevious, kCheckpoint };  // stages[].init
enum class TextTask { kPreference, kCandidateChoice };            // prompts.task

// The name of a choice as the file spells it, for the enums above and the lower layers' ones the
// file chooses (DeviceChoice, Precision, DpoLoss, CommBackend).
template <typename E>
const std::string& name_of(E choice);
// The choice a name stands for; throws recforge::Error listing the names.
template <typename E>
E parse_choice(std::string_view name);

// stages[].init: auto (scratch for the first stage, else previous), scratch, previous (the
// previous stage's best checkpoint), or a checkpoint directory.
struct StageInit {
  InitFrom from = InitFrom::kAuto;
  std::string checkpoint;  // kCheckpoint: the directory

  bool operator==(const StageInit&) const = default;
};

// eval.metric: ndcg@K, hr@K (K one of eval.ks), mrr, auc, accuracy, rmse or mae.
struct SelectionMetric {
  std::string key = "ndcg@10";   // its name among the metrics a task reports (metrics.jsonl)
  bool higher_is_better = true;  // false for the errors, rmse and mae

  bool operator==(const SelectionMetric&) const = default;
};

// ---- Sections. ---------------------------------------------------------------------------------

struct RunSection {
  std::string output_dir = "runs/default";
  uint64_t seed = 42;
  DeviceChoice device = DeviceChoice::kAuto;  // cpu | cuda | auto
  int threads = 0;                            // CPU threads, 0 = all cores
  int log_every_steps = 50;                   // console and metrics.jsonl

  bool operator==(const RunSection&) const = default;
};

struct DataSection {
  std::string path;  // a prepared dataset directory (recforge data prepare)
  int max_len = 50;  // histories are cut to their most recent max_len items
  SplitProtocol split = SplitProtocol::kLeaveOneOut;  // leave_one_out | chronological (sft
                                                      // preference and rating)
  bool sliding_windows = false;  // also train on earlier max_len windows of long histories

  bool operator==(const DataSection&) const = default;
};

struct ModelSection {
  int d_model = 64;
  int n_layer = 2;
  int n_head = 2;
  int mlp_ratio = 4;
  float dropout = 0.2f;                    // [0, 1)
  float init_std = 0.02f;                  // (0, 1]: sigma of the initial matrices
  float embedding_init_std = 0.02f;        // (0, 2]: sigma of the initial token and position
                                           // embeddings
  Precision precision = Precision::kFp32;  // fp32 | bf16 (model/config.h)
  // A pretrained language model (GGUF file or Hugging Face directory): the run fine-tunes it on
  // the prompts: section (the sizes above are the file's). With bf16 its frozen base is stored in
  // bf16 (adapters stay fp32).
  std::string pretrained;
  int max_tokens = 2048;  // packed tokens per forward of a pretrained model

  bool operator==(const ModelSection&) const = default;
};

// Direct preference optimization (objective.type: dpo).
struct DpoSection {
  DpoLoss loss = DpoLoss::kSigmoid;  // sigmoid | ipo | hinge | robust | sdpo
  float beta = 0.1f;                 // > 0
  float label_smoothing = 0.0f;      // [0, 0.5): sigmoid and robust
  int rejected = 1;  // rejected items per pair, [1, 7]; text runs [1, 19] (sdpo uses them all)
  PairSource pairs = PairSource::kNextItem;  // next_item | rating
  int chosen_min_rating = 4;                 // pairs: rating
  int rejected_max_rating = 2;               // pairs: rating
  bool precompute_reference = true;  // reference log-probabilities computed once, before training
  int pairs_per_user = 8;            // training pairs: each user's most recent ones
  bool disable_dropout = true;       // the policy runs without dropout, like its reference

  bool operator==(const DpoSection&) const = default;
};

struct ObjectiveSection {
  ObjectiveType type = ObjectiveType::kMbpNbp;  // mbp_nbp | nbp | mbp (pre-training) | sft | dpo
  float mask_ratio = 0.2f;  // (0, 1]: share of a sequence's items replaced by MASK (>= 1 item)
  int next_k = 1;           // [1, 8]: NBP predicts each of the next K items
  std::vector<float> next_k_weights;               // empty (all 1) or next_k non-negative weights
  float lambda = 1.0f;                             // L = L_MBP + lambda · L_NBP, >= 0
  ItemLossType loss = ItemLossType::kFullSoftmax;  // full_softmax | sampled_softmax
  int negatives = 128;                             // sampled softmax: shared by the batch
  NegativeSampling sampling = NegativeSampling::kUniform;  // uniform | popularity (training part)
  float temperature = 1.0f;                                // > 0, logits are divided by it
  SftTask task = SftTask::kNextItem;                       // sft: next_item | preference | rating
  int like_threshold = 4;     // sft preference: a rating >= this is a like (YES)
  int examples_per_user = 0;  // sft: training examples drawn per user, 0 = every position
  DpoSection dpo;

  bool operator==(const ObjectiveSection&) const = default;
};

struct TrainSection {
  int batch_size = 256;  // sequences per micro-batch (>= 1)
  int token_budget = 0;  // > 0: micro-batches are cut at this many tokens instead
  float lr = 1e-3f;      // > 0
  int warmup_steps = 0;  // >= 0, linear warmup from 0
  LrSchedule schedule = LrSchedule::kConstant;  // constant | cosine | linear (decay to
                                                // min_lr_ratio · lr)
  float min_lr_ratio = 0.0f;                    // [0, 1]
  int epochs = 10;                              // >= 1
  int64_t max_steps = 0;                        // > 0 stops after this many optimizer steps
  float weight_decay = 0.0f;                    // >= 0
  float beta1 = 0.9f, beta2 = 0.999f;           // [0, 1)
  float eps = 1e-8f;                            // > 0
  float grad_clip = 1.0f;                       // <= 0 disables
  int grad_accum = 1;                           // micro-batches per optimizer step, >= 1

  bool operator==(const TrainSection&) const = default;
};

struct EvalSection {
  int every_steps = 0;     // 0: once per epoch
  SelectionMetric metric;  // ndcg@K | hr@K | mrr (K in ks) | auc | accuracy | rmse | mae
  int patience = 10;       // evaluations without improvement before stopping; 0 = never stop
  EvalProtocol protocol = EvalProtocol::kFull;               // full | sampled
  int sampled_negatives = 100;                               // sampled protocol: negatives per user
  NegativeSampling sampled_by = NegativeSampling::kUniform;  // uniform | popularity
  bool exclude_history = true;  // full protocol: a user's earlier items are not ranked
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
  // The adapted layers by module name (model/lora.h): qkv, attn_out, mlp_fc, mlp_proj, all_linear.
  std::vector<std::string> targets = {"qkv", "attn_out"};

  bool operator==(const LoraSection&) const = default;
};

// What a stage trains when it starts from a checkpoint, and how it meets new items.
struct FinetuneSection {
  FinetuneMethod method = FinetuneMethod::kFull;  // full | lora
  LoraSection lora;
  // mean | random: the embedding rows of items the checkpoint never saw (matched by original id).
  NewItemsInit new_items_init = NewItemsInit::kMean;
  KnownItems known_items = KnownItems::kTrain;  // train | frozen: the rows of the items it saw
  float known_items_lr_scale = 1.0f;  // > 0, learning-rate factor of those rows when trained

  bool operator==(const FinetuneSection&) const = default;
};

struct StageSection {
  std::string name = "pretrain";
  StageInit init;         // where the weights come from
  std::string data = "";  // this stage's prepared dataset; empty = data.path
  ObjectiveSection objective;
  FinetuneSection finetune;
  TrainSection train;
  EvalSection eval;

  bool operator==(const StageSection&) const = default;
};

struct DistributedSection {
  CommBackend backend = CommBackend::kAuto;  // auto | nccl | mpi | none
  int timeout_seconds = 300;                 // > 0: rendezvous and collective set-up waits
  bool zero1 = false;                        // shard AdamW's moments over the ranks (ZeRO stage 1)
  bool overlap = true;  // reduce gradients tensor by tensor during the last backward

  bool operator==(const DistributedSection&) const = default;
};

// The text prompts a pretrained model (model.pretrained) trains and is evaluated on, in the papers'
// files (train/data/instruction_files.h). Examples [first, first + count) of a file are used
// (count 0: to its end).
struct PromptsSection {
  TextTask task = TextTask::kPreference;  // preference (TALLRec) | candidate_choice (S-DPO)
  std::string train;                      // training prompts
  int train_first = 0, train_count = 0;
  int shots = 0;            // > 0: train on this many examples drawn from the slice (few-shot)
  uint64_t shots_seed = 1;  // the draw's seed
  std::string valid;        // checkpoint selection (eval.metric), empty: none
  int valid_first = 0, valid_count = 0;
  std::string test;    // the test prompts, evaluated with the best checkpoint at the end
  int test_limit = 0;  // > 0: the first test_limit examples only
  // candidate_choice's user message, with {history} and {candidates}.
  std::string template_text =
      "The user listened to these artists, oldest first: {history}.\n"
      "Which one of these candidates will the user listen to next? {candidates}.\n"
      "Answer with the candidate's name only.";
  int in_context = 0;       // preference: demonstrations (the train slice's first k) per prompt
  int max_context = 2048;   // longest prompt + answer, tokens
  bool valid_ratio = true;  // candidate_choice tests also generate greedily (ValidRatio)

  bool operator==(const PromptsSection&) const = default;
};

struct RunConfig {
  RunSection run;
  DataSection data;
  ModelSection model;
  std::vector<StageSection> stages;  // at least one
  DistributedSection distributed;
  PromptsSection prompts;

  bool text_run() const { return !model.pretrained.empty(); }
  bool operator==(const RunConfig&) const = default;
};

// Loads and validates a YAML file, then applies `overrides` ("a.b.c=value"; stages are addressed
// by index or name: "stages.0.train.lr=3e-4" or "stages.pretrain.train.lr=3e-4"). Throws
// recforge::Error with the file, key path and line of the first problem.
RunConfig load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);
// Same, from text (`source_name` stands for the file in messages).
RunConfig parse_config(const std::string& text, const std::string& source_name,
                       const std::vector<std::string>& overrides);
// Throws unless every stage has a dataset, its own or data.path (an unset path is never taken to
// mean the current directory). A run checks it before it starts.
void require_datasets(const RunConfig& config);
// The whole resolved configuration (every key, defaults included) as YAML.
std::string to_yaml(const RunConfig& config);

// The metric named `key` (its form is checked against eval.ks when the config is read).
SelectionMetric selection_metric(const std::string& key);

}  // namespace recforge
