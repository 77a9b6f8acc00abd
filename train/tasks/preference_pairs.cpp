#include "train/tasks/preference_pairs.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/math.h"

namespace recforge {
namespace {

void check_options(const PreferencePairOptions& options) {
  RECFORGE_CHECK(options.num_candidates >= 2, "preference pairs: num_candidates ",
                 options.num_candidates, " must be >= 2 (the chosen item and a rejected one)");
  RECFORGE_CHECK(options.max_len >= 1, "preference pairs: max_len ", options.max_len,
                 " must be >= 1");
}

// The random numbers of one pair: Philox4x32-10 under the seed, stream (user, target position),
// one 64-bit draw per counter value.
class PairDraws {
 public:
  PairDraws(uint64_t seed, int32_t user, int32_t position)
      : seed_(seed),
        stream_((static_cast<uint64_t>(user) << 32) | static_cast<uint32_t>(position)) {}

  // Uniform in [0, bound), bound ≤ 2³¹ (the top 32 bits scaled: bias below bound / 2³²).
  int64_t below(int64_t bound) {
    Philox4 counter{{static_cast<uint32_t>(next_), static_cast<uint32_t>(next_ >> 32),
                     static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)}};
    ++next_;
    Philox4 r =
        philox4x32_10(counter, static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32));
    return static_cast<int64_t>((static_cast<uint64_t>(r.v[0]) * static_cast<uint64_t>(bound)) >>
                                32);
  }

 private:
  uint64_t seed_, stream_, next_ = 0;
};

// `count` distinct indices of [0, n), a uniform random subset, in count draws (Floyd's algorithm:
// for j = n − count .. n − 1, draw t in [0, j] and take t, or j when t is already taken).
std::vector<int64_t> distinct_indices(int64_t n, int count, PairDraws& draws) {
  std::vector<int64_t> taken;
  taken.reserve(count);
  for (int64_t j = n - count; j < n; ++j) {
    const int64_t t = draws.below(j + 1);
    taken.push_back(std::find(taken.begin(), taken.end(), t) == taken.end() ? t : j);
  }
  return taken;
}

// The items a user never interacts with, enumerated without listing them. With f the sorted
// distinct items the user touched, gap[i] = f[i] − i counts the untouched items below f[i], so the
// j-th untouched item (0-based) is j + #{i : gap[i] ≤ j}.
class UntouchedItems {
 public:
  UntouchedItems(std::span<const int32_t> user_items, int32_t num_items)
      : gaps_(user_items.begin(), user_items.end()) {
    std::sort(gaps_.begin(), gaps_.end());
    gaps_.erase(std::unique(gaps_.begin(), gaps_.end()), gaps_.end());
    for (size_t i = 0; i < gaps_.size(); ++i) gaps_[i] -= static_cast<int32_t>(i);
    size_ = num_items - static_cast<int64_t>(gaps_.size());
  }
  int64_t size() const { return size_; }
  int32_t operator[](int64_t j) const {
    return static_cast<int32_t>(j +
                                (std::upper_bound(gaps_.begin(), gaps_.end(), j) - gaps_.begin()));
  }

 private:
  std::vector<int32_t> gaps_;
  int64_t size_ = 0;
};

// The distinct items of the user's training part rated ≤ rejected_max_rating, sorted.
std::vector<int32_t> low_rated_items(const LeaveOneOutSplit& split, int32_t user,
                                     float rejected_max_rating) {
  std::span<const int32_t> train = split.train_items(user);
  std::span<const float> ratings = split.dataset().ratings(user);
  std::vector<int32_t> pool;
  for (size_t t = 0; t < train.size(); ++t) {
    if (ratings[t] <= rejected_max_rating) pool.push_back(train[t]);
  }
  std::sort(pool.begin(), pool.end());
  pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  return pool;
}

// Where a user had too few items to reject: what there was, for the error message.
struct Shortfall {
  bool short_of_items = false;
  int64_t untouched = 0, low_rated = 0;
};

// The pair whose chosen item is items(user)[position]: the prompt before it, then the chosen item
// and K − 1 rejected ones, first from `pool` (without the chosen item), then untouched items.
// Returns false, leaving the candidates incomplete, when there are fewer than K − 1 to draw.
bool make_pair(PreferencePair& pair, int32_t user, int32_t position, std::span<const int32_t> pool,
               const UntouchedItems& untouched, const LeaveOneOutSplit& split,
               const PreferencePairOptions& options) {
  std::span<const int32_t> items = split.dataset().items(user);
  const int32_t chosen = items[position];
  const int32_t prompt_begin = std::max(0, position - options.max_len);
  pair.user = user;
  pair.prompt = items.subspan(prompt_begin, position - prompt_begin);
  pair.candidates.assign(1, chosen);

  // The pool without the chosen item (a repeated event may have rated it low too): index j is
  // pool[j], or pool[j + 1] from the chosen item's place on.
  const int64_t chosen_at = std::lower_bound(pool.begin(), pool.end(), chosen) - pool.begin();
  const bool pool_has_chosen = chosen_at < std::ssize(pool) && pool[chosen_at] == chosen;
  const int64_t pool_size = std::ssize(pool) - (pool_has_chosen ? 1 : 0);
  const int rejected = options.num_candidates - 1;
  if (pool_size + untouched.size() < rejected) return false;
  const int from_pool = static_cast<int>(std::min<int64_t>(rejected, pool_size));
  PairDraws draws(options.seed, user, position);
  for (int64_t j : distinct_indices(pool_size, from_pool, draws)) {
    pair.candidates.push_back(pool[pool_has_chosen && j >= chosen_at ? j + 1 : j]);
  }
  for (int64_t j : distinct_indices(untouched.size(), rejected - from_pool, draws)) {
    pair.candidates.push_back(untouched[j]);
  }
  return true;
}

// Builds the pairs at each user's target positions (positions(user), increasing), users in
// parallel, each pair at a fixed slot; with `ratings`, rejected items come from the low-rated
// pool first.
template <typename Positions>
std::vector<PreferencePair> build_pairs(const LeaveOneOutSplit& split,
                                        const PreferencePairOptions& options, bool ratings,
                                        Positions positions) {
  check_options(options);
  const Dataset& data = split.dataset();
  const int32_t num_users = data.num_users();
  std::vector<int64_t> first(static_cast<size_t>(num_users) + 1, 0);  // each user's first slot
  for (int32_t u = 0; u < num_users; ++u) first[u + 1] = first[u] + std::ssize(positions(u));
  std::vector<PreferencePair> pairs(first[num_users]);
  std::vector<Shortfall> shortfalls(num_users);
#pragma omp parallel for schedule(dynamic, 64)
  for (int32_t u = 0; u < num_users; ++u) {
    if (first[u] == first[u + 1]) continue;
    const UntouchedItems untouched(data.items(u), data.num_items());
    const std::vector<int32_t> pool =
        ratings ? low_rated_items(split, u, options.rejected_max_rating) : std::vector<int32_t>{};
    int64_t slot = first[u];
    for (int32_t position : positions(u)) {
      if (!make_pair(pairs[slot++], u, position, pool, untouched, split, options)) {
        shortfalls[u] = {true, untouched.size(), std::ssize(pool)};
        break;
      }
    }
  }
  for (int32_t u = 0; u < num_users; ++u) {
    const Shortfall& s = shortfalls[u];
    RECFORGE_CHECK(!s.short_of_items, "preference pairs: user \"", data.user_name(u), "\" (id ", u,
                   ") interacts with ", data.num_items() - s.untouched, " of the ",
                   data.num_items(), " items, leaving ", s.untouched, " never-interacted items",
                   ratings ? concat(" and ", s.low_rated, " low-rated ones") : std::string(),
                   " to draw num_candidates - 1 = ", options.num_candidates - 1,
                   " rejected items from; lower num_candidates");
  }
  return pairs;
}

}  // namespace

std::vector<PreferencePair> sequence_training_pairs(const LeaveOneOutSplit& split,
                                                    const PreferencePairOptions& options) {
  return build_pairs(split, options, /*ratings=*/false, [&](int32_t user) {
    std::vector<int32_t> positions;
    for (int32_t t = 1; t < std::ssize(split.train_items(user)); ++t) positions.push_back(t);
    return positions;
  });
}

std::vector<PreferencePair> sequence_eval_pairs(const LeaveOneOutSplit& split, Split which,
                                                const PreferencePairOptions& options) {
  return build_pairs(split, options, /*ratings=*/false, [&](int32_t user) {
    if (split.target(user, which) < 0) return std::vector<int32_t>{};
    return std::vector<int32_t>{static_cast<int32_t>(split.history(user, which).size())};
  });
}

std::vector<PreferencePair> rating_pairs(const LeaveOneOutSplit& split,
                                         const PreferencePairOptions& options) {
  const Dataset& data = split.dataset();
  RECFORGE_CHECK(data.has_ratings(), "preference pairs from ratings: the dataset ",
                 data.directory().string(), " has no ratings (prepare it with a rating column)");
  RECFORGE_CHECK(std::isfinite(options.chosen_min_rating) &&
                     std::isfinite(options.rejected_max_rating) &&
                     options.rejected_max_rating < options.chosen_min_rating,
                 "preference pairs from ratings: rejected_max_rating ", options.rejected_max_rating,
                 " must be below chosen_min_rating ", options.chosen_min_rating);
  return build_pairs(split, options, /*ratings=*/true, [&](int32_t user) {
    std::span<const float> ratings = data.ratings(user);
    std::vector<int32_t> positions;
    for (int32_t t = 1; t < std::ssize(split.train_items(user)); ++t) {
      if (ratings[t] >= options.chosen_min_rating) positions.push_back(t);
    }
    return positions;
  });
}

std::vector<int32_t> candidate_matrix(std::span<const PreferencePair> pairs) {
  std::vector<int32_t> matrix;
  if (pairs.empty()) return matrix;
  const size_t K = pairs[0].candidates.size();
  matrix.reserve(pairs.size() * K);
  for (size_t i = 0; i < pairs.size(); ++i) {
    RECFORGE_CHECK(pairs[i].candidates.size() == K, "candidate_matrix: pair ", i, " has ",
                   pairs[i].candidates.size(), " candidates, pair 0 has ", K);
    matrix.insert(matrix.end(), pairs[i].candidates.begin(), pairs[i].candidates.end());
  }
  return matrix;
}

}  // namespace recforge
