// `recforge bench train-step`: times the trainer's own training step (train/train_step.h) of a
// next-item pre-training stage (objective nbp: forward, the fused full-softmax loss over the item
// rows of the vocabulary, backward, AdamW with clipping) on a dataset of generated sequences of a
// named model shape, and reports tokens/s, model FLOPs (tools/model_flops.h; the output layer
// counted over the whole vocabulary, the 16 special rows included), achieved TFLOP/s, the device's
// GEMM peak measured in the same process (tools/measured_peak.h) and MFU. The first line is the
// median step time, "N ms".
// benchmarks/train_step_pytorch.py is the same model and optimizer in PyTorch, with the same
// presets, lines and JSON fields; benchmarks/end_to_end.sh runs both and tabulates them.
#pragma once

#include <string>

namespace recforge {

// A model and batch shape; in overrides, a field <= 0 keeps the preset's value.
struct TrainStepShape {
  int sequences = 0;  // B, every sequence `length` tokens long
  int length = 0;     // T
  int vocab = 0;      // V
  int d_model = 0;    // C
  int layers = 0;     // L
  int heads = 0;      // NH
};

// "beauty": the Amazon Beauty recommender (d_model 64, 2 layers, 2 heads, 128 × 50 tokens,
// vocabulary 12,102); "gpt2-small": 12 layers, 768 wide, 12 heads, 8 × 1024 tokens, GPT-2's
// vocabulary of 50,257. Throws recforge::Error for another name.
TrainStepShape train_step_preset(const std::string& name);

struct TrainStepOptions {
  std::string preset = "beauty";
  TrainStepShape overrides;
  std::string device = "cpu";
  std::string precision = "fp32";
  int threads = 0;  // CPU threads, 0: all
  int warmup = 3;
  int steps = 20;
  int peak_size = 0;  // n of the n³ peak GEMM; 0: 8192 on CUDA, 2048 on the CPU
  std::string json;   // also write every field here; empty: no file
};

void run_train_step_bench(const TrainStepOptions& options);

}  // namespace recforge
