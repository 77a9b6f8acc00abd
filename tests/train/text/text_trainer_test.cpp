// The text trainer end to end on a tiny Llama model saved as a Hugging Face directory and a
// generated preference prompt file: SFT then DPO, the PEFT adapters and final metrics it leaves,
// and a run interrupted and resumed that ends with the same adapters, bit for bit.
#include "train/text/text_trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/llama/export.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/support/errors.h"
#include "tests/train/text/tiny_text_model.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TextTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recforge_text_trainer_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::mt19937_64 rng(testing::fresh_seed());
    config_ = testing::small_llama_config(static_cast<int>(testing::tiny_spec().tokens.size()));
    config_.max_len = 256;
    std::vector<float> parameters =
        testing::random_normal<float>(rng, llama_layout(config_).total_size(), 0.1);
    save_llama_hf_directory(dir_ / "model", config_, parameters, testing::tiny_spec());
    write_prompts();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_prompts() {
    json examples = json::array();
    for (int i = 0; i < 24; ++i) {
      const bool yes = i % 2 == 0;  // both labels in every slice
      examples.push_back(
          {{"instruction", "Like?"},
           {"input", std::string(yes ? "hello aa" : "world") + " #" + std::to_string(i)},
           {"output", yes ? "Yes." : "No."}});
    }
    std::ofstream(dir_ / "prompts.json") << examples.dump(1);
  }

  RunConfig config(const std::string& run, const std::vector<std::string>& overrides = {}) const {
    const std::string text =
        "run: {output_dir: " + (dir_ / run).string() +
        ", device: cpu, log_every_steps: 100}\n"
        "model: {pretrained: " +
        (dir_ / "model").string() +
        ", max_tokens: 256}\n"
        "prompts: {task: preference, train: " +
        (dir_ / "prompts.json").string() +
        ", train_count: 16, valid: " + (dir_ / "prompts.json").string() +
        ", valid_first: 16, test: " + (dir_ / "prompts.json").string() +
        ", test_limit: 8, max_context: 256}\n"
        "stages:\n"
        "  - name: sft\n"
        "    objective: {type: sft}\n"
        "    finetune: {method: lora, lora: {rank: 2, targets: [q_proj, v_proj]}}\n"
        "    train: {batch_size: 4, lr: 1.0e-2, epochs: 2}\n"
        "    eval: {metric: auc, patience: 0}\n"
        "  - name: dpo\n"
        "    objective: {type: dpo, dpo: {loss: sigmoid, beta: 0.1}}\n"
        "    finetune: {method: lora, lora: {rank: 2, targets: [q_proj, v_proj]}}\n"
        "    train: {batch_size: 4, lr: 1.0e-2, epochs: 1}\n"
        "    eval: {metric: auc, patience: 0}\n";
    return parse_config(text, "test.yaml", overrides);
  }

  std::vector<float> adapter(const std::string& run, const std::string& stage) const {
    return load_llama_peft_adapter(dir_ / run / ("adapter-" + stage), config_).values;
  }

  fs::path dir_;
  LlamaConfig config_;
};

TEST_F(TextTrainerTest, TrainsSftThenDpoAndLeavesAdaptersAndTestMetrics) {
  ASSERT_EQ(train_text(config("run"), {}), TrainStatus::kCompleted);
  for (const char* stage : {"sft", "dpo"}) {
    std::ifstream in(dir_ / "run" / (std::string("final_metrics-") + stage + ".json"));
    const json result = json::parse(in);
    EXPECT_EQ(result["test"]["examples"], 8) << stage;
    EXPECT_TRUE(result["test"].contains("auc")) << stage;
  }
  const std::vector<float> sft = adapter("run", "sft"), dpo = adapter("run", "dpo");
  EXPECT_NE(sft, dpo);  // DPO trained on from SFT's adapters
  EXPECT_NE(sft, llama_lora_initial(
                     llama_lora_layout(config_, {2, 16, false, 0, {"q_proj", "v_proj"}}), 1));
}

class TextTrainerResumeTest : public TextTrainerTest, public ::testing::WithParamInterface<int> {};

// Interrupted inside SFT's second epoch (3), at the end of its first (4) and at its last step (8).
TEST_P(TextTrainerResumeTest, AnInterruptedRunResumesToTheSameAdapters) {
  ASSERT_EQ(train_text(config("whole"), {}), TrainStatus::kCompleted);
  TrainerOptions interrupt;
  interrupt.interrupt_after_steps = GetParam();
  ASSERT_EQ(train_text(config("resumed"), interrupt), TrainStatus::kInterrupted);
  TrainerOptions resume;
  resume.resume = true;
  ASSERT_EQ(train_text(config("resumed"), resume), TrainStatus::kCompleted);
  EXPECT_EQ(adapter("resumed", "sft"), adapter("whole", "sft"));
  EXPECT_EQ(adapter("resumed", "dpo"), adapter("whole", "dpo"));
}

INSTANTIATE_TEST_SUITE_P(Steps, TextTrainerResumeTest, ::testing::Values(3, 4, 8));

TEST_F(TextTrainerTest, RefusesToResumeWithSettingsThatChangeTheData) {
  TrainerOptions interrupt;
  interrupt.interrupt_after_steps = 2;
  ASSERT_EQ(train_text(config("run"), interrupt), TrainStatus::kInterrupted);
  TrainerOptions resume;
  resume.resume = true;
  EXPECT_ERROR_CONTAINS(train_text(config("run", {"stages.sft.train.batch_size=2"}), resume),
                        "the settings that decide the data and its order changed");
}

TEST_F(TextTrainerTest, RefusesARunDirectoryWithCheckpointsWithoutResume) {
  TrainerOptions interrupt;
  interrupt.interrupt_after_steps = 1;
  ASSERT_EQ(train_text(config("run"), interrupt), TrainStatus::kInterrupted);
  EXPECT_ERROR_CONTAINS(train_text(config("run"), {}), "continue it with --resume");
}

TEST_F(TextTrainerTest, NamesAMissingPromptFile) {
  EXPECT_ERROR_CONTAINS(
      train_text(config("run", {"prompts.train=" + (dir_ / "none.json").string()}), {}),
      "none.json");
}

}  // namespace
}  // namespace recforge
