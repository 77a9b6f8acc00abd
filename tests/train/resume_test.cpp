// --resume on a damaged or changed run: a newer checkpoint that lacks files is skipped and kept,
// a run with no complete checkpoint stops naming what is missing, every field of the trainer state
// is checked, and a change of model or data order is refused naming it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "train/data/dataset.h"
#include "train/data/log_synth.h"
#include "train/trainer.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ResumeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / concat("recforge-resume-test-", getpid());
    fs::create_directories(root_);
    SynthOptions synth;
    synth.users = 200;
    synth.items = 60;
    write_synthetic_log(synth, root_ / "logs.csv");
    PrepareOptions prepare;
    prepare.header = true;
    prepare_dataset({root_ / "logs.csv"}, prepare, root_ / "data");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Two evaluations and checkpoints (steps 2 and 4) before an interruption at step 4.
  RunConfig config(const std::string& name) const {
    RunConfig c;
    c.run.output_dir = (root_ / name).string();
    c.run.device = DeviceChoice::kCpu;
    c.data.path = (root_ / "data").string();
    c.data.max_len = 10;
    c.model.d_model = 32;
    c.model.n_layer = 1;
    c.model.n_head = 1;
    StageSection stage;
    stage.objective.type = ObjectiveType::kNbp;
    stage.train.batch_size = 16;
    stage.train.epochs = 2;
    stage.eval.every_steps = 2;
    stage.eval.patience = 0;
    stage.eval.sampled_negatives = 10;
    c.stages.push_back(stage);
    return c;
  }

  static fs::path interrupted(const RunConfig& c) {
    TrainerOptions options;
    options.interrupt_after_steps = 4;
    EXPECT_EQ(train(c, options), TrainStatus::kInterrupted);
    return fs::path(c.run.output_dir) / "checkpoints";
  }

  // The message of the error a resume of `c` throws ("" when it does not throw).
  static std::string resume_error(const RunConfig& c, bool allow_config_change = false) {
    TrainerOptions options;
    options.resume = true;
    options.allow_config_change = allow_config_change;
    try {
      train(c, options);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static void edit_state(const fs::path& checkpoint, const std::function<void(json&)>& edit) {
    json state;
    std::ifstream(checkpoint / "trainer_state.json") >> state;
    edit(state);
    std::ofstream(checkpoint / "trainer_state.json") << state.dump();
  }

  static fs::path root_;
};

fs::path ResumeTest::root_;

TEST_F(ResumeTest, ANewerCheckpointThatLacksItsStateIsSkippedAndKept) {
  const RunConfig c = config("skip-incomplete");
  const fs::path checkpoints = interrupted(c);
  fs::copy(checkpoints / "pretrain-step4", checkpoints / "pretrain-step5");  // as if saved later
  fs::remove(checkpoints / "pretrain-step5" / "trainer_state.json");
  testing::internal::CaptureStdout();
  EXPECT_EQ(resume_error(c), "");
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("pretrain-step5 lacks trainer_state.json: not resumed from, kept"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("pretrain-step4 (step 4)"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(checkpoints / "pretrain-step5" / "model.safetensors"));
}

TEST_F(ResumeTest, WithoutACompleteCheckpointResumingStopsNamingWhatIsMissing) {
  const RunConfig c = config("none-complete");
  const fs::path checkpoints = interrupted(c);
  fs::remove(checkpoints / "pretrain-step2" / "model.safetensors");
  fs::remove(checkpoints / "pretrain-step4" / "model.safetensors");
  const std::string error = resume_error(c);
  EXPECT_NE(error.find("pretrain-step4 lacks model.safetensors"), std::string::npos) << error;
  EXPECT_TRUE(fs::exists(checkpoints / "pretrain-step4" / "trainer_state.json"));
}

TEST_F(ResumeTest, ACursorPastTheEpochIsRefusedNamingFileAndField) {
  const RunConfig c = config("cursor");
  const fs::path checkpoint = interrupted(c) / "pretrain-step4";
  edit_state(checkpoint, [](json& s) { s["loop"]["cursor"] = 1e15; });
  EXPECT_NE(resume_error(c).find("pretrain-step4/trainer_state.json: loop.cursor: expected an "
                                 "integer, got 1e+15"),
            std::string::npos);
  edit_state(checkpoint, [](json& s) { s["loop"]["cursor"] = 5000; });
  EXPECT_NE(resume_error(c).find("loop.cursor: expected a micro-batch of epoch 0"),
            std::string::npos);
}

TEST_F(ResumeTest, EveryStateFieldIsCheckedForItsTypeAndRange) {
  const RunConfig c = config("fields");
  const fs::path checkpoint = interrupted(c) / "pretrain-step4";
  edit_state(checkpoint, [](json& s) { s["loop"]["step"] = -5; });
  EXPECT_NE(resume_error(c).find("loop.step: expected an integer in [0, "), std::string::npos);
  edit_state(checkpoint, [](json& s) {
    s["loop"]["step"] = 4;
    s["loop"]["epoch"] = "one";
  });
  EXPECT_NE(resume_error(c).find("loop.epoch: expected an integer, got \"one\""),
            std::string::npos);
  edit_state(checkpoint, [](json& s) {
    s["loop"]["epoch"] = 0;
    s["loop"].erase("best_metric");
  });
  EXPECT_NE(resume_error(c).find("loop.best_metric: missing"), std::string::npos);
}

TEST_F(ResumeTest, AMissingOptimizerFileIsNamed) {
  const RunConfig c = config("no-optimizer");
  const fs::path checkpoints = interrupted(c);
  fs::remove(checkpoints / "pretrain-step2" / "optimizer.safetensors");
  fs::remove(checkpoints / "pretrain-step4" / "optimizer.safetensors");
  EXPECT_NE(resume_error(c).find("lacks optimizer.safetensors"), std::string::npos);
}

TEST_F(ResumeTest, AChangedBatchSizeIsRefusedUnlessAllowed) {
  RunConfig c = config("batch-size");
  interrupted(c);
  c.stages[0].train.batch_size = 8;
  EXPECT_NE(resume_error(c).find("train.batch_size is 8 in the config but was 16"),
            std::string::npos);
  EXPECT_EQ(resume_error(c, true), "");
}

TEST_F(ResumeTest, AChangedModelIsRefusedNamingTheField) {
  RunConfig c = config("model");
  interrupted(c);
  c.model.d_model = 64;
  c.model.n_head = 2;
  EXPECT_NE(resume_error(c).find("model.d_model is 64 in the config but 32 in the checkpoint"),
            std::string::npos);
}

}  // namespace
}  // namespace recforge
