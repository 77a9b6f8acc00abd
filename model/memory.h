// The memory a decoder takes to train, from its configuration alone, so a run that cannot fit
// stops before it allocates anything (a config with 10⁸ layers would otherwise allocate until the
// kernel kills the process). Counted in bytes, in double: a hostile config cannot overflow it.
//   parameters   P values: the token and position tables, 4·C² + 2·F·C weights and
//                9·C + F biases and norm gains per layer, ln_f; P = V·C + T·C + L·(4C² + 2FC +
//                9C + F) + 2C
//   training     the parameters, their gradients and AdamW's two moments (fp32 each), a bf16
//                copy of the blocks in bf16 mode, and on the CPU the host copies a load makes
//   activations  per packed token: the embeddings, each layer's norm outputs and statistics,
//                qkv, attention output and lse, projections, residuals, the MLP's two [F] rows,
//                and the backward's scratch; C + L·(10C + 2F + NH + 4) + 9C + F + NH + 2 values
#pragma once

#include <cstdint>
#include <string>

#include "kernels/context.h"
#include "model/config.h"

namespace recforge {

struct MemoryEstimate {
  double parameters = 0;   // P, the number of parameter values
  double weights = 0;      // bytes: parameters, gradients, moments, copies
  double activations = 0;  // bytes for max_tokens packed tokens

  double total() const { return weights + activations; }
};

MemoryEstimate training_memory(const ModelConfig& config, int64_t max_tokens, Device device);

// "23.7 GB".
std::string format_bytes(double bytes);

}  // namespace recforge
