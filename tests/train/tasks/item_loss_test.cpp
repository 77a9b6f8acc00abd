// The item loss on top of the decoder: full softmax over the item rows with a temperature and
// next-K weights, checked against a brute-force computation from the model's logits; sampled
// softmax's negatives are seeded and never depend on anything else.
#include "train/tasks/item_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cross_entropy.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

constexpr int32_t kNumItems = 30;

class ItemLossTest : public ::testing::Test {
 protected:
  ItemLossTest() : model_(Context::cpu(), config(), 64) {
    model_.load_parameters(initial_parameters(model_.config(), model_.layout(), 3, 0.3f));
    sequences_ = {{1, 5, 7, 2, 9}, {4, 4, 8}, {0, 29, 13, 6}};
    for (const auto& s : sequences_) views_.push_back(s);
  }

  static ModelConfig config() {
    ModelConfig c;
    c.vocab_size = vocabulary_size(kNumItems);
    c.max_len = 8;
    c.d_model = 32;
    c.n_layer = 1;
    c.n_head = 1;
    return c;
  }

  // Forward on the batch's inputs; returns the item logits [N, kNumItems].
  std::vector<float> forward(const ObjectiveBatch& batch) {
    DeviceBatch device_batch(Device::kCpu, batch.inputs, model_.config());
    model_.forward(device_batch, {AttentionMask::kCausal, false, 0});
    const int N = batch.inputs.num_tokens(), V = model_.config().vocab_size;
    std::vector<float> all(static_cast<size_t>(N) * V), items;
    model_.logits(all.data(), N);
    for (int n = 0; n < N; ++n) {
      items.insert(items.end(), all.begin() + n * V + kFirstItemToken, all.begin() + (n + 1) * V);
    }
    return items;
  }

  // Σ_{n,k} w_k·CE(logits_n / τ, t_nk) / Σ w_k over the valid targets, and its gradient with
  // respect to the hidden states: Σ_k w_k (softmax − onehot(t_nk))·E / τ / Σ w.
  struct Expected {
    double loss = 0.0;
    std::vector<double> dhidden;
  };
  Expected brute_force(const ObjectiveBatch& batch, const std::vector<float>& logits, float tau,
                       const std::vector<float>& weights) {
    const int N = batch.inputs.num_tokens(), C = model_.config().d_model;
    std::vector<float> params = model_.parameters().download();
    const float* items = params.data() + model_.layout().offset("wte") + kFirstItemToken * C;
    Expected e{0.0, std::vector<double>(static_cast<size_t>(N) * C, 0.0)};
    double total_weight = 0.0;
    for (int n = 0; n < N; ++n) {
      std::vector<double> p(kNumItems);
      double max = -1e30, sum = 0.0;
      for (int v = 0; v < kNumItems; ++v)
        max = std::max(max, logits[n * kNumItems + v] / double(tau));
      for (int v = 0; v < kNumItems; ++v)
        sum += p[v] = std::exp(logits[n * kNumItems + v] / tau - max);
      for (int k = 0; k < batch.K; ++k) {
        const int32_t t = batch.targets[n * batch.K + k];
        if (t == kIgnoreIndex) continue;
        const double w = weights.empty() ? 1.0 : weights[k];
        total_weight += w;
        e.loss += w * (max + std::log(sum) - logits[n * kNumItems + t] / tau);
        for (int v = 0; v < kNumItems; ++v) {
          const double g = w * (p[v] / sum - (v == t)) / tau;
          for (int c = 0; c < C; ++c) e.dhidden[n * C + c] += g * items[v * C + c];
        }
      }
    }
    e.loss /= total_weight;
    for (double& g : e.dhidden) g /= total_weight;
    return e;
  }

  void expect_matches_brute_force(float tau, std::vector<float> weights, int next_k) {
    ObjectiveBatch batch = make_next_items_batch(views_, next_k, 8);
    std::vector<float> logits = forward(batch);
    ItemLossConfig loss_config;
    loss_config.temperature = tau;
    loss_config.k_weights = weights;
    ItemLoss loss(model_.context(), loss_config, kNumItems, {}, 64);
    model_.zero_gradients();
    const double value = loss.compute(model_, batch, 1.0f, true, 0, 0);
    Expected expected = brute_force(batch, logits, tau, weights);
    EXPECT_NEAR(value, expected.loss, 1e-5 * std::abs(expected.loss));
    const int N = batch.inputs.num_tokens(), C = model_.config().d_model;
    double diff = 0.0, norm = 0.0;
    for (int i = 0; i < N * C; ++i) {
      diff += std::pow(model_.hidden_gradient()[i] - expected.dhidden[i], 2);
      norm += std::pow(expected.dhidden[i], 2);
    }
    const double relative_error = std::sqrt(diff / norm);
    std::printf("[  rel_err ] dhidden (tau %.2f, K %d): %.2e\n", tau, next_k, relative_error);
    EXPECT_LT(relative_error, 1e-5);
  }

  Decoder<float> model_;
  std::vector<std::vector<int32_t>> sequences_;
  std::vector<ItemSequence> views_;
};

TEST_F(ItemLossTest, FullSoftmaxMatchesBruteForce) { expect_matches_brute_force(1.0f, {}, 1); }

TEST_F(ItemLossTest, TemperatureDividesTheLogits) { expect_matches_brute_force(0.5f, {}, 1); }

TEST_F(ItemLossTest, NextKTargetsAreWeightedAndNormalized) {
  expect_matches_brute_force(1.3f, {1.0f, 0.5f, 0.25f}, 3);
}

TEST_F(ItemLossTest, SampledSoftmaxWithSameSeedAndStreamGivesTheSameLoss) {
  ObjectiveBatch batch = make_next_items_batch(views_, 1, 8);
  forward(batch);
  ItemLossConfig sampled;
  sampled.sampled = true;
  sampled.negatives = 8;
  ItemLoss loss(model_.context(), sampled, kNumItems, {}, 64);
  const double a = loss.compute(model_, batch, 1.0f, false, 5, 1);
  const double b = loss.compute(model_, batch, 1.0f, false, 5, 1);
  const double c = loss.compute(model_, batch, 1.0f, false, 5, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_GT(a, 0.0);
}

TEST_F(ItemLossTest, PopularitySamplingNeedsOneCountPerItem) {
  ItemLossConfig sampled;
  sampled.sampled = true;
  sampled.popularity = true;
  const std::vector<int64_t> too_few(kNumItems - 1, 1);
  EXPECT_THROW(ItemLoss(model_.context(), sampled, kNumItems, too_few, 64), Error);
}

}  // namespace
}  // namespace recforge
