#include "train/eval/evaluation.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "kernels/math.h"
#include "kernels/matmul.h"
#include "model/durable_file.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

void check_item(int32_t item, int32_t num_items, const char* what, size_t case_index) {
  RECFORGE_CHECK(item >= 0 && item < num_items, "evaluation: case ", case_index, ": ", what, " ",
                 item, " is not an item id in [0, ", num_items, ")");
}

void check_catalog(const Decoder<float>& model, int32_t num_items) {
  const int vocab_size = model.config().vocab_size;
  RECFORGE_CHECK(num_items >= 1 && vocabulary_size(num_items) <= vocab_size,
                 "evaluation: num_items ", num_items, " does not fit the model's vocab_size ",
                 vocab_size, " (items are tokens ", kFirstItemToken, "..vocab_size-1)");
}

int32_t catalog_size(const Decoder<float>& model) {
  return model.config().vocab_size - kFirstItemToken;
}

// How many of a history's items fit beside the prompt and the MASK.
size_t history_room(const EvalOptions& options, int max_len) {
  const int64_t room = max_len - static_cast<int64_t>(options.prompt.size()) - options.masked;
  return static_cast<size_t>(std::max<int64_t>(room, 0));
}

// The model's input for one history: the prompt tokens, the history's most recent items as
// tokens, plus MASK when masked.
std::vector<int32_t> input_tokens(std::span<const int32_t> history, int max_len,
                                  const EvalOptions& options) {
  const size_t kept = std::min(history.size(), history_room(options, max_len));
  std::vector<int32_t> tokens(options.prompt.begin(), options.prompt.end());
  for (int32_t item : history.subspan(history.size() - kept)) tokens.push_back(item_token(item));
  if (options.masked) tokens.push_back(kMaskToken);
  return tokens;
}

// Consecutive case ranges [begin, end) of at most batch_size cases and max_tokens input tokens.
std::vector<std::pair<size_t, size_t>> batch_ranges(std::span<const EvalCase> cases,
                                                    const EvalOptions& options, int max_len,
                                                    int max_tokens) {
  std::vector<std::pair<size_t, size_t>> ranges;
  size_t begin = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const int64_t length =
        static_cast<int64_t>(std::min(cases[i].history.size(), history_room(options, max_len)) +
                             options.prompt.size() + (options.masked ? 1 : 0));
    RECFORGE_CHECK(length <= max_tokens, "evaluation: case ", i, " needs ", length,
                   " tokens but the model holds at most max_tokens ", max_tokens);
    const bool full = i - begin == static_cast<size_t>(options.batch_size);
    if (full || tokens + length > max_tokens) {
      ranges.emplace_back(begin, i);
      begin = i;
      tokens = 0;
    }
    tokens += length;
  }
  if (begin < cases.size()) ranges.emplace_back(begin, cases.size());
  return ranges;
}

void check_options(const EvalOptions& options, int max_len) {
  RECFORGE_CHECK(options.batch_size >= 1, "evaluation: batch_size must be >= 1, got ",
                 options.batch_size);
  RECFORGE_CHECK(options.item_chunk >= 1, "evaluation: item_chunk must be >= 1, got ",
                 options.item_chunk);
  RECFORGE_CHECK(history_room(options, max_len) >= 1, "evaluation: max_len ", max_len,
                 " leaves no room for a history beside ", options.prompt.size(), " prompt tokens",
                 options.masked ? " and the MASK" : "");
}

void check_histories(std::span<const EvalCase> cases, int32_t num_items, bool masked) {
  for (size_t i = 0; i < cases.size(); ++i) {
    RECFORGE_CHECK(masked || !cases[i].history.empty(), "evaluation: case ", i,
                   " has an empty history (causal prediction reads its last position)");
    for (int32_t item : cases[i].history) check_item(item, num_items, "history item", i);
    check_item(cases[i].target, num_items, "target", i);
  }
}

// Encodes one batch of histories at a time and scores catalog chunks against the encoding.
class ItemScorer {
 public:
  ItemScorer(Decoder<float>& model, int32_t num_items, const EvalOptions& options)
      : model_(model),
        num_items_(num_items),
        options_(options),
        masked_(options.masked),
        chunk_(std::min(options.item_chunk, num_items)),
        queries_(model.context().device(),
                 static_cast<size_t>(options.batch_size) * model.config().d_model),
        scores_(model.context().device(), static_cast<size_t>(options.batch_size) * chunk_),
        host_scores_(scores_.size()) {}

  int32_t chunk() const { return chunk_; }
  int32_t num_chunks() const { return (num_items_ + chunk_ - 1) / chunk_; }
  int32_t chunk_first(int32_t c) const { return c * chunk_; }
  int32_t chunk_count(int32_t c) const { return std::min(chunk_, num_items_ - c * chunk_); }

  // Runs the model on the cases' histories and keeps each sequence's hidden state at its last
  // position (the last history item, or the MASK) as one row of queries [B, C].
  void encode(std::span<const EvalCase> cases) {
    const int C = model_.config().d_model;
    PackedBatch packed = empty_batch();
    for (const EvalCase& c : cases) {
      packed.add_recent_sequence(input_tokens(c.history, model_.config().max_len, options_),
                                 model_.config().max_len);
    }
    DeviceBatch batch(model_.context().device(), packed, model_.config());
    ForwardOptions forward;
    forward.mask = masked_ ? AttentionMask::kBidirectional : AttentionMask::kCausal;
    model_.forward(batch, forward);
    // hidden [N, C] in packed order → host, keep rows offsets[b+1] - 1, → queries [B, C]
    const size_t N = static_cast<size_t>(packed.num_tokens());
    std::vector<float> hidden(N * C);
    copy_bytes(hidden.data(), Device::kCpu, model_.hidden(), model_.context().device(),
               hidden.size() * sizeof(float));
    std::vector<float> rows(cases.size() * C);
    for (size_t b = 0; b < cases.size(); ++b) {
      const size_t last = static_cast<size_t>(packed.offsets[b + 1] - 1);
      std::copy_n(hidden.begin() + last * C, C, rows.begin() + b * C);
    }
    queries_.upload(rows);
    batch_ = static_cast<int>(cases.size());
    cached_chunk_ = -1;
  }

  // Host scores [B, chunk_count(c)] of items chunk_first(c).. for the encoded batch; row b is
  // H[b] · wte[item_token(item)] for each item. The last chunk scored is kept, not recomputed.
  const float* score(int32_t c) {
    if (c == cached_chunk_) return host_scores_.data();
    const int C = model_.config().d_model;
    const float* item_rows =
        model_.weights().wte + static_cast<int64_t>(item_token(chunk_first(c))) * C;
    matmul_forward(model_.context(), scores_.data(), queries_.data(), item_rows,
                   static_cast<const float*>(nullptr), batch_, C, chunk_count(c));
    copy_bytes(host_scores_.data(), Device::kCpu, scores_.data(), scores_.device(),
               static_cast<size_t>(batch_) * chunk_count(c) * sizeof(float));
    cached_chunk_ = c;
    return host_scores_.data();
  }
  int32_t cached_chunk() const { return cached_chunk_; }

 private:
  Decoder<float>& model_;
  int32_t num_items_;
  EvalOptions options_;
  bool masked_;
  int32_t chunk_;
  Buffer<float> queries_;           // [batch_size, C] prediction hidden states
  Buffer<float> scores_;            // [batch_size, chunk] on the model's device
  std::vector<float> host_scores_;  // [batch_size, chunk]
  int batch_ = 0;
  int32_t cached_chunk_ = -1;
};

// Every chunk once, the one already scored first (so it is not scored twice).
std::vector<int32_t> chunk_order(const ItemScorer& scorer) {
  std::vector<int32_t> order;
  if (scorer.cached_chunk() >= 0) order.push_back(scorer.cached_chunk());
  for (int32_t c = 0; c < scorer.num_chunks(); ++c) {
    if (c != scorer.cached_chunk()) order.push_back(c);
  }
  return order;
}

// Sorted, duplicate-free excluded items of a case, without its target.
std::vector<int32_t> exclusion_set(const EvalCase& c, int32_t num_items, size_t case_index) {
  std::vector<int32_t> excluded = c.excluded;
  for (int32_t item : excluded) check_item(item, num_items, "excluded item", case_index);
  std::sort(excluded.begin(), excluded.end());
  excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
  excluded.erase(std::remove(excluded.begin(), excluded.end(), c.target), excluded.end());
  return excluded;
}

// The targets' scores, each read from the chunk matmul that also scores the other candidates, so
// a target is compared with exactly the value it gets there (a separately computed dot product
// may round differently, which would break exact ties).
std::vector<float> target_scores(ItemScorer& scorer, std::span<const EvalCase> cases,
                                 size_t first_case) {
  std::vector<int32_t> chunks;
  for (const EvalCase& c : cases) chunks.push_back(c.target / scorer.chunk());
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  std::vector<float> scores(cases.size());
  for (int32_t chunk : chunks) {
    const float* s = scorer.score(chunk);
    const int32_t first = scorer.chunk_first(chunk), count = scorer.chunk_count(chunk);
    for (size_t b = 0; b < cases.size(); ++b) {
      if (cases[b].target / scorer.chunk() != chunk) continue;
      scores[b] = s[b * count + (cases[b].target - first)];
      RECFORGE_CHECK(!std::isnan(scores[b]), "evaluation: case ", first_case + b,
                     ": the target's score is nan");
    }
  }
  return scores;
}

// #(items of the chunk, other than the target and the excluded ones, with score >= target_score).
int64_t count_at_least(const float* row, int32_t first, int32_t count, float target_score,
                       int32_t target, const std::vector<int32_t>& excluded) {
  int64_t n = 0;
  for (int32_t j = 0; j < count; ++j) n += row[j] >= target_score;
  if (target >= first && target < first + count) --n;  // its own score is equal
  auto begin = std::lower_bound(excluded.begin(), excluded.end(), first);
  auto end = std::lower_bound(begin, excluded.end(), first + count);
  for (auto it = begin; it != end; ++it) n -= row[*it - first] >= target_score;
  return n;
}

}  // namespace

std::vector<int64_t> full_ranking_ranks(Decoder<float>& model, int32_t num_items,
                                        std::span<const EvalCase> cases,
                                        const EvalOptions& options) {
  check_catalog(model, num_items);
  check_options(options, model.config().max_len);
  check_histories(cases, num_items, options.masked);
  std::vector<std::vector<int32_t>> excluded(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) excluded[i] = exclusion_set(cases[i], num_items, i);

  std::vector<int64_t> ranks(cases.size(), 0);
  ItemScorer scorer(model, num_items, options);
  for (const std::pair<size_t, size_t>& range :
       batch_ranges(cases, options, model.config().max_len, model.max_tokens())) {
    const size_t begin = range.first;  // a plain variable: OpenMP regions cannot capture bindings
    std::span<const EvalCase> batch = cases.subspan(begin, range.second - begin);
    scorer.encode(batch);
    const std::vector<float> targets = target_scores(scorer, batch, begin);
    for (int32_t c : chunk_order(scorer)) {
      const float* s = scorer.score(c);
      const int32_t first = scorer.chunk_first(c), count = scorer.chunk_count(c);
      const int64_t B = static_cast<int64_t>(batch.size());
#pragma omp parallel for schedule(static)
      for (int64_t b = 0; b < B; ++b) {
        ranks[begin + b] += count_at_least(s + b * count, first, count, targets[b], batch[b].target,
                                           excluded[begin + b]);
      }
    }
  }
  return ranks;
}

RankingMetrics evaluate_full_ranking(Decoder<float>& model, int32_t num_items,
                                     std::span<const EvalCase> cases, const EvalOptions& options) {
  RankingMetrics metrics(options.ks);
  for (int64_t rank : full_ranking_ranks(model, num_items, cases, options)) metrics.add(rank);
  return metrics;
}

std::vector<int64_t> sampled_ranks(Decoder<float>& model, std::span<const EvalCase> cases,
                                   std::span<const std::vector<int32_t>> negatives,
                                   const EvalOptions& options) {
  const int32_t num_items = catalog_size(model);
  check_catalog(model, num_items);
  check_options(options, model.config().max_len);
  check_histories(cases, num_items, options.masked);
  RECFORGE_CHECK(negatives.size() == cases.size(), "evaluation: ", negatives.size(),
                 " negative lists for ", cases.size(), " cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    for (int32_t item : negatives[i]) {
      check_item(item, num_items, "negative", i);
      RECFORGE_CHECK(item != cases[i].target, "evaluation: case ", i, ": negative ", item,
                     " is the target");
    }
  }

  std::vector<int64_t> ranks(cases.size(), 0);
  ItemScorer scorer(model, num_items, options);
  for (const std::pair<size_t, size_t>& range :
       batch_ranges(cases, options, model.config().max_len, model.max_tokens())) {
    const size_t begin = range.first;  // a plain variable: OpenMP regions cannot capture bindings
    std::span<const EvalCase> batch = cases.subspan(begin, range.second - begin);
    scorer.encode(batch);
    const std::vector<float> targets = target_scores(scorer, batch, begin);
    for (int32_t c : chunk_order(scorer)) {
      const int32_t first = scorer.chunk_first(c), count = scorer.chunk_count(c);
      const float* s = nullptr;
      for (size_t b = 0; b < batch.size(); ++b) {
        for (int32_t item : negatives[begin + b]) {
          if (item < first || item >= first + count) continue;
          if (s == nullptr) s = scorer.score(c);
          ranks[begin + b] += s[b * count + (item - first)] >= targets[b];
        }
      }
    }
  }
  return ranks;
}

RankingMetrics evaluate_sampled(Decoder<float>& model, std::span<const EvalCase> cases,
                                std::span<const std::vector<int32_t>> negatives,
                                const EvalOptions& options) {
  RankingMetrics metrics(options.ks);
  for (int64_t rank : sampled_ranks(model, cases, negatives, options)) metrics.add(rank);
  return metrics;
}

namespace {

// 64 random bits for draw `index` of stream `stream` under `seed` (one Philox4x32-10 block).
uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  Philox4 counter{{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                   static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  Philox4 r =
      philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

// Draws item ids: uniform over [0, num_items), or by popularity through its cumulative sums
// (item i owns the integers [cumulative[i-1], cumulative[i]) of [0, total)).
class ItemDistribution {
 public:
  ItemDistribution(int32_t num_items, std::span<const int64_t> popularity) : num_items_(num_items) {
    if (popularity.empty()) return;
    RECFORGE_CHECK(popularity.size() == static_cast<size_t>(num_items),
                   "negative sampling: popularity has ", popularity.size(), " entries for ",
                   num_items, " items");
    cumulative_.resize(popularity.size());
    int64_t total = 0;
    for (size_t i = 0; i < popularity.size(); ++i) {
      RECFORGE_CHECK(popularity[i] >= 0, "negative sampling: popularity of item ", i,
                     " is negative (", popularity[i], ")");
      total += popularity[i];
      cumulative_[i] = total;
    }
  }

  bool can_draw(int32_t item) const {
    return cumulative_.empty() || cumulative_[item] > (item > 0 ? cumulative_[item - 1] : 0);
  }
  int64_t drawable() const {
    int64_t n = 0;
    for (int32_t i = 0; i < num_items_; ++i) n += can_draw(i);
    return n;
  }
  int32_t draw(uint64_t bits) const {
    if (cumulative_.empty()) return static_cast<int32_t>(((bits >> 32) * num_items_) >> 32);
    const int64_t u = static_cast<int64_t>(bits % static_cast<uint64_t>(cumulative_.back()));
    return static_cast<int32_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) -
                                cumulative_.begin());
  }

 private:
  int32_t num_items_;
  std::vector<int64_t> cumulative_;  // [num_items], empty for uniform
};

// The items a case's negatives must avoid: everything the user touched, and the target.
std::vector<int32_t> forbidden_items(const EvalCase& c, const std::vector<int32_t>& user_items,
                                     int32_t num_items, size_t case_index) {
  std::vector<int32_t> forbidden = user_items;
  forbidden.push_back(c.target);
  for (int32_t item : forbidden) check_item(item, num_items, "user item", case_index);
  std::sort(forbidden.begin(), forbidden.end());
  forbidden.erase(std::unique(forbidden.begin(), forbidden.end()), forbidden.end());
  return forbidden;
}

// How many distinct negatives a case with `forbidden` items can draw from `drawable` ones.
int64_t negatives_available(const ItemDistribution& distribution, int64_t drawable,
                            std::span<const int32_t> forbidden) {
  for (int32_t item : forbidden) drawable -= distribution.can_draw(item);
  return drawable;
}

}  // namespace

MostNegatives most_negatives(std::span<const EvalCase> cases,
                             std::span<const std::vector<int32_t>> user_items, int32_t num_items,
                             std::span<const int64_t> popularity) {
  const ItemDistribution distribution(num_items, popularity);
  const int64_t drawable = distribution.drawable();
  MostNegatives most{drawable, -1};
  for (size_t i = 0; i < cases.size(); ++i) {
    const int64_t available = negatives_available(
        distribution, drawable, forbidden_items(cases[i], user_items[i], num_items, i));
    if (available < most.count) most = {available, static_cast<int64_t>(i)};
  }
  return most;
}

std::vector<std::vector<int32_t>> sample_eval_negatives(
    std::span<const EvalCase> cases, std::span<const std::vector<int32_t>> user_items,
    int32_t num_items, int count, std::span<const int64_t> popularity, uint64_t seed) {
  RECFORGE_CHECK(user_items.size() == cases.size(), "negative sampling: ", user_items.size(),
                 " user item lists for ", cases.size(), " cases");
  RECFORGE_CHECK(count >= 0, "negative sampling: count must be >= 0, got ", count);
  RECFORGE_CHECK(num_items >= 1, "negative sampling: num_items must be >= 1, got ", num_items);
  const ItemDistribution distribution(num_items, popularity);
  const int64_t drawable = distribution.drawable();
  std::vector<std::vector<int32_t>> forbidden(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    forbidden[i] = forbidden_items(cases[i], user_items[i], num_items, i);
    const int64_t available = negatives_available(distribution, drawable, forbidden[i]);
    RECFORGE_CHECK(available >= count, "negative sampling: case ", i, " has only ", available,
                   " items outside its user's items to draw ", count, " negatives from");
  }

  // Rejection sampling: redraw an item the user touched or one already drawn. The draw budget
  // only runs out when nearly all the probability mass lies on the user's own items.
  const int64_t max_draws = 1000LL * count + 10000;
  std::vector<std::vector<int32_t>> negatives(cases.size());
  std::vector<char> exhausted(cases.size(), 0);
  const int64_t num_cases = static_cast<int64_t>(cases.size());
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < num_cases; ++i) {
    std::vector<int32_t>& drawn = negatives[i];
    std::unordered_set<int32_t> taken;
    for (int64_t d = 0; static_cast<int>(drawn.size()) < count; ++d) {
      if (d == max_draws) {
        exhausted[i] = 1;
        break;
      }
      const int32_t item = distribution.draw(random_bits(seed, static_cast<uint64_t>(i), d));
      if (std::binary_search(forbidden[i].begin(), forbidden[i].end(), item)) continue;
      if (taken.insert(item).second) drawn.push_back(item);
    }
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    RECFORGE_CHECK(!exhausted[i], "negative sampling: case ", i, " drew only ", negatives[i].size(),
                   " of ", count, " negatives in ", max_draws,
                   " draws (almost all popularity lies on the user's items)");
  }
  return negatives;
}

void save_negatives(const std::filesystem::path& path,
                    std::span<const std::vector<int32_t>> negatives) {
  std::string text;
  for (const std::vector<int32_t>& line : negatives) {
    for (size_t j = 0; j < line.size(); ++j) {
      if (j > 0) text += ' ';
      text += std::to_string(line[j]);
    }
    text += '\n';
  }
  write_file_atomically(path, text);
}

std::vector<std::vector<int32_t>> load_negatives(const std::filesystem::path& path) {
  std::ifstream in(path);
  RECFORGE_CHECK(in, "load_negatives: cannot open ", path.string());
  std::vector<std::vector<int32_t>> negatives;
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    std::istringstream words(line);
    std::vector<int32_t>& items = negatives.emplace_back();
    for (std::string word; words >> word;) {
      int32_t item = 0;
      auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), item);
      RECFORGE_CHECK(error == std::errc() && end == word.data() + word.size() && item >= 0,
                     "load_negatives: ", path.string(), ":", line_number, ": '", word,
                     "' is not an item id");
      items.push_back(item);
    }
  }
  return negatives;
}

namespace {

// a is recommended before b: higher score, then lower item id.
bool ranks_before(const Recommendation& a, const Recommendation& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

}  // namespace

std::vector<Recommendation> recommend(Decoder<float>& model, int32_t num_items,
                                      std::span<const int32_t> history, int k, bool exclude_history,
                                      bool masked, std::span<const int32_t> prompt) {
  RECFORGE_CHECK(k >= 0, "recommend: k must be >= 0, got ", k);
  check_catalog(model, num_items);
  EvalOptions options;
  options.batch_size = 1;
  options.masked = masked;
  options.prompt.assign(prompt.begin(), prompt.end());
  check_options(options, model.config().max_len);
  EvalCase query{std::vector<int32_t>(history.begin(), history.end()), 0, {}};
  check_histories(std::span<const EvalCase>(&query, 1), num_items, masked);
  std::vector<int32_t> excluded = exclude_history ? query.history : std::vector<int32_t>{};
  std::sort(excluded.begin(), excluded.end());

  ItemScorer scorer(model, num_items, options);
  scorer.encode(std::span<const EvalCase>(&query, 1));
  // A heap of the best k so far whose top is the worst of them (ordered by ranks_before).
  std::vector<Recommendation> best;
  for (int32_t c = 0; c < scorer.num_chunks() && k > 0; ++c) {
    const float* s = scorer.score(c);
    for (int32_t j = 0; j < scorer.chunk_count(c); ++j) {
      const Recommendation candidate{scorer.chunk_first(c) + j, s[j]};
      if (std::isnan(candidate.score)) continue;
      if (std::binary_search(excluded.begin(), excluded.end(), candidate.item)) continue;
      if (static_cast<int>(best.size()) < k) {
        best.push_back(candidate);
        std::push_heap(best.begin(), best.end(), ranks_before);
      } else if (ranks_before(candidate, best.front())) {
        std::pop_heap(best.begin(), best.end(), ranks_before);
        best.back() = candidate;
        std::push_heap(best.begin(), best.end(), ranks_before);
      }
    }
  }
  std::sort_heap(best.begin(), best.end(), ranks_before);
  return best;
}

}  // namespace recforge
