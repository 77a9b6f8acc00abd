#include "train/eval/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "kernels/check.h"

namespace recforge {

RankingMetrics::RankingMetrics(std::vector<int> ks)
    : ks_(std::move(ks)), hit_sums_(ks_.size(), 0.0), ndcg_sums_(ks_.size(), 0.0) {
  for (size_t i = 0; i < ks_.size(); ++i) {
    RECFORGE_CHECK(ks_[i] >= 1, "ranking metrics: every K must be >= 1, got ", ks_[i]);
    RECFORGE_CHECK(std::count(ks_.begin(), ks_.end(), ks_[i]) == 1, "ranking metrics: K=", ks_[i],
                   " is listed twice");
  }
}

void RankingMetrics::add(int64_t rank) {
  RECFORGE_CHECK(rank >= 0, "ranking metrics: a rank must be >= 0, got ", rank);
  for (size_t i = 0; i < ks_.size(); ++i) {
    if (rank < ks_[i]) {
      hit_sums_[i] += 1.0;
      ndcg_sums_[i] += 1.0 / std::log2(static_cast<double>(rank) + 2.0);
    }
  }
  reciprocal_rank_sum_ += 1.0 / (static_cast<double>(rank) + 1.0);
  ++count_;
}

void RankingMetrics::merge(const RankingMetrics& other) {
  RECFORGE_CHECK(other.ks_ == ks_, "ranking metrics: cannot merge accumulators with different ks");
  for (size_t i = 0; i < ks_.size(); ++i) {
    hit_sums_[i] += other.hit_sums_[i];
    ndcg_sums_[i] += other.ndcg_sums_[i];
  }
  reciprocal_rank_sum_ += other.reciprocal_rank_sum_;
  count_ += other.count_;
}

int RankingMetrics::index_of(int k) const {
  auto it = std::find(ks_.begin(), ks_.end(), k);
  RECFORGE_CHECK(it != ks_.end(), "ranking metrics: K=", k, " is not one of the evaluated ks");
  return static_cast<int>(it - ks_.begin());
}

double RankingMetrics::hit_rate(int k) const { return mean(hit_sums_[index_of(k)]); }
double RankingMetrics::ndcg(int k) const { return mean(ndcg_sums_[index_of(k)]); }
double RankingMetrics::mrr() const { return mean(reciprocal_rank_sum_); }

std::map<std::string, double> RankingMetrics::as_map(const std::string& prefix) const {
  const std::string head = prefix.empty() ? "" : prefix + "/";
  std::map<std::string, double> values;
  for (int k : ks_) {
    values[head + "hr@" + std::to_string(k)] = hit_rate(k);
    values[head + "ndcg@" + std::to_string(k)] = ndcg(k);
  }
  values[head + "mrr"] = mrr();
  return values;
}

double RankingMetrics::metric(const std::string& name) const {
  if (name == "mrr") return mrr();
  const size_t at = name.find('@');
  RECFORGE_CHECK(at != std::string::npos, "ranking metrics: unknown metric '", name,
                 "' (expected hr@K, ndcg@K or mrr)");
  const std::string kind = name.substr(0, at);
  int k = 0;
  const char* first = name.data() + at + 1;
  const char* last = name.data() + name.size();
  auto [end, error] = std::from_chars(first, last, k);
  RECFORGE_CHECK(error == std::errc() && end == last && first != last,
                 "ranking metrics: bad cut-off in metric '", name, "' (expected hr@K or ndcg@K)");
  if (kind == "hr") return hit_rate(k);
  RECFORGE_CHECK(kind == "ndcg", "ranking metrics: unknown metric '", name,
                 "' (expected hr@K, ndcg@K or mrr)");
  return ndcg(k);
}

std::vector<double> RankingMetrics::sums() const {
  std::vector<double> all = {static_cast<double>(count_)};
  all.insert(all.end(), hit_sums_.begin(), hit_sums_.end());
  all.insert(all.end(), ndcg_sums_.begin(), ndcg_sums_.end());
  all.push_back(reciprocal_rank_sum_);
  return all;
}

void RankingMetrics::add_sums(std::span<const double> sums) {
  const size_t K = ks_.size();
  RECFORGE_CHECK(sums.size() == 2 + 2 * K, "ranking metrics: ", sums.size(), " sums for ", K,
                 " cut-offs");
  count_ += static_cast<int64_t>(std::llround(sums[0]));
  for (size_t k = 0; k < K; ++k) {
    hit_sums_[k] += sums[1 + k];
    ndcg_sums_[k] += sums[1 + K + k];
  }
  reciprocal_rank_sum_ += sums[1 + 2 * K];
}

}  // namespace recforge
