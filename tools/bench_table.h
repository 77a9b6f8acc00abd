// The rows of `recforge bench kernels` and their markdown table. One row per (kernel, shape);
// benchmarks/kernels_pytorch.py prints the same columns so benchmarks/kernels.sh can join them.
#pragma once

#include <string>
#include <vector>

namespace recforge {

struct BenchRow {
  std::string kernel;          // e.g. "attention_fwd_bwd"
  std::string shape;           // e.g. "B=256 T=50 NH=2 HS=32 causal"
  std::string dtype = "fp32";  // the storage type of the op's operands: fp32 or bf16
  double ms = 0;               // median time of one call
  double work = 0;             // FLOPs (compute-bound) or bytes (bandwidth-bound) per call
  bool flops = true;           // work counts FLOPs (rate in TFLOP/s) or bytes (rate in GB/s)
  double memory_mib =
      -1;  // the op's own device memory (inputs, outputs, scratch); < 0: not measured
};

struct BenchPeaks {
  double tflops = 0;       // the fp32 GEMM ceiling the compute-bound fp32 rows are a fraction of
  double gbps = 0;         // the copy ceiling the bandwidth-bound rows are a fraction of
  double bf16_tflops = 0;  // the bf16 GEMM ceiling the compute-bound bf16 rows are a fraction of
};

// "| kernel | shape | dtype | median ms | rate | unit | % of peak | memory MiB |" and one line a
// row.
std::string markdown_table(const std::vector<BenchRow>& rows, const BenchPeaks& peaks);

}  // namespace recforge
