#include "train/text/title_ranking.h"

#include <algorithm>
#include <unordered_set>

#include "kernels/check.h"
#include "model/llama/scoring.h"

namespace recforge {

std::string next_title_message(std::span<const std::string> history,
                               const std::string& template_text) {
  std::string joined;
  for (const std::string& title : history) joined += (joined.empty() ? "" : ", ") + title;
  std::string text = template_text;
  for (size_t at = 0; (at = text.find("{history}", at)) != std::string::npos; at += joined.size()) {
    text.replace(at, 9, joined);
  }
  return text;
}

std::vector<RankedTitle> rank_titles(LlamaModel<float>& model, const Tokenizer& tokenizer,
                                     const std::string& message,
                                     std::span<const std::string> titles,
                                     std::span<const int> exclude, int k, int max_context) {
  RECFORGE_CHECK(k >= 1, "rank_titles: k must be >= 1");
  const ChatMessage user{"user", message};
  const std::vector<int32_t> prompt = tokenizer.encode_chatml(std::span(&user, 1), true);
  const std::unordered_set<int> excluded(exclude.begin(), exclude.end());
  std::vector<int> items;
  std::vector<std::vector<int32_t>> answers;
  for (int item = 0; item < static_cast<int>(titles.size()); ++item) {
    if (excluded.count(item)) continue;
    items.push_back(item);
    answers.push_back(tokenizer.encode(titles[item]));
  }
  PromptScorer scorer(model, max_context);
  const std::vector<double> scores = scorer.score(prompt, answers);
  std::vector<RankedTitle> ranked;
  for (size_t i = 0; i < items.size(); ++i) ranked.push_back({items[i], scores[i]});
  const size_t top = std::min<size_t>(k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + top, ranked.end(),
                    [](const RankedTitle& a, const RankedTitle& b) {
                      return a.log_prob != b.log_prob ? a.log_prob > b.log_prob : a.item < b.item;
                    });
  ranked.resize(top);
  return ranked;
}

}  // namespace recforge
