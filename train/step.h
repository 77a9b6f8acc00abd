// One optimization step of next-token prediction on a packed batch: forward, the fused
// full-softmax loss over the vocabulary, backward, AdamW. A non-finite loss stops with an error
// before the parameters are touched.
#pragma once

#include "model/decoder.h"
#include "train/optim/optimizer.h"

namespace recforge {

struct StepResult {
  double loss = 0.0;
  float grad_norm = 0.0f;
};

StepResult train_step(Decoder<float>& model, AdamW& optimizer, const DeviceBatch& batch,
                      const ForwardOptions& options, float lr, float max_grad_norm);

// Throws recforge::Error when `loss` is NaN or infinite, naming the step.
void check_finite_loss(double loss, int step);

}  // namespace recforge
