// next_title ranking: the prefix-shared scores order the catalogue as scoring each title in its
// own packed request does, and excluded items never come back.
#include "train/text/title_ranking.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "model/llama/scoring.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/train/text/tiny_text_model.h"

namespace recforge {
namespace {

TEST(NextTitleMessage, JoinsTheHistoryIntoTheTemplate) {
  const std::vector<std::string> history = {"A", "B"};
  EXPECT_EQ(next_title_message(history, "Saw {history}; next?"), "Saw A, B; next?");
}

TEST(RankTitles, MatchesScoringEachTitleAloneAndSkipsExcludedItems) {
  std::mt19937_64 rng(testing::fresh_seed());
  const Tokenizer tokenizer(testing::tiny_spec());
  LlamaConfig config = testing::small_llama_config(static_cast<int>(tokenizer.vocab_size()));
  config.max_len = 256;
  LlamaModel<float> model(Context::cpu(), config, 256, false);
  model.load_parameters(testing::random_normal<float>(rng, llama_layout(config).total_size(), 0.3));
  const std::vector<std::string> titles = {"hello", "world", "aa", "hello world", "b", "aab"};
  const std::vector<int> exclude = {2};
  const auto top = rank_titles(model, tokenizer, "Saw aa; next?", titles, exclude, 3, 256);

  const ChatMessage user{"user", "Saw aa; next?"};
  const std::vector<int32_t> prompt = tokenizer.encode_chatml(std::span(&user, 1), true);
  std::vector<std::vector<int32_t>> answers;
  std::vector<ScoringRequest> requests;
  for (const std::string& title : titles) answers.push_back(tokenizer.encode(title));
  for (const auto& answer : answers) requests.push_back({prompt, answer});
  const std::vector<double> alone = continuation_log_probs(model, std::span(requests));
  std::vector<int> order = {0, 1, 3, 4, 5};
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return alone[a] > alone[b]; });
  ASSERT_EQ(top.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(top[i].item, order[i]);
    EXPECT_NEAR(top[i].log_prob, alone[order[i]], 1e-4);
  }
}

}  // namespace
}  // namespace recforge
