// The float64 finite-difference check of a model's backward: for a few random entries of every
// tensor of a layout, the analytic gradient against (L(θ + h) − L(θ − h)) / 2h.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/parameters.h"
#include "tests/support/reference.h"

namespace recforge::testing {

struct GradcheckSettings {
  int entries_per_tensor = 5;
  double step = 1e-5;
  double tolerance = 1e-5;
};

// Reports and checks, per tensor of `layout`, the worst relative difference between `analytic`
// and the central difference over random entries; `loss_at(theta)` is the loss at a perturbed copy
// of `values`. Gradients below 1e-4 are compared in absolute terms: the central difference itself
// carries ~1e-10 of rounding noise.
template <typename LossAt>
void expect_gradients_match(const ParameterLayout& layout, const std::vector<double>& values,
                            const std::vector<double>& analytic, LossAt loss_at,
                            std::mt19937_64& rng, const std::string& label,
                            const GradcheckSettings& settings = {}) {
  for (const ParameterInfo& info : layout.tensors()) {
    double worst = 0.0;
    for (int e = 0; e < settings.entries_per_tensor; ++e) {
      const int64_t i = info.offset + std::uniform_int_distribution<int64_t>(0, info.size - 1)(rng);
      std::vector<double> theta = values;
      theta[i] = values[i] + settings.step;
      const double up = loss_at(theta);
      theta[i] = values[i] - settings.step;
      const double down = loss_at(theta);
      const double numeric = (up - down) / (2 * settings.step);
      const double scale = std::max({std::abs(numeric), std::abs(analytic[i]), 1e-4});
      worst = std::max(worst, std::abs(numeric - analytic[i]) / scale);
    }
    report_error(label + info.name, worst);
    EXPECT_LT(worst, settings.tolerance) << info.name;
  }
}

}  // namespace recforge::testing
