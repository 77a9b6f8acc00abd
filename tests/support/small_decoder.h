// The small decoder of the precision tests (tests/support/loss_curve.h,
// tests/model/decoder_test.cpp): two layers, two heads of 32 channels, dropout 0.1.
#pragma once

#include "model/config.h"

namespace recforge::testing {

inline ModelConfig small_decoder_config(Precision precision, int vocab_size, int max_len) {
  ModelConfig config;
  config.vocab_size = vocab_size;
  config.max_len = max_len;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  config.precision = precision;
  return config;
}

}  // namespace recforge::testing
