#include "train/text/text_objectives.h"

#include "kernels/check.h"

namespace recforge {
namespace {

DeviceBatch upload(const LlamaModel<float>& model, const TextBatch& batch) {
  return DeviceBatch(model.context().device(), batch.host, model.config().batch_limits());
}

std::vector<double> log_probs_of(std::vector<double> losses) {
  for (double& loss : losses) loss = -loss;
  return losses;
}

}  // namespace

double sft_forward_backward(LlamaModel<float>& model, const TextBatch& batch, double step_tokens,
                            const SftOptions& options, bool last_of_step) {
  RECFORGE_CHECK(step_tokens > 0, "an SFT step needs answer tokens");
  const DeviceBatch device = upload(model, batch);
  model.forward(device, {.training = options.training, .dropout_seed = options.dropout_seed});
  const std::vector<double> weights(batch.host.num_sequences(), 1.0 / step_tokens);
  const double loss = model.weighted_sequence_loss(device, batch.host, weights, true);
  model.backward(device, last_of_step);
  return loss;
}

std::vector<double> answer_log_probs(LlamaModel<float>& model, const TextBatch& batch,
                                     bool use_adapters) {
  const DeviceBatch device = upload(model, batch);
  model.forward(device, {.use_adapters = use_adapters});
  return log_probs_of(model.sequence_losses(device, batch.host));
}

void DpoSums::add(const DpoSums& other) {
  loss += other.loss;
  chosen_reward += other.chosen_reward;
  rejected_reward += other.rejected_reward;
  margin += other.margin;
  accuracy += other.accuracy;
  examples += other.examples;
}

DpoSums dpo_forward_backward(LlamaModel<float>& model, const TextBatch& batch,
                             std::span<const double> reference, const DpoParams& params,
                             double loss_scale, bool last_of_step) {
  RECFORGE_CHECK(reference.size() == static_cast<size_t>(batch.host.num_sequences()),
                 "DPO: ", reference.size(), " reference log-probabilities for ",
                 batch.host.num_sequences(), " sequences");
  const DeviceBatch device = upload(model, batch);
  model.forward(device);
  const std::vector<double> policy = log_probs_of(model.sequence_losses(device, batch.host));
  std::vector<double> weights(policy.size());
  DpoSums sums;
  size_t first = 0;
  for (int K : batch.group_sizes) {
    std::vector<double> dpolicy(K);
    double metrics[kDpoNumMetrics];
    sums.loss += dpo_pair_loss<double>(dpolicy.data(), metrics, policy.data() + first,
                                       reference.data() + first, K, params, loss_scale);
    for (int k = 0; k < K; ++k) weights[first + k] = -dpolicy[k];
    sums.chosen_reward += metrics[kDpoRewardChosen];
    sums.rejected_reward += metrics[kDpoRewardRejected];
    sums.margin += metrics[kDpoMargin];
    sums.accuracy += metrics[kDpoAccuracy];
    ++sums.examples;
    first += K;
  }
  model.weighted_sequence_loss(device, batch.host, weights, true);
  model.backward(device, last_of_step);
  return sums;
}

}  // namespace recforge
