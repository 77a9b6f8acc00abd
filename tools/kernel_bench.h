// `recforge bench kernels`: times our CUDA kernels at the shapes of issue 6 (attention forward +
// backward, the fused classifier cross-entropy, LoRA vs the plain matmul, layernorm, gelu, AdamW)
// against the device's measured ceilings, and writes a markdown table.
// benchmarks/kernels_pytorch.py times the PyTorch equivalents with the same row keys.
#pragma once

#include <string>

namespace recforge {

struct KernelBenchOptions {
  int warmup = 10;
  int repeats = 50;
  std::string output;  // markdown file; empty: stdout only
  std::string commit;  // shown in the header
};

// Runs every shape on CUDA device 0. Defined only in CUDA builds (kernel_bench.cpp).
void run_kernel_bench(const KernelBenchOptions& options);

}  // namespace recforge
