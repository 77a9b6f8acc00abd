// A tiny Llama model with random weights and LoRA adapters on every linear layer, and random text
// examples for it: what the text objective tests train.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "model/llama/model.h"
#include "tests/model/llama/small_llama.h"
#include "tests/support/reference.h"
#include "train/text/text_examples.h"

namespace recforge::testing {

constexpr int kTinyVocab = 89;

inline LlamaLoraConfig tiny_lora() {
  LlamaLoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8.0f;
  lora.targets = {"all_linear"};
  return lora;
}

struct TinyTextModel {
  LlamaConfig config = small_llama_config(kTinyVocab);
  std::vector<float> parameters, adapters;  // adapters random (B ≠ 0) unless fresh

  TinyTextModel(std::mt19937_64& rng, bool fresh_adapters) {
    parameters = random_normal<float>(rng, llama_layout(config).total_size(), 0.1);
    for (const ParameterInfo& info : llama_layout(config).tensors()) {
      if (info.shape.size() != 1) continue;  // norm gains near 1
      for (int64_t i = 0; i < info.size; ++i) parameters[info.offset + i] += 1.0f;
    }
    const ParameterLayout lora_layout = llama_lora_layout(config, tiny_lora());
    adapters = fresh_adapters ? llama_lora_initial(lora_layout, 3)
                              : random_normal<float>(rng, lora_layout.total_size(), 0.1);
  }

  std::unique_ptr<LlamaModel<float>> build(int max_tokens = 512) const {
    auto model = std::make_unique<LlamaModel<float>>(Context::cpu(), config, max_tokens, false);
    model->load_parameters(parameters);
    model->enable_lora(tiny_lora(), 0);
    model->load_adapter_parameters(adapters);
    return model;
  }
};

// Examples with prompts of 3..12 tokens and `answers` answers of 1..4 tokens.
inline std::vector<TextExample> random_text_examples(std::mt19937_64& rng, int count, int answers) {
  std::vector<TextExample> examples(count);
  for (TextExample& e : examples) {
    e.prompt = random_ints(rng, 3 + rng() % 10, 0, kTinyVocab);
    for (int a = 0; a < answers; ++a)
      e.answers.push_back(random_ints(rng, 1 + rng() % 4, 0, kTinyVocab));
    e.chosen = static_cast<int>(rng() % answers);
  }
  return examples;
}

}  // namespace recforge::testing
