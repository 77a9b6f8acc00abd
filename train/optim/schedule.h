// The learning-rate schedule: linear warmup from 0 over `warmup_steps`, then constant, or a cosine
// or linear decay from lr to min_lr_ratio · lr at the last step.
#pragma once

#include <cstdint>

#include "train/config/config.h"

namespace recforge {

// `step` counts optimizer steps from 0; `total_steps` is the run's planned number of steps.
float learning_rate(const TrainSection& train, int64_t step, int64_t total_steps);

}  // namespace recforge
