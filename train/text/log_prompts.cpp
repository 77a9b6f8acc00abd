#include "train/text/log_prompts.h"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_set>

#include "kernels/check.h"

namespace recforge {
namespace {

// Calls visit(user, target event, history end) for the part's last per_user events per user.
template <typename Visit>
void for_each_target(const EventSplit& split, const LogPromptOptions& options, Visit visit) {
  const Dataset& data = split.dataset();
  for (int32_t user = 0; user < data.num_users(); ++user) {
    const EventRange range = split.range(user, options.part);
    std::vector<int64_t> events;
    for (int64_t j = range.end - 1; j >= range.begin; --j) {
      if (static_cast<int>(events.size()) == options.per_user) break;
      if (split.history_end(user, j) > 0) events.push_back(j);
    }
    std::reverse(events.begin(), events.end());
    for (int64_t j : events) visit(user, j, split.history_end(user, j));
  }
}

std::string quoted_list(const std::vector<std::string>& titles) {
  std::string out;
  for (const std::string& title : titles) out += (out.empty() ? "\"" : ", \"") + title + "\"";
  return out;
}

}  // namespace

std::vector<InstructionExample> preference_prompts(const EventSplit& split,
                                                   const std::vector<std::string>& titles,
                                                   const LogPromptOptions& options) {
  const Dataset& data = split.dataset();
  RECFORGE_CHECK(data.has_ratings(), data.directory().string(), " has no ratings: the preference ",
                 "task labels likes by rating (prepare it with --rating-col)");
  const std::string instruction =
      "Given the user's preference and unpreference, identify whether the user will like the "
      "target " +
      options.noun + " by answering \"Yes.\" or \"No.\".";
  std::vector<InstructionExample> out;
  for_each_target(split, options, [&](int32_t user, int64_t target, int64_t history_end) {
    const auto items = data.items(user);
    const auto ratings = data.ratings(user);
    std::vector<std::string> liked, disliked;
    for (int64_t j = std::max<int64_t>(0, history_end - options.history); j < history_end; ++j) {
      (ratings[j] >= options.like_threshold ? liked : disliked).push_back(titles[items[j]]);
    }
    const std::string input = "User Preference: " + quoted_list(liked) +
                              "\nUser Unpreference: " + quoted_list(disliked) +
                              "\nWhether the user will like the target " + options.noun + " \"" +
                              titles[items[target]] + "\"?";
    out.push_back({instruction, input, ratings[target] >= options.like_threshold ? "Yes." : "No."});
  });
  return out;
}

std::vector<CandidateList> candidate_lists(const EventSplit& split,
                                           const std::vector<std::string>& titles,
                                           const LogPromptOptions& options) {
  const Dataset& data = split.dataset();
  RECFORGE_CHECK(options.candidates >= 2, "candidate_choice needs 2 candidates or more");
  std::vector<CandidateList> out;
  for_each_target(split, options, [&](int32_t user, int64_t target, int64_t history_end) {
    const auto items = data.items(user);
    if (std::find(items.begin(), items.begin() + history_end, items[target]) !=
        items.begin() + history_end) {
      return;  // a repeat: "the candidate in the history" would be a shortcut
    }
    const std::unordered_set<int32_t> seen(items.begin(), items.end());
    RECFORGE_CHECK(data.num_items() - static_cast<int>(seen.size()) >= options.candidates - 1,
                   "user ", data.user_name(user), " has seen all but ",
                   data.num_items() - seen.size(), " items: too few negatives for ",
                   options.candidates, " candidates");
    std::mt19937_64 rng(options.seed * 1000003 + static_cast<uint64_t>(user) * 7919 + target);
    std::uniform_int_distribution<int32_t> any_item(0, data.num_items() - 1);
    std::vector<int32_t> candidates = {items[target]};
    std::unordered_set<std::string> titled = {titles[items[target]]};
    for (int64_t draws = 0; static_cast<int>(candidates.size()) < options.candidates; ++draws) {
      RECFORGE_CHECK(draws < 1000 * int64_t{options.candidates}, "user ", data.user_name(user),
                     ": too few unseen items with distinct titles for ", options.candidates,
                     " candidates");
      const int32_t item = any_item(rng);
      if (!seen.count(item) && titled.insert(titles[item]).second) candidates.push_back(item);
    }
    std::shuffle(candidates.begin(), candidates.end(), rng);
    const int answer = static_cast<int>(
        std::find(candidates.begin(), candidates.end(), items[target]) - candidates.begin());
    out.push_back({user, history_end, answer, std::move(candidates)});
  });
  return out;
}

std::vector<CandidateExample> candidate_prompts(const Dataset& data,
                                                const std::vector<std::string>& titles,
                                                const std::vector<CandidateList>& lists,
                                                const LogPromptOptions& options) {
  std::vector<CandidateExample> out;
  for (const CandidateList& list : lists) {
    const auto items = data.items(list.user);
    CandidateExample example;
    for (int64_t j = std::max<int64_t>(0, list.history_length - options.history);
         j < list.history_length; ++j) {
      example.history.push_back(titles[items[j]]);
    }
    for (int32_t item : list.items) example.candidates.push_back(titles[item]);
    example.answer = list.answer;
    out.push_back(std::move(example));
  }
  return out;
}

std::vector<CandidateExample> candidate_prompts(const EventSplit& split,
                                                const std::vector<std::string>& titles,
                                                const LogPromptOptions& options) {
  return candidate_prompts(split.dataset(), titles, candidate_lists(split, titles, options),
                           options);
}

}  // namespace recforge
