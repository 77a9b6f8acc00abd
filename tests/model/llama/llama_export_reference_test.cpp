// What recforge exports, read by the Hugging Face libraries themselves: a random Llama model
// (grouped heads, untied output layer) saved with save_llama_hf_directory and a random LoRA adapter
// saved with save_llama_peft_adapter are loaded by `transformers` and `peft`
// (tests/reference/hf_transformers.py under RECFORGE_HF_PYTHON, a Python with torch 2.x,
// transformers and peft); their logits for a token sequence must match recforge's, with and without
// the adapter. Skips without RECFORGE_HF_PYTHON (CI does not install torch 2.x).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/llama/export.h"
#include "model/llama/model.h"
#include "tests/model/llama/small_llama.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/support/npy.h"
#include "tests/support/reference.h"

#ifndef RECFORGE_SOURCE_DIR
#error "RECFORGE_SOURCE_DIR must point at the source tree"
#endif

namespace recforge {
namespace {

namespace fs = std::filesystem;

LlamaConfig export_config() {
  LlamaConfig config =
      testing::small_llama_config(static_cast<int>(testing::tiny_spec().tokens.size()));
  config.rope_base = 10000.0f;
  config.tied_embeddings = false;
  return config;
}

class LlamaExportReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    python_ = testing::environment("RECFORGE_HF_PYTHON");
    if (!python_) {
      GTEST_SKIP() << "RECFORGE_HF_PYTHON (a Python with torch 2.x, transformers, peft) is not set";
    }
    std::mt19937_64 rng(testing::fresh_seed());
    const LlamaConfig config = export_config();
    model_ = std::make_unique<LlamaModel<float>>(Context::cpu(), config, 32, false);
    values_ = testing::random_normal<float>(rng, model_->layout().total_size(), 0.3);
    model_->load_parameters(values_);
    lora_.rank = 4;
    lora_.alpha = 8.0f;
    lora_.targets = {"q_proj", "v_proj", "down_proj"};
    model_->enable_lora(lora_, 1);
    adapters_ = testing::random_normal<float>(rng, model_->lora_layout().total_size(), 0.2);
    model_->load_adapter_parameters(adapters_);
    tokens_ = testing::random_ints(rng, 13, 0, config.vocab_size);
    save_llama_hf_directory(scratch_.dir() / "model", config, values_, testing::tiny_spec());
    save_llama_peft_adapter(scratch_.dir() / "adapter", config, lora_, adapters_, "tiny");
  }

  // recforge's logits [T, V] of tokens_, with or without the adapters.
  std::vector<float> recforge_logits(bool adapters) {
    PackedBatch host = empty_batch();
    host.add_sequence(tokens_);
    DeviceBatch batch(Device::kCpu, host, model_->config().batch_limits());
    model_->forward(batch, {AttentionMask::kCausal, adapters});
    std::vector<float> logits(tokens_.size() * model_->config().vocab_size);
    model_->logits(logits.data(), static_cast<int>(tokens_.size()));
    return logits;
  }

  std::vector<double> transformers_logits(bool adapters) {
    const fs::path out = scratch_.dir() / (adapters ? "peft.npy" : "base.npy");
    std::string line =
        std::string(python_) + " " + RECFORGE_SOURCE_DIR + "/tests/reference/hf_transformers.py '" +
        (scratch_.dir() / "model").string() + "' --all-positions --out '" + out.string() +
        "' --ids '" + nlohmann::json(tokens_).dump() + "'" +
        (adapters ? " --adapter '" + (scratch_.dir() / "adapter").string() + "'" : std::string()) +
        " > /dev/null";
    EXPECT_EQ(std::system(line.c_str()), 0) << line;
    return testing::read_npy(out).as<double>();
  }

  const char* python_ = nullptr;
  std::unique_ptr<LlamaModel<float>> model_;
  LlamaLoraConfig lora_;
  std::vector<float> values_, adapters_;
  std::vector<int32_t> tokens_;
  testing::ReferenceCase scratch_{"llama.py", "unused"};  // a temporary directory
};

TEST_F(LlamaExportReferenceTest, TransformersReadsTheExportedModel) {
  const double error = testing::relative_error(recforge_logits(false), transformers_logits(false));
  testing::report_error("llama.export.transformers.logits", error);
  EXPECT_LT(error, 1e-5);
}

TEST_F(LlamaExportReferenceTest, PeftReadsTheExportedAdapter) {
  const std::vector<float> with = recforge_logits(true);
  const double error = testing::relative_error(with, transformers_logits(true));
  testing::report_error("llama.export.peft.logits", error);
  EXPECT_LT(error, 1e-5);
  // The adapter changes the logits, so the match above is not the base model's.
  const std::vector<float> without = recforge_logits(false);
  EXPECT_GT(testing::relative_error(with, std::vector<double>(without.begin(), without.end())),
            1e-3);
}

}  // namespace
}  // namespace recforge
