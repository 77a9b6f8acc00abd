#include "train/step.h"

#include <cmath>

namespace recforge {

void check_finite_loss(double loss, int step) {
  RECFORGE_CHECK(std::isfinite(loss), "the loss is ", loss, " at step ", step,
                 ": training stopped before the update (lower the learning rate, enable gradient "
                 "clipping, or check the data)");
}

StepResult train_step(Decoder<float>& model, AdamW& optimizer, const DeviceBatch& batch,
                      const ForwardOptions& options, float lr, float max_grad_norm) {
  model.zero_gradients();
  model.forward(batch, options);
  StepResult result;
  result.loss = model.output_loss(batch, true);
  check_finite_loss(result.loss, optimizer.steps_taken() + 1);
  model.backward(batch);
  result.grad_norm = optimizer.step(lr, max_grad_norm);
  return result;
}

}  // namespace recforge
