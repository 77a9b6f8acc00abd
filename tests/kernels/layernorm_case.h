// The layernorm reference tests' shapes and forward case (fp32 and bf16): inputs drawn as float,
// handed to a PyTorch reference run, and the outputs of both forwards (plain and fused residual)
// read back.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "tests/support/reference.h"

namespace recforge::testing {

struct LayerNormShape {
  int N, C;
};
// Small, odd and GPT-2-sized channel counts.
inline constexpr LayerNormShape kLayerNormShapes[] = {{257, 64}, {300, 200}, {311, 768}};

struct LayerNormForwardCase {
  LayerNormShape shape;
  std::vector<float> inp, weight, bias, a, b;  // residual = a + b
  std::vector<double> out, mean, rstd, residual, residual_out;

  // Draws the inputs (inp with a row-varying mean, weight around 1) and writes them for `ref`
  // under the prefix p.
  void put_inputs(std::mt19937_64& rng, ReferenceCase& ref, const std::string& p) {
    const size_t size = static_cast<size_t>(shape.N) * shape.C;
    inp = random_normal<float>(rng, size, 2.0);
    for (size_t i = 0; i < size; ++i) inp[i] += 0.5f * (i / shape.C % 7);
    weight = random_normal<float>(rng, shape.C, 0.2);
    for (float& w : weight) w += 1.0f;
    bias = random_normal<float>(rng, shape.C, 0.2);
    a = random_normal<float>(rng, size);
    b = random_normal<float>(rng, size, 0.5);
    const std::vector<int64_t> matrix{shape.N, shape.C}, vector{shape.C};
    ref.put(p + "inp", inp, matrix);
    ref.put(p + "weight", weight, vector);
    ref.put(p + "bias", bias, vector);
    ref.put(p + "a", a, matrix);
    ref.put(p + "b", b, matrix);
  }

  // Reads both forwards' reference outputs under the prefix p.
  void get_outputs(const ReferenceCase& ref, const std::string& p) {
    out = ref.result(p + "out");
    mean = ref.result(p + "mean");
    rstd = ref.result(p + "rstd");
    residual = ref.result(p + "residual");
    residual_out = ref.result(p + "residual_out");
  }
};

}  // namespace recforge::testing
