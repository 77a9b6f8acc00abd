#include "train/text/text_batches.h"

#include <numeric>
#include <random>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"

namespace recforge {
namespace {

int sequence_tokens(const TextExample& example, int answer, bool with_end) {
  return static_cast<int>(example.prompt.size() + example.answers[answer].size()) -
         (with_end ? 0 : 1);
}

// Cuts `units` (examples, each `tokens[i]` long) into micro-batches of at most max_examples units
// and max_tokens tokens; returns the first unit of each micro-batch and the end.
std::vector<size_t> cut_points(std::span<const int> tokens, int max_examples, int max_tokens) {
  std::vector<size_t> cuts = {0};
  int used = 0, count = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    RECFORGE_CHECK(tokens[i] <= max_tokens, "example ", i, " needs ", tokens[i],
                   " tokens in one micro-batch, more than model.max_tokens ", max_tokens);
    if (count == max_examples || used + tokens[i] > max_tokens) {
      cuts.push_back(i);
      used = count = 0;
    }
    used += tokens[i];
    ++count;
  }
  if (!tokens.empty()) cuts.push_back(tokens.size());
  return cuts;
}

// The rejected answers of one example: `count` of the others, drawn without replacement.
std::vector<int> draw_rejected(const TextExample& example, int count, std::mt19937_64& rng) {
  std::vector<int> others;
  for (int a = 0; a < static_cast<int>(example.answers.size()); ++a) {
    if (a != example.chosen) others.push_back(a);
  }
  count = std::min<int>(count, others.size());
  for (int i = 0; i < count; ++i) {
    std::uniform_int_distribution<int> pick(i, static_cast<int>(others.size()) - 1);
    std::swap(others[i], others[pick(rng)]);
  }
  others.resize(count);
  return others;
}

void finish(TextBatch& batch) {
  batch.answer_tokens = 0;
  for (int32_t target : batch.host.targets) batch.answer_tokens += target != kIgnoreIndex;
}

// Micro-batch c holds examples [cuts[c], cuts[c + 1]), each as its group's answered sequences.
std::vector<TextBatch> pack_groups(std::span<const TextExample> examples,
                                   const std::vector<std::vector<int>>& groups,
                                   const std::vector<size_t>& cuts, int32_t end) {
  std::vector<TextBatch> batches;
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    TextBatch batch;
    batch.host = empty_batch();
    for (size_t i = cuts[c]; i < cuts[c + 1]; ++i) {
      for (int a : groups[i]) {
        add_answered_sequence(batch.host, examples[i].prompt, examples[i].answers[a], end);
      }
      batch.group_sizes.push_back(static_cast<int>(groups[i].size()));
    }
    finish(batch);
    batches.push_back(std::move(batch));
  }
  return batches;
}

}  // namespace

void add_answered_sequence(PackedBatch& batch, std::span<const int32_t> prompt,
                           std::span<const int32_t> answer, int32_t end) {
  RECFORGE_CHECK(!prompt.empty() && !answer.empty(), "a sequence needs a prompt and an answer");
  std::vector<int32_t> full(prompt.begin(), prompt.end());
  full.insert(full.end(), answer.begin(), answer.end());
  if (end >= 0) full.push_back(end);
  std::vector<int32_t> targets(full.size() - 1, kIgnoreIndex);
  for (size_t t = prompt.size(); t < full.size(); ++t) targets[t - 1] = full[t];
  full.pop_back();
  batch.add_sequence(full, targets);
}

std::vector<TextBatch> sft_batches(std::span<const TextExample> examples, int32_t end,
                                   int max_examples, int max_tokens) {
  std::vector<std::vector<int>> groups;
  std::vector<int> tokens;
  for (const TextExample& e : examples) {
    groups.push_back({e.chosen});
    tokens.push_back(sequence_tokens(e, e.chosen, end >= 0));
  }
  return pack_groups(examples, groups, cut_points(tokens, max_examples, max_tokens), end);
}

std::vector<TextBatch> dpo_batches(std::span<const TextExample> examples, int rejected,
                                   uint64_t seed, int max_examples, int max_tokens) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int>> groups;
  std::vector<int> tokens;
  for (const TextExample& example : examples) {
    RECFORGE_CHECK(example.answers.size() >= 2, "DPO needs an example with two answers or more");
    std::vector<int> group = {example.chosen};
    for (int a : draw_rejected(example, rejected, rng)) group.push_back(a);
    int total = 0;
    for (int a : group) total += sequence_tokens(example, a, false);
    tokens.push_back(total);
    groups.push_back(std::move(group));
  }
  return pack_groups(examples, groups, cut_points(tokens, max_examples, max_tokens), -1);
}

}  // namespace recforge
