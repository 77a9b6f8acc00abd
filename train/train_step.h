// One optimizer step, one function for every caller — the trainer, `recforge bench train-step`,
// the demo and the tests:
//   1. zero the gradients;
//   2. the step's passes: forward and backward over each micro-batch, gradients accumulating; the
//      last backward starts reducing them over the ranks when the model has a reducer
//      (Decoder::set_gradient_reducer, llm.c's gpt2_backward_and_reduce);
//   3. the losses summed over the ranks; the reduction finished, or done now when it was not
//      started in the backward (ZeRO-1 reduce-scatters inside AdamW instead);
//   4. a non-finite loss stops here, before the parameters change;
//   5. AdamW with global-norm clipping over the trainable groups;
//   6. a parameter norm that is no longer finite stops too.
#pragma once

#include <cstdint>
#include <functional>

#include "model/decoder.h"
#include "train/dist/data_parallel.h"
#include "train/optim/optimizer.h"
#include "train/tasks/stage_task.h"

namespace recforge {

struct StepSettings {
  int64_t step = 0;            // optimizer steps done before this one
  float lr = 0.0f;             // this step's learning rate
  float max_grad_norm = 0.0f;  // <= 0: no clipping
};

// The forward and backward passes of one step over the model: a task's forward_backward over its
// micro-batches, or next_token_pass over one packed batch (train/tasks/next_token.h).
using StepPasses = std::function<StepLosses(Decoder<float>& model)>;

struct StepResult {
  StepLosses losses;  // summed over the ranks
  float grad_norm = 0.0f;
};

StepResult train_step(Decoder<float>& model, AdamW& optimizer, const StepPasses& passes,
                      const StepSettings& settings, const Distributed& dist = {});

// Throws recforge::Error when `loss` is NaN or infinite, naming the step (counted from 1).
void check_finite_loss(double loss, int64_t step);

}  // namespace recforge
