#include "train/eval/eval_cases.h"

namespace recforge {

EvalCases evaluation_cases(const Dataset& data, const LeaveOneOutSplit& split, Split which,
                           bool exclude_history) {
  EvalCases result;
  for (int32_t user : split.evaluation_users(which)) {
    std::span<const int32_t> history = split.history(user, which);
    const int32_t target =
        which == Split::kValid ? split.valid_target(user) : split.test_target(user);
    EvalCase c{{history.begin(), history.end()}, target, {}};
    if (exclude_history) c.excluded = c.history;
    result.cases.push_back(std::move(c));
    result.users.push_back(user);
    std::span<const int32_t> all = data.items(user);
    result.user_items.emplace_back(all.begin(), all.end());
  }
  return result;
}

void renumber_items(EvalCases& cases, std::span<const int32_t> to) {
  auto renumber = [&](std::vector<int32_t>& items) {
    for (int32_t& item : items) item = to[item];
  };
  for (EvalCase& c : cases.cases) {
    renumber(c.history);
    renumber(c.excluded);
    c.target = to[c.target];
  }
  for (std::vector<int32_t>& items : cases.user_items) renumber(items);
}

}  // namespace recforge
