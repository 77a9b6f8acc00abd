// Checkpoints: a save loads back exactly; a file that does not fit the model is an error naming
// the tensor; latest_checkpoint finds the highest complete step; and a process killed at a random
// moment of a save leaves a complete checkpoint behind.
#include "model/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "kernels/check.h"
#include "model/parameters.h"
#include "model/safetensors.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

ModelConfig small_config(int vocab_size = 50) {
  ModelConfig config;
  config.vocab_size = vocab_size;
  config.max_len = 16;
  config.d_model = 32;
  config.n_layer = 2;
  config.n_head = 1;
  config.dropout = 0.1f;
  return config;
}

// Parameters, moments and state that all carry `value`, so a mix of two saves is detectable.
CheckpointData filled(const ModelConfig& config, float value, bool with_optimizer = true) {
  CheckpointData data;
  data.model_config = config;
  size_t n = ParameterLayout(config).total_size();
  data.parameters.assign(n, value);
  if (with_optimizer) {
    data.adam_m.assign(n, value + 0.25f);
    data.adam_v.assign(n, value + 0.5f);
  }
  data.trainer_state = {{"step", 7}, {"value", value}};
  return data;
}

// Distinct values everywhere, so a tensor stored at the wrong offset is detectable.
CheckpointData distinct(const ModelConfig& config) {
  CheckpointData data = filled(config, 0.0f);
  for (size_t i = 0; i < data.parameters.size(); ++i) {
    data.parameters[i] = 0.001f * i;
    data.adam_m[i] = -0.002f * i;
    data.adam_v[i] = 0.003f * i;
  }
  data.trainer_state = {{"step", 123}, {"rng", {1, 2, 3}}, {"best", {{"valid/ndcg@10", 0.05}}}};
  return data;
}

class CheckpointTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::temp_directory_path() / ("recforge_checkpoint_" + std::to_string(getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Rewrites dir/model.safetensors with the layout's tensors after `edit` changed them.
  void rewrite_model(const fs::path& dir, const CheckpointData& data,
                     const std::function<void(std::vector<SafetensorsTensor>&)>& edit) {
    ParameterLayout layout(data.model_config);
    std::vector<SafetensorsTensor> tensors;
    for (const ParameterInfo& info : layout.tensors()) {
      tensors.push_back({info.name, info.shape,
                         std::span<const float>(data.parameters).subspan(info.offset, info.size)});
    }
    edit(tensors);
    SafetensorsFile original = SafetensorsFile::read(dir / "model.safetensors");
    write_safetensors(dir / "model.safetensors", tensors, original.metadata());
  }

  fs::path root_;
};

TEST_F(CheckpointTest, RoundTripRestoresEverything) {
  CheckpointData saved = distinct(small_config());
  save_checkpoint(root_ / "pretrain-step123", saved);
  CheckpointData loaded = load_checkpoint(root_ / "pretrain-step123");
  EXPECT_EQ(loaded.model_config.vocab_size, 50);
  EXPECT_EQ(loaded.model_config.n_layer, 2);
  EXPECT_EQ(loaded.model_config.dropout, 0.1f);
  EXPECT_EQ(loaded.parameters, saved.parameters);
  EXPECT_EQ(loaded.adam_m, saved.adam_m);
  EXPECT_EQ(loaded.adam_v, saved.adam_v);
  EXPECT_EQ(loaded.trainer_state, saved.trainer_state);
}

TEST_F(CheckpointTest, TensorsAreNamedAndShapedByTheLayout) {
  CheckpointData saved = distinct(small_config());
  save_checkpoint(root_ / "s-step1", saved);
  SafetensorsFile file = SafetensorsFile::read(root_ / "s-step1" / "model.safetensors");
  ParameterLayout layout(saved.model_config);
  const ParameterInfo& qkv = layout.at("h.1.attn.qkv.weight");
  EXPECT_EQ(file.shape("h.1.attn.qkv.weight"), (std::vector<int64_t>{96, 32}));
  EXPECT_EQ(file.f32("h.1.attn.qkv.weight")[5], saved.parameters[qkv.offset + 5]);
  SafetensorsFile optimizer = SafetensorsFile::read(root_ / "s-step1" / "optimizer.safetensors");
  EXPECT_EQ(optimizer.f32("v.wte")[3], saved.adam_v[layout.offset("wte") + 3]);
}

TEST_F(CheckpointTest, WithoutOptimizerStateThereIsNoOptimizerFile) {
  save_checkpoint(root_ / "s-step1", filled(small_config(), 2.0f, false));
  EXPECT_FALSE(fs::exists(root_ / "s-step1" / "optimizer.safetensors"));
  CheckpointData loaded = load_checkpoint(root_ / "s-step1");
  EXPECT_TRUE(loaded.adam_m.empty());
  EXPECT_TRUE(loaded.adam_v.empty());
}

TEST_F(CheckpointTest, MomentsOfSomeGroupsRoundTripAsFlatTensors) {
  CheckpointData saved = filled(small_config(), 1.0f, false);
  saved.adam_m = {1.0f, 2.0f, 3.0f};
  saved.adam_v = {4.0f, 5.0f, 6.0f};
  save_checkpoint(root_ / "s-step1", saved);
  CheckpointData loaded = load_checkpoint(root_ / "s-step1");
  EXPECT_EQ(loaded.adam_m, saved.adam_m);
  EXPECT_EQ(loaded.adam_v, saved.adam_v);
}

TEST_F(CheckpointTest, ItemIdsRoundTrip) {
  CheckpointData saved = filled(small_config(), 1.0f);
  saved.item_ids = {"B00A", "item with spaces", "42"};
  save_checkpoint(root_ / "s-step1", saved);
  EXPECT_EQ(load_checkpoint(root_ / "s-step1").item_ids, saved.item_ids);
}

TEST_F(CheckpointTest, ExtraFilesAreWrittenInsideTheCheckpoint) {
  CheckpointData saved = filled(small_config(), 1.0f);
  saved.write_extra_files = [](const fs::path& dir) { std::ofstream(dir / "adapter.txt") << "x"; };
  save_checkpoint(root_ / "s-step1", saved);
  EXPECT_TRUE(fs::exists(root_ / "s-step1" / "adapter.txt"));
}

TEST_F(CheckpointTest, SaveRefusesBuffersThatDoNotFitTheLayout) {
  CheckpointData data = filled(small_config(), 1.0f);
  data.parameters.pop_back();
  EXPECT_THROW(save_checkpoint(root_ / "s-step1", data), Error);
  data = filled(small_config(), 1.0f);
  data.adam_v.clear();
  EXPECT_THROW(save_checkpoint(root_ / "s-step1", data), Error);
}

TEST_F(CheckpointTest, ShapeMismatchNamesTensorAndShapes) {
  CheckpointData data = filled(small_config(), 1.0f);
  save_checkpoint(root_ / "s-step1", data);
  std::vector<float> wider(17 * 32, 0.0f);
  rewrite_model(root_ / "s-step1", data, [&](std::vector<SafetensorsTensor>& tensors) {
    tensors[1] = {"wpe", {17, 32}, wider};
  });
  EXPECT_ERROR_CONTAINS(load_checkpoint(root_ / "s-step1"),
                        "model.safetensors: tensor 'wpe' has shape [17, 32], expected [16, 32]");
}

TEST_F(CheckpointTest, MissingTensorIsNamed) {
  CheckpointData data = filled(small_config(), 1.0f);
  save_checkpoint(root_ / "s-step1", data);
  rewrite_model(root_ / "s-step1", data,
                [](std::vector<SafetensorsTensor>& tensors) { tensors.pop_back(); });
  EXPECT_ERROR_CONTAINS(load_checkpoint(root_ / "s-step1"),
                        "missing tensor 'ln_f.bias' (expected shape [32])");
}

TEST_F(CheckpointTest, UnexpectedTensorIsNamed) {
  CheckpointData data = filled(small_config(), 1.0f);
  save_checkpoint(root_ / "s-step1", data);
  std::vector<float> extra(4, 0.0f);
  rewrite_model(root_ / "s-step1", data, [&](std::vector<SafetensorsTensor>& tensors) {
    tensors.push_back({"lm_head.weight", {4}, extra});
  });
  EXPECT_ERROR_CONTAINS(load_checkpoint(root_ / "s-step1"), "unexpected tensor 'lm_head.weight'");
}

TEST_F(CheckpointTest, ANonFiniteWeightOrMomentStopsTheLoadNamingTheTensor) {
  CheckpointData data = filled(small_config(), 1.0f);
  const ParameterLayout layout(data.model_config);
  data.parameters[layout.offset("h.1.mlp.fc.weight") + 3] = std::nanf("");
  save_checkpoint(root_ / "nan", data);
  try {
    load_checkpoint(root_ / "nan");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'h.1.mlp.fc.weight' holds nan at element 3"),
              std::string::npos)
        << e.what();
  }
  data = filled(small_config(), 1.0f);
  data.adam_v[5] = INFINITY;
  save_checkpoint(root_ / "inf", data);
  try {
    load_checkpoint(root_ / "inf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.safetensors: tensor 'v.wte' holds inf"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(CheckpointTest, TruncatedModelFileIsAnError) {
  save_checkpoint(root_ / "s-step1", filled(small_config(), 1.0f));
  fs::path file = root_ / "s-step1" / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) / 2);
  EXPECT_ERROR_CONTAINS(load_checkpoint(root_ / "s-step1"), file.string());
}

TEST_F(CheckpointTest, SaveReplacesAnExistingCheckpoint) {
  save_checkpoint(root_ / "s-step1", filled(small_config(), 1.0f));
  save_checkpoint(root_ / "s-step1", filled(small_config(), 2.0f));
  CheckpointData loaded = load_checkpoint(root_ / "s-step1");
  EXPECT_EQ(loaded.parameters[0], 2.0f);
  EXPECT_EQ(loaded.trainer_state["value"], 2.0f);
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 1);
}

TEST_F(CheckpointTest, LeftoverTmpDirectoryIsIgnoredThenCleaned) {
  save_checkpoint(root_ / "s-step1", filled(small_config(), 1.0f));
  fs::create_directories(root_ / "s-step2.tmp");
  std::ofstream(root_ / "s-step2.tmp" / "model.safetensors") << "half a file";
  std::ofstream(root_ / "s-step2.tmp" / "trainer_state.json") << "{";
  EXPECT_EQ(latest_checkpoint(root_), root_ / "s-step1");
  save_checkpoint(root_ / "s-step2", filled(small_config(), 2.0f));
  EXPECT_FALSE(fs::exists(root_ / "s-step2.tmp"));
  EXPECT_EQ(load_checkpoint(root_ / "s-step2").parameters[0], 2.0f);
}

TEST_F(CheckpointTest, InterruptedSwapIsFoundAndRecovered) {
  // The state a crash leaves between the two renames of the fallback (no RENAME_EXCHANGE).
  save_checkpoint(root_ / "s-step5", filled(small_config(), 1.0f));
  fs::rename(root_ / "s-step5", root_ / "s-step5.old");
  EXPECT_EQ(latest_checkpoint(root_), root_ / "s-step5.old");
  save_checkpoint(root_ / "s-step5", filled(small_config(), 2.0f));
  EXPECT_FALSE(fs::exists(root_ / "s-step5.old"));
  EXPECT_EQ(latest_checkpoint(root_), root_ / "s-step5");
}

TEST_F(CheckpointTest, LatestCheckpointPicksTheHighestCompleteStep) {
  EXPECT_EQ(latest_checkpoint(root_), std::nullopt);
  EXPECT_EQ(latest_checkpoint(root_ / "absent"), std::nullopt);
  for (const char* name : {"pretrain-step20", "pretrain-step100", "sft-step150"}) {
    save_checkpoint(root_ / name, filled(small_config(), 1.0f));
  }
  fs::create_directories(root_ / "sft-step900.tmp");
  fs::create_directories(root_ / "sft-step800");  // incomplete: no files
  fs::create_directories(root_ / "notes");
  EXPECT_EQ(latest_checkpoint(root_), root_ / "sft-step150");
  EXPECT_EQ(latest_checkpoint(root_, "pretrain"), root_ / "pretrain-step100");
  EXPECT_EQ(latest_checkpoint(root_, "dpo"), std::nullopt);
}

// A child process saves large checkpoints into the same directory without pause; the parent
// kills it with SIGKILL at a random moment, several times. Each time the directory must hold one
// complete checkpoint whose files all come from the same save.
TEST_F(CheckpointTest, KillDuringSaveLeavesACompleteCheckpoint) {
  const ModelConfig config = small_config(20000);  // ~1.4M parameters: 17 MB per save
  const fs::path dir = root_ / "pretrain-step7";
  std::mt19937 rng(20240611);
  for (int round = 0; round < 8; ++round) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        for (int i = 0;; ++i) save_checkpoint(dir, filled(config, 1000.0f * round + i));
      } catch (...) {
        _exit(3);
      }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!latest_checkpoint(root_) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving process failed on its own";

    std::optional<fs::path> latest = latest_checkpoint(root_);
    ASSERT_TRUE(latest.has_value()) << "round " << round;
    CheckpointData loaded = load_checkpoint(*latest);
    const float value = loaded.trainer_state["value"];
    auto all_equal = [](const std::vector<float>& values, float expected) {
      return std::all_of(values.begin(), values.end(), [&](float x) { return x == expected; });
    };
    EXPECT_TRUE(all_equal(loaded.parameters, value)) << "round " << round;
    EXPECT_TRUE(all_equal(loaded.adam_m, value + 0.25f)) << "round " << round;
    EXPECT_TRUE(all_equal(loaded.adam_v, value + 0.5f)) << "round " << round;
  }
  save_checkpoint(dir, filled(config, -1.0f));
  EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 1);
}

}  // namespace
}  // namespace recforge
