#include "train/tasks/next_token.h"

namespace recforge {

StepLosses next_token_pass(Decoder<float>& model, const DeviceBatch& batch,
                           const ForwardOptions& options) {
  model.forward(batch, options);
  StepLosses losses;
  losses.loss = model.output_loss(batch, true);
  losses.tokens = batch.num_tokens();
  model.backward(batch, true);
  return losses;
}

}  // namespace recforge
