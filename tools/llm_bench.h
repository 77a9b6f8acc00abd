// `recforge bench llm`: a pretrained Llama-family model's speed on this machine — prefill and
// decode tokens/s of greedy generation with the key/value cache, and tokens/s of one LoRA
// fine-tuning step (forward, loss, backward, AdamW on the adapters; base frozen) — and the
// process's peak resident memory. --only runs one workload, so a fresh process per workload
// measures each one's peak memory (benchmarks/smollm2.sh does that, beside the PyTorch twin
// benchmarks/smollm2_pytorch.py).
#pragma once

#include <string>

namespace recforge {

struct LlmBenchOptions {
  std::string model;
  std::string only;  // "", "prefill", "decode" or "lora"
  int prompt_tokens = 128;
  int new_tokens = 64;
  int lora_batch = 4;
  int lora_length = 256;
  int lora_rank = 8;
  int steps = 5;
  int repeats = 3;
  int threads = 0;                 // 0: all
  std::string precision = "fp32";  // of the frozen base's linear weights
  std::string json;
};

void run_llm_bench(const LlmBenchOptions& options);

}  // namespace recforge
