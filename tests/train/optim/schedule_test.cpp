// The learning-rate schedule: warmup, then constant, cosine or linear decay.
#include "train/optim/schedule.h"

#include <gtest/gtest.h>

namespace recforge {
namespace {

TrainSection section(LrSchedule schedule) {
  TrainSection train;
  train.lr = 1.0f;
  train.warmup_steps = 10;
  train.schedule = schedule;
  train.min_lr_ratio = 0.1f;
  return train;
}

TEST(LearningRate, WarmsUpLinearlyFromZero) {
  TrainSection train = section(LrSchedule::kCosine);
  EXPECT_FLOAT_EQ(learning_rate(train, 0, 100), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate(train, 4, 100), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate(train, 9, 100), 1.0f);
}

TEST(LearningRate, ConstantStaysAtLrAfterWarmup) {
  EXPECT_FLOAT_EQ(learning_rate(section(LrSchedule::kConstant), 50, 100), 1.0f);
}

TEST(LearningRate, CosineGoesFromLrToTheMinimumAtTheLastStep) {
  TrainSection train = section(LrSchedule::kCosine);
  EXPECT_FLOAT_EQ(learning_rate(train, 10, 100), 1.0f);
  EXPECT_NEAR(learning_rate(train, 99, 100), 0.1f, 1e-6);
  const float middle = learning_rate(train, 10 + 89 / 2, 100);
  EXPECT_NEAR(middle, 0.55f, 0.02f);
}

TEST(LearningRate, LinearDecaysByEqualAmounts) {
  TrainSection train = section(LrSchedule::kLinear);
  const float a = learning_rate(train, 20, 100), b = learning_rate(train, 30, 100),
              c = learning_rate(train, 40, 100);
  EXPECT_NEAR(a - b, b - c, 1e-6);
  EXPECT_NEAR(learning_rate(train, 99, 100), 0.1f, 1e-6);
}

}  // namespace
}  // namespace recforge
