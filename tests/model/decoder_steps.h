// A few AdamW steps of the whole decoder on one backend, and the comparison of two such runs: the
// decoder GPU tests (fp32 and bf16) run the same steps on the CPU and the CUDA backend.
#pragma once

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "tests/support/backends.h"
#include "train/optim/optimizer.h"
#include "train/tasks/next_token.h"
#include "train/train_step.h"

namespace recforge::testing {

// What the steps leave behind: the loss of every step, the gradients of the first step and the
// parameters after the last.
struct StepsRun {
  std::vector<double> losses;
  std::vector<float> first_gradients, parameters;
};

// `steps` AdamW steps (lr 1e-3, gradient clip 1, dropout seed 5 + step) on `ctx` over the same
// packed batch, from parameters drawn uniformly in [-0.1, 0.1] with seed 9.
inline StepsRun run_adamw_steps(const Context& ctx, const ModelConfig& config,
                                const PackedBatch& host, AttentionMask mask, int steps) {
  Decoder<float> model(ctx, config, host.num_tokens());
  model.load_parameters(random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f));
  DeviceBatch batch(ctx.device(), host, config);
  AdamW optimizer(
      ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{});
  StepsRun run;
  for (int step = 0; step < steps; ++step) {
    const ForwardOptions options{mask, true, 5u + step};
    auto passes = [&](Decoder<float>& m) { return next_token_pass(m, batch, options); };
    run.losses.push_back(train_step(model, optimizer, passes, {step, 1e-3f, 1.0f}).losses.loss);
    if (step == 0) run.first_gradients = model.gradients().download();
  }
  run.parameters = model.parameters().download();
  return run;
}

struct StepsTolerance {
  double loss, gradients, parameters;
};

// Prints and checks the relative errors of `gpu` against `cpu` as "<name>.loss.step<i>",
// "<name>.gradients" and "<name>.parameters_after_<steps>_steps".
inline void expect_steps_close(const std::string& name, const StepsRun& gpu, const StepsRun& cpu,
                               StepsTolerance tolerance) {
  for (size_t step = 0; step < cpu.losses.size(); ++step) {
    const double error = std::abs(gpu.losses[step] - cpu.losses[step]) / cpu.losses[step];
    std::cout << "[ rel_err ] " << name << ".loss.step" << step << ": " << error << std::endl;
    EXPECT_LT(error, tolerance.loss) << "step " << step;
  }
  const double gradient_error = relative_error(gpu.first_gradients, cpu.first_gradients);
  const double parameter_error = relative_error(gpu.parameters, cpu.parameters);
  std::cout << "[ rel_err ] " << name << ".gradients: " << gradient_error << "\n"
            << "[ rel_err ] " << name << ".parameters_after_" << cpu.losses.size()
            << "_steps: " << parameter_error << std::endl;
  EXPECT_LT(gradient_error, tolerance.gradients);
  EXPECT_LT(parameter_error, tolerance.parameters);
}

}  // namespace recforge::testing
