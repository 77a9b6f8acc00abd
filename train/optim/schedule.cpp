#include "train/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace recforge {

float learning_rate(const TrainSection& train, int64_t step, int64_t total_steps) {
  if (step < train.warmup_steps) {
    return train.lr * static_cast<float>(step + 1) / static_cast<float>(train.warmup_steps);
  }
  if (train.schedule == LrSchedule::kConstant) return train.lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - train.warmup_steps - 1);
  const double progress =
      std::clamp(static_cast<double>(step - train.warmup_steps) / decay_steps, 0.0, 1.0);
  const double shape = train.schedule == LrSchedule::kCosine
                           ? 0.5 * (1.0 + std::cos(std::numbers::pi * progress))
                           : 1.0 - progress;
  const double min_lr = train.min_lr_ratio * train.lr;
  return static_cast<float>(min_lr + (train.lr - min_lr) * shape);
}

}  // namespace recforge
