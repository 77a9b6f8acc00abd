// Offline evaluation of a decoder as a next-item recommender, and top-K recommendation.
//
// Each case is a user's history and the held-out target item. The model encodes the history and
// its hidden state h [C] at the prediction position scores item i as h · wte[item_token(i)] (the
// tied output layer restricted to the item rows). The case's rank is the 0-based position of the
// target among the candidates:
//   full ranking: every item except the case's excluded ones (the target is always a candidate);
//   sampled:      the target and the case's sampled negatives.
//
// Ties are pessimistic: rank = #(other candidates whose score >= the target's score). A model that
// gives every item the same score (an untrained, collapsed or constant model) then ranks every
// target last instead of first; counting only strictly greater scores would give it HR@1 = 1.
//
// Scoring runs chunk by chunk over the catalog: scores [B, item_chunk] = H [B, C] · W_chunkᵀ with
// the matmul kernel on the model's context (CPU or CUDA), copied to the host and counted there
// (OpenMP over users). Memory is O(batch_size · item_chunk), never [users, items].
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "model/decoder.h"
#include "train/eval/metrics.h"

namespace recforge {

struct EvalCase {
  std::vector<int32_t> history;   // item ids, oldest first; cut to the most recent that fit
  int32_t target = 0;             // item id
  std::vector<int32_t> excluded;  // item ids not ranked (e.g. the user's earlier items); the
                                  // target is never excluded, duplicates are ignored
};

struct EvalOptions {
  std::vector<int> ks = {1, 5, 10, 20};
  int batch_size = 512;  // users per forward pass (also bounded by the model's max_tokens)
  // false: causal attention, the prediction is read at the last history position.
  // true (masked behavior prediction): a MASK token is appended, attention is bidirectional and the
  // prediction is read at the MASK position; the history is cut so history + MASK fits max_len.
  bool masked = false;
  int item_chunk = 65536;  // items scored per matmul
  // Tokens placed before the history (a fine-tuned task's prompt, e.g. its task token); the
  // history is cut so prompt + history (+ MASK) fits max_len.
  std::vector<int32_t> prompt;
};

// The 0-based full-ranking rank of every case's target, in case order.
std::vector<int64_t> full_ranking_ranks(Decoder<float>& model, int32_t num_items,
                                        std::span<const EvalCase> cases,
                                        const EvalOptions& options);
RankingMetrics evaluate_full_ranking(Decoder<float>& model, int32_t num_items,
                                     std::span<const EvalCase> cases, const EvalOptions& options);

// The 0-based rank of every case's target among itself and negatives[case] (the cases' excluded
// lists are not used). The scores come from the same chunked scoring as the full ranking.
std::vector<int64_t> sampled_ranks(Decoder<float>& model, std::span<const EvalCase> cases,
                                   std::span<const std::vector<int32_t>> negatives,
                                   const EvalOptions& options);
RankingMetrics evaluate_sampled(Decoder<float>& model, std::span<const EvalCase> cases,
                                std::span<const std::vector<int32_t>> negatives,
                                const EvalOptions& options);

// `count` distinct negatives per case, none of them in user_items[case] (every item the user ever
// interacted with) nor the target. Uniform over the catalog when `popularity` is empty, otherwise
// proportional to popularity [num_items] (items with popularity 0 are never drawn). Case i draws
// from Philox stream i under `seed`, so the result depends only on (seed, inputs), not on threads.
std::vector<std::vector<int32_t>> sample_eval_negatives(
    std::span<const EvalCase> cases, std::span<const std::vector<int32_t>> user_items,
    int32_t num_items, int count, std::span<const int64_t> popularity, uint64_t seed);

// The fewest distinct negatives any case can draw (never its user's items nor its target, and
// with `popularity` never an item of popularity 0), and the case (-1 when there is none).
struct MostNegatives {
  int64_t count = 0;
  int64_t case_index = -1;
};
MostNegatives most_negatives(std::span<const EvalCase> cases,
                             std::span<const std::vector<int32_t>> user_items, int32_t num_items,
                             std::span<const int64_t> popularity);

// Text format: one line per case, its negatives as space-separated item ids. The file appears
// complete or not at all (written beside it, then renamed), so another process that reads it
// while it is being saved never sees part of it.
void save_negatives(const std::filesystem::path& path,
                    std::span<const std::vector<int32_t>> negatives);
std::vector<std::vector<int32_t>> load_negatives(const std::filesystem::path& path);

struct Recommendation {
  int32_t item;
  float score;
};

// The k highest-scoring items for one history (fewer when fewer items remain), by score
// descending, ties by item id ascending; with exclude_history the history's items are left out.
// Items whose score is NaN are never recommended.
std::vector<Recommendation> recommend(Decoder<float>& model, int32_t num_items,
                                      std::span<const int32_t> history, int k, bool exclude_history,
                                      bool masked, std::span<const int32_t> prompt = {});

}  // namespace recforge
