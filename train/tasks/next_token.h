// Next-token prediction over one packed batch, the language-model objective on whatever tokens the
// batch holds: forward, the model's fused full-vocabulary cross-entropy over the batch's targets
// (Decoder::output_loss, the mean over the counted targets), backward as the step's only pass.
// The demo and the decoder's multi-step tests train with it through train_step
// (train/train_step.h).
#pragma once

#include "model/decoder.h"
#include "train/tasks/stage_task.h"

namespace recforge {

StepLosses next_token_pass(Decoder<float>& model, const DeviceBatch& batch,
                           const ForwardOptions& options);

}  // namespace recforge
