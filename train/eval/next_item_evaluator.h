// Next-item ranking evaluation of a stage (pre-training, SFT next_item, DPO): the validation and
// test cases of the leave-one-out split, full ranking or the sampled protocol (negatives drawn
// once, saved in the run directory and reused), and the final report of both protocols.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/decoder.h"
#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/dist/data_parallel.h"
#include "train/eval/eval_cases.h"
#include "train/eval/metrics.h"

namespace recforge {

class NextItemEvaluator {
 public:
  // `prompt`: tokens before each history (a fine-tuned task's token); `masked`: MBP-style
  // prediction through an appended MASK. With several ranks each evaluates every world_size-th
  // case and the sums are added up.
  NextItemEvaluator(const RunConfig& config, const StageSection& stage, const Dataset& data,
                    const LeaveOneOutSplit& split, std::vector<int32_t> prompt, bool masked,
                    const Distributed& distributed);
  RankingMetrics evaluate(Decoder<float>& model, Split which, EvalProtocol protocol);
  Metrics evaluate(Decoder<float>& model, Split which);
  nlohmann::json final_report(Decoder<float>& model);
  nlohmann::json inference_state() const;

 private:
  const std::vector<std::vector<int32_t>>& sampled_negatives(Split which, const EvalCases& all);
  std::vector<std::vector<int32_t>> load_or_draw_negatives(Split which, const EvalCases& all);
  void check_sampled_negatives(const EvalCases& cases) const;

  const RunConfig& config_;
  const StageSection& stage_;
  const Dataset& data_;
  std::vector<int64_t> train_counts_;
  std::vector<int32_t> prompt_;
  bool masked_;
  Distributed distributed_;
  EvalCases valid_, test_;
  std::vector<std::vector<int32_t>> valid_negatives_, test_negatives_;  // the sampled protocol's
};

}  // namespace recforge
