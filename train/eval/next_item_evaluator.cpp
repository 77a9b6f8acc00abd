#include "train/eval/next_item_evaluator.h"

#include <filesystem>
#include <span>

#include "train/eval/evaluation.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

// Every world_size-th element from `rank` on.
template <typename T>
std::vector<T> every_nth(const std::vector<T>& all, const DataShard& shard) {
  std::vector<T> mine;
  for (size_t i = shard.rank; i < all.size(); i += shard.world_size) mine.push_back(all[i]);
  return mine;
}

const char* split_name(Split which) { return which == Split::kValid ? "valid" : "test"; }

}  // namespace

NextItemEvaluator::NextItemEvaluator(const RunConfig& config, const StageSection& stage,
                                     const Dataset& data, const LeaveOneOutSplit& split,
                                     std::vector<int32_t> prompt, bool masked,
                                     const Distributed& distributed)
    : config_(config),
      stage_(stage),
      data_(data),
      train_counts_(split.train_item_counts()),
      prompt_(std::move(prompt)),
      masked_(masked),
      distributed_(distributed),
      valid_(evaluation_cases(data, split, Split::kValid, stage.eval.exclude_history)),
      test_(evaluation_cases(data, split, Split::kTest, stage.eval.exclude_history)) {
  RECFORGE_CHECK(!valid_.cases.empty() && !test_.cases.empty(), "stage ", stage.name,
                 ": the dataset at ", data.directory().string(), " has no user with at least 3 ",
                 "events; the leave-one-out split holds out each user's last two for validation ",
                 "and test, so there would be nothing to evaluate");
  for (const EvalCases* cases : {&valid_, &test_}) check_sampled_negatives(*cases);
}

// The sampled protocol draws eval.sampled_negatives distinct items per case outside its user's
// items: the catalogue must hold them for every case, before training starts.
void NextItemEvaluator::check_sampled_negatives(const EvalCases& cases) const {
  std::span<const int64_t> popularity;
  if (stage_.eval.sampled_by == NegativeSampling::kPopularity) popularity = train_counts_;
  const MostNegatives most =
      most_negatives(cases.cases, cases.user_items, data_.num_items(), popularity);
  RECFORGE_CHECK(most.count >= stage_.eval.sampled_negatives, "stage ", stage_.name,
                 ": eval.sampled_negatives is ", stage_.eval.sampled_negatives, " but user ",
                 data_.user_name(cases.users[most.case_index]), " leaves only ", most.count,
                 " of the ", data_.num_items(), " items to draw them from; lower it to at most ",
                 most.count);
}

// The sampled protocol's negatives of every case: drawn once (seeded, so every rank draws the
// same) and kept in memory and in the run directory, so every evaluation of the stage and a
// resumed run rank against the same ones.
const std::vector<std::vector<int32_t>>& NextItemEvaluator::sampled_negatives(
    Split which, const EvalCases& all) {
  std::vector<std::vector<int32_t>>& negatives =
      which == Split::kValid ? valid_negatives_ : test_negatives_;
  if (negatives.empty()) negatives = load_or_draw_negatives(which, all);
  return negatives;
}

std::vector<std::vector<int32_t>> NextItemEvaluator::load_or_draw_negatives(Split which,
                                                                            const EvalCases& all) {
  const fs::path file = fs::path(config_.run.output_dir) /
                        ("negatives-" + stage_.name + "-" + split_name(which) + ".txt");
  if (fs::exists(file)) return load_negatives(file);
  std::span<const int64_t> popularity;
  if (stage_.eval.sampled_by == NegativeSampling::kPopularity) popularity = train_counts_;
  std::vector<std::vector<int32_t>> negatives = sample_eval_negatives(
      all.cases, all.user_items, data_.num_items(), stage_.eval.sampled_negatives, popularity,
      config_.run.seed + (which == Split::kTest));
  if (distributed_.writes_files()) save_negatives(file, negatives);
  return negatives;
}

RankingMetrics NextItemEvaluator::evaluate(Decoder<float>& model, Split which,
                                           EvalProtocol protocol) {
  const EvalCases& all = which == Split::kValid ? valid_ : test_;
  EvalOptions options;
  options.ks = stage_.eval.ks;
  options.batch_size = stage_.eval.batch_size;
  options.masked = masked_;
  options.prompt = prompt_;
  const DataShard& shard = distributed_.shard;
  const std::vector<EvalCase> cases = every_nth(all.cases, shard);
  RankingMetrics local =
      protocol == EvalProtocol::kFull
          ? evaluate_full_ranking(model, data_.num_items(), cases, options)
          : evaluate_sampled(model, cases, every_nth(sampled_negatives(which, all), shard),
                             options);
  if (!distributed_.parallel()) return local;
  std::vector<double> sums = local.sums();
  distributed_.sum(sums);
  RankingMetrics total(stage_.eval.ks);
  total.add_sums(sums);
  return total;
}

Metrics NextItemEvaluator::evaluate(Decoder<float>& model, Split which) {
  return evaluate(model, which, stage_.eval.protocol).as_map("");
}

nlohmann::json NextItemEvaluator::final_report(Decoder<float>& model) {
  nlohmann::json result = {{"num_items", data_.num_items()},
                           {"num_test_users", test_.cases.size()}};
  result["full_ranking_setting"] =
      stage_.eval.exclude_history
          ? "full ranking over all items, each user's earlier items excluded from the ranking"
          : "full ranking over all items, nothing excluded";
  for (Split which : {Split::kValid, Split::kTest}) {
    const std::string name = split_name(which);
    for (const auto& [k, v] : evaluate(model, which, EvalProtocol::kFull).as_map(name)) {
      result[k] = v;
    }
    for (const auto& [k, v] :
         evaluate(model, which, EvalProtocol::kSampled).as_map(name + "_sampled")) {
      result[k] = v;
    }
  }
  result["sampled_setting"] = std::to_string(stage_.eval.sampled_negatives) + " " +
                              name_of(stage_.eval.sampled_by) +
                              " negatives per user, never an item of the user, seeded and saved";
  return result;
}

nlohmann::json NextItemEvaluator::inference_state() const {
  return {{"inference", masked_ ? "masked" : "causal"}, {"prompt", prompt_}};
}

}  // namespace recforge
