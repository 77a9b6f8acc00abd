#include "train/tasks/stage_task.h"

#include "train/tasks/dpo_stage.h"
#include "train/tasks/pretrain_task.h"
#include "train/tasks/sft_stage.h"

namespace recforge {

std::unique_ptr<StageTask> make_stage_task(const RunConfig& config, size_t stage_index,
                                           const Context& ctx, const Dataset& data,
                                           const LeaveOneOutSplit& split,
                                           const Distributed& distributed) {
  const StageSection& stage = config.stages[stage_index];
  switch (stage.objective.type) {
    case ObjectiveType::kMbpNbp:
    case ObjectiveType::kNbp:
    case ObjectiveType::kMbp:
      return std::make_unique<PretrainTask>(config, stage, ctx, data, split, distributed);
    case ObjectiveType::kSft:
      return std::make_unique<SftStage>(config, stage, ctx, data, split, distributed);
    case ObjectiveType::kDpo:
      return std::make_unique<DpoStage>(config, stage, ctx, data, split, distributed);
  }
  throw Error(concat("stage ", stage.name, ": unknown objective ", name_of(stage.objective.type)));
}

}  // namespace recforge
