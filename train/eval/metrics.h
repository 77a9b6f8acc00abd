// Ranking metrics over evaluation cases, each summarized by one number: the 0-based rank of the
// target among the candidates (0 = ranked first). For a cut-off K:
//   HR@K   = [rank < K]
//   NDCG@K = [rank < K] / log2(rank + 2)   (one relevant item, so the ideal DCG is 1)
//   MRR    = 1 / (rank + 1)                (not truncated at any K)
// each averaged over the cases. Only sums are kept, so merging per-thread or per-process partial
// results is an addition.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace recforge {

// A task's metrics by name ("ndcg@10", "auc", "rmse", ...).
using Metrics = std::map<std::string, double>;

class RankingMetrics {
 public:
  // `ks`: the cut-offs HR@K and NDCG@K are kept for (each >= 1, no duplicates).
  explicit RankingMetrics(std::vector<int> ks);

  void add(int64_t rank);
  // Adds another accumulator's cases; its ks must be the same.
  void merge(const RankingMetrics& other);
  // Every running sum as one vector (count, then HR and NDCG per K, then reciprocal ranks), for
  // adding partial results up across processes; add_sums adds such a vector back.
  std::vector<double> sums() const;
  void add_sums(std::span<const double> sums);

  const std::vector<int>& ks() const { return ks_; }
  int64_t count() const { return count_; }
  // Means over the cases added so far; 0 when there are none. k must be one of ks().
  double hit_rate(int k) const;
  double ndcg(int k) const;
  double mrr() const;

  // {"<prefix>/hr@K", "<prefix>/ndcg@K" for every K, "<prefix>/mrr"}; no "/" when prefix is empty.
  std::map<std::string, double> as_map(const std::string& prefix) const;
  // One metric by name: "hr@K", "ndcg@K" (K in ks) or "mrr".
  double metric(const std::string& name) const;

 private:
  int index_of(int k) const;
  double mean(double sum) const { return count_ > 0 ? sum / static_cast<double>(count_) : 0.0; }

  std::vector<int> ks_;
  std::vector<double> hit_sums_;   // [ks]
  std::vector<double> ndcg_sums_;  // [ks]
  double reciprocal_rank_sum_ = 0.0;
  int64_t count_ = 0;
};

}  // namespace recforge
