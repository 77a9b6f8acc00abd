// The bf16 decoder on the GPU against the CPU backend's bf16 emulation (same rounding points) and
// against fp32: a few AdamW steps, then a 100-step loss curve.
#include <algorithm>

#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/support/loss_curve.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace recforge::gpu_test {
namespace {

class DecoderBf16GpuTest : public GpuTest {};

TEST_F(DecoderBf16GpuTest, StepsMatchTheCpuBf16Backend) {
  const ModelConfig config = testing::loss_curve_config(Precision::kBf16);
  const PackedBatch host = testing::planted_rule_batch(0);
  const std::vector<float> initial =
      random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f);
  std::vector<std::vector<float>> gradients, parameters;
  std::vector<double> losses;
  for (const Context& ctx : {cpu_, cuda_}) {
    Decoder<float> model(ctx, config, host.num_tokens());
    model.load_parameters(initial);
    DeviceBatch batch(ctx.device(), host, config);
    AdamW optimizer(
        ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
        AdamWConfig{});
    for (int step = 0; step < 3; ++step) {
      StepResult result = train_step(model, optimizer, batch,
                                     {AttentionMask::kCausal, true, 5u + step}, 1e-3f, 1.0f);
      losses.push_back(result.loss);
      if (step == 0) gradients.push_back(model.gradients().download());
    }
    parameters.push_back(model.parameters().download());
  }
  for (int step = 0; step < 3; ++step) {
    const double error = std::abs(losses[3 + step] - losses[step]) / losses[step];
    std::cout << "[ rel_err ] decoder.bf16.loss.step" << step << ": " << error << std::endl;
    EXPECT_LT(error, 1e-3);
  }
  const double gradient_error = relative_error(gradients[1], gradients[0]);
  const double parameter_error = relative_error(parameters[1], parameters[0]);
  std::cout << "[ rel_err ] decoder.bf16.gradients: " << gradient_error << "\n"
            << "[ rel_err ] decoder.bf16.parameters_after_3_steps: " << parameter_error
            << std::endl;
  EXPECT_LT(gradient_error, 2e-2);
  EXPECT_LT(parameter_error, 1e-3);
}

TEST_F(DecoderBf16GpuTest, LossCurveFollowsFp32Over100Steps) {
  const std::vector<double> fp32 = testing::loss_curve(cpu_, Precision::kFp32, 100);
  const std::vector<double> bf16 = testing::loss_curve(cuda_, Precision::kBf16, 100);
  double largest = 0.0, sum = 0.0;
  for (size_t step = 0; step < fp32.size(); ++step) {
    const double difference = std::abs(bf16[step] - fp32[step]) / fp32[step];
    largest = std::max(largest, difference);
    sum += difference;
  }
  std::cout << "[ rel_err ] loss cuda bf16 vs cpu fp32: mean " << sum / fp32.size() << ", max "
            << largest << "; fp32 " << fp32.front() << " → " << fp32.back() << ", bf16 "
            << bf16.front() << " → " << bf16.back() << std::endl;
  EXPECT_LT(std::abs(bf16[0] - fp32[0]) / fp32[0], 1e-2);
  EXPECT_LT(sum / fp32.size(), 3e-2);
  EXPECT_LT(bf16.back(), 0.5 * bf16.front());
  EXPECT_LT(std::abs(bf16.back() - fp32.back()) / fp32.back(), 0.1);
}

}  // namespace
}  // namespace recforge::gpu_test
