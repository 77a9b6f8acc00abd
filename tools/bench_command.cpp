// `recforge bench`: `train-step` (tools/train_step_bench.h), `kernels` (tools/kernel_bench.h) and
// `llm` (tools/llm_bench.h).
#include <memory>

#include "tools/commands.h"
#include "tools/llm_bench.h"
#include "tools/train_step_bench.h"

namespace recforge {

void register_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto options = std::make_shared<TrainStepOptions>();
  TrainStepShape& shape = options->overrides;
  CLI::App* step = bench->add_subcommand(
      "train-step",
      "Median time of a full training step (forward, loss, backward, AdamW), tokens/s and MFU");
  step->add_option("--preset", options->preset, "model and batch shape")
      ->capture_default_str()
      ->check(CLI::IsMember({"beauty", "gpt2-small"}));
  step->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  step->add_option("--precision", options->precision, "fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  step->add_option("--threads", options->threads, "CPU threads (default: all)");
  step->add_option("--warmup", options->warmup, "untimed steps first")
      ->capture_default_str()
      ->check(at_least(0));
  step->add_option("--steps,--repeats", options->steps, "timed steps")
      ->capture_default_str()
      ->check(at_least(1));
  step->add_option("--sequences", shape.sequences, "sequences per batch (default: the preset's)")
      ->check(at_least(1));
  step->add_option("--length", shape.length, "tokens per sequence (default: the preset's)")
      ->check(at_least(1));
  step->add_option("--vocab", shape.vocab, "vocabulary size (default: the preset's)")
      ->check(at_least(1));
  step->add_option("--d-model", shape.d_model, "model width (default: the preset's)")
      ->check(at_least(1));
  step->add_option("--layers", shape.layers, "layers (default: the preset's)")->check(at_least(1));
  step->add_option("--heads", shape.heads, "attention heads (default: the preset's)")
      ->check(at_least(1));
  step->add_option("--peak-size", options->peak_size,
                   "n of the n^3 GEMM measuring the peak (default: 8192 on CUDA, 2048 on the CPU)")
      ->check(at_least(1));
  step->add_option("--json", options->json, "also write every reported field to this JSON file");
  step->callback([options] { run_train_step_bench(*options); });
  register_kernel_bench_command(*bench);
  register_llm_bench_command(*bench);
}

void register_llm_bench_command(CLI::App& bench) {
  auto options = std::make_shared<LlmBenchOptions>();
  CLI::App* llm = bench.add_subcommand(
      "llm", "A pretrained LLM's prefill, decode and LoRA fine-tuning tokens/s, and peak memory");
  llm->add_option("--model", options->model, "GGUF file or Hugging Face model directory")
      ->required();
  llm->add_option("--only", options->only, "one workload: prefill, decode or lora")
      ->check(CLI::IsMember({"prefill", "decode", "lora"}));
  llm->add_option("--prompt-tokens", options->prompt_tokens, "prefill length")
      ->capture_default_str()
      ->check(at_least(1));
  llm->add_option("--new-tokens", options->new_tokens, "greedy tokens decoded")
      ->capture_default_str()
      ->check(at_least(2));
  llm->add_option("--lora-batch", options->lora_batch, "sequences per LoRA step")
      ->capture_default_str()
      ->check(at_least(1));
  llm->add_option("--lora-length", options->lora_length, "tokens per LoRA sequence")
      ->capture_default_str()
      ->check(at_least(2));
  llm->add_option("--lora-rank", options->lora_rank, "adapter rank (q_proj and v_proj)")
      ->capture_default_str()
      ->check(at_least(1));
  llm->add_option("--steps", options->steps, "timed LoRA steps")
      ->capture_default_str()
      ->check(at_least(1));
  llm->add_option("--repeats", options->repeats, "timed generations")
      ->capture_default_str()
      ->check(at_least(1));
  llm->add_option("--threads", options->threads, "CPU threads (default: all)");
  llm->add_option("--precision", options->precision, "frozen linear weights in fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  llm->add_option("--json", options->json, "also write every reported field to this JSON file");
  llm->callback([options] { run_llm_bench(*options); });
}

}  // namespace recforge
