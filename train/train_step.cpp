#include "train/train_step.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/global_norm.h"
#include "kernels/nvtx.h"

namespace recforge {
namespace {

// Each rank's losses are its share of the step's: their sum is the step's loss.
void sum_over_ranks(StepLosses& losses, const Distributed& dist) {
  if (!dist.parallel()) return;
  std::vector<double> values = {losses.loss, static_cast<double>(losses.tokens)};
  std::vector<std::string> keys;
  for (const auto& [key, value] : losses.parts.items()) {
    keys.push_back(key);
    values.push_back(value.get<double>());
  }
  dist.sum(values);
  losses.loss = values[0];
  losses.tokens = static_cast<int64_t>(values[1]);
  for (size_t k = 0; k < keys.size(); ++k) losses.parts[keys[k]] = values[2 + k];
}

// Data parallelism: every rank's gradients are its shard's share, so their sum is the whole step's
// gradient and every rank takes the same optimizer step.
void finish_gradient_reduction(const Decoder<float>& model, const AdamW& optimizer,
                               const Distributed& dist) {
  if (!dist.parallel()) return;
  if (model.has_gradient_reducer()) return dist.comm->finish_all_reduces();
  if (optimizer.zero1()) return;  // AdamW reduce-scatters them
  NvtxRange range("gradient all-reduce");
  for (const ParameterGroup& g : optimizer.groups()) {
    dist.comm->all_reduce_sum(const_cast<float*>(g.gradients), static_cast<size_t>(g.size));
  }
}

// A divergence that overflows the parameters stops before anything is evaluated or saved.
void check_finite_parameters(const Context& ctx, const AdamW& optimizer, int64_t step) {
  double squares = 0.0;
  for (const ParameterGroup& g : optimizer.groups()) {
    const double norm = global_norm(ctx, g.parameters, g.size);
    squares += norm * norm;
  }
  RECFORGE_CHECK(std::isfinite(squares), "training diverged at step ", step,
                 ": the parameters' norm is ", std::sqrt(squares),
                 " (lower the learning rate or enable gradient clipping)");
}

}  // namespace

void check_finite_loss(double loss, int64_t step) {
  RECFORGE_CHECK(std::isfinite(loss), "the loss is ", loss, " at step ", step,
                 ": training stopped before the update (lower the learning rate, enable gradient "
                 "clipping, or check the data)");
}

StepResult train_step(Decoder<float>& model, AdamW& optimizer, const StepPasses& passes,
                      const StepSettings& settings, const Distributed& dist) {
  NvtxRange range("step ", settings.step + 1);
  model.zero_gradients();
  StepResult result;
  result.losses = passes(model);
  sum_over_ranks(result.losses, dist);
  finish_gradient_reduction(model, optimizer, dist);
  check_finite_loss(result.losses.loss, settings.step + 1);
  result.grad_norm = optimizer.step(settings.lr, settings.max_grad_norm);
  check_finite_parameters(model.context(), optimizer, settings.step + 1);
  return result;
}

}  // namespace recforge
