// The training loop end to end on generated logs: it learns what a popularity count cannot,
// resumes exactly, stops on a non-finite loss, and writes its run directory.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "model/checkpoint.h"
#include "train/data/dataset.h"
#include "train/data/log_synth.h"
#include "train/data/split.h"
#include "train/eval/eval_cases.h"
#include "train/eval/metrics.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("recforge-trainer-test-" + std::to_string(::getpid()));
    fs::create_directories(root_);
    SynthOptions synth;
    synth.users = 600;
    synth.items = 200;
    synth.max_length = 30;
    write_synthetic_log(synth, root_ / "logs.csv");
    PrepareOptions prepare;
    prepare.header = true;
    prepare_dataset({root_ / "logs.csv"}, prepare, root_ / "data");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  RunConfig config(const std::string& name) const {
    RunConfig c;
    c.run.output_dir = (root_ / name).string();
    c.run.device = DeviceChoice::kCpu;
    c.run.log_every_steps = 1;
    c.data.path = (root_ / "data").string();
    c.data.max_len = 20;
    c.model.d_model = 32;
    c.model.n_layer = 1;
    c.model.n_head = 1;
    c.model.dropout = 0.1f;
    StageSection stage;
    stage.objective.type = ObjectiveType::kMbpNbp;
    stage.objective.next_k = 2;
    stage.train.batch_size = 64;
    stage.train.lr = 3e-3f;
    stage.train.epochs = 6;
    stage.eval.patience = 0;
    stage.eval.exclude_history = false;
    c.stages.push_back(stage);
    return c;
  }

  static json read_json(const fs::path& file) {
    std::ifstream in(file);
    return json::parse(in);
  }

  // step -> loss of every training event in metrics.jsonl.
  static std::map<int64_t, double> step_losses(const fs::path& run_dir) {
    std::map<int64_t, double> losses;
    std::ifstream in(run_dir / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      json event = json::parse(line);
      if (event.contains("loss"))
        losses[event["step"].get<int64_t>()] = event["loss"].get<double>();
    }
    return losses;
  }

  static fs::path root_;
};

fs::path TrainerTest::root_;

// NDCG@10 on the test part when every user gets the training part's most popular items.
double popularity_ndcg_at_10(const fs::path& data_dir) {
  Dataset data = Dataset::open(data_dir);
  LeaveOneOutSplit split(data);
  std::vector<int64_t> counts = split.train_item_counts();
  RankingMetrics metrics({10});
  for (const EvalCase& c : evaluation_cases(data, split, Split::kTest, false).cases) {
    int64_t rank = 0;
    for (int32_t item = 0; item < data.num_items(); ++item) {
      rank += item != c.target && counts[item] >= counts[c.target];
    }
    metrics.add(rank);
  }
  return metrics.ndcg(10);
}

TEST_F(TrainerTest, ShortRunBeatsThePopularityBaseline) {
  RunConfig c = config("learns");
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  json final_metrics = read_json(fs::path(c.run.output_dir) / "final_metrics.json");
  const double model = final_metrics["test/ndcg@10"].get<double>();
  const double popularity = popularity_ndcg_at_10(root_ / "data");
  std::printf("[ metrics  ] test ndcg@10: model %.4f, popularity %.4f\n", model, popularity);
  EXPECT_GT(model, 1.5 * popularity);
  EXPECT_TRUE(fs::exists(fs::path(c.run.output_dir) / "config.resolved.yaml"));
  EXPECT_TRUE(final_metrics.contains("test_sampled/ndcg@10"));
}

TEST_F(TrainerTest, SampledSoftmaxWithPopularityNegativesLearns) {
  RunConfig c = config("sampled");
  c.stages[0].objective.type = ObjectiveType::kNbp;
  c.stages[0].objective.next_k = 1;
  c.stages[0].objective.loss = ItemLossType::kSampledSoftmax;
  c.stages[0].objective.negatives = 64;
  c.stages[0].objective.sampling = NegativeSampling::kPopularity;
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  const double model =
      read_json(fs::path(c.run.output_dir) / "final_metrics.json")["test/ndcg@10"].get<double>();
  const double popularity = popularity_ndcg_at_10(root_ / "data");
  std::printf("[ metrics  ] sampled softmax test ndcg@10: model %.4f, popularity %.4f\n", model,
              popularity);
  EXPECT_GT(model, 1.5 * popularity);
}

TEST_F(TrainerTest, MaskedOnlyModelPredictsThroughTheMaskToken) {
  RunConfig c = config("masked");
  c.stages[0].objective.type = ObjectiveType::kMbp;
  c.stages[0].objective.mask_ratio = 0.3f;
  // Masked prediction must learn to attend to the neighbors (the position's own token is MASK):
  // slower to start than next-item prediction, so more and smaller steps.
  c.stages[0].train.batch_size = 32;
  c.stages[0].train.epochs = 20;
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  json final_metrics = read_json(fs::path(c.run.output_dir) / "final_metrics.json");
  EXPECT_EQ(final_metrics["inference"], "masked");
  const double model = final_metrics["test/ndcg@10"].get<double>();
  const double popularity = popularity_ndcg_at_10(root_ / "data");
  std::printf("[ metrics  ] masked-only test ndcg@10: model %.4f, popularity %.4f\n", model,
              popularity);
  EXPECT_GT(model, 1.5 * popularity);
}

TEST_F(TrainerTest, InterruptedAndResumedRunLogsTheSameLossesBitForBit) {
  RunConfig straight = config("straight");
  straight.stages[0].train.epochs = 2;
  straight.stages[0].eval.every_steps = 4;
  ASSERT_EQ(train(straight, {}), TrainStatus::kCompleted);

  RunConfig resumed = config("resumed");
  resumed.stages[0].train.epochs = 2;
  resumed.stages[0].eval.every_steps = 4;
  TrainerOptions interrupt;
  interrupt.interrupt_after_steps = 7;
  ASSERT_EQ(train(resumed, interrupt), TrainStatus::kInterrupted);
  TrainerOptions resume;
  resume.resume = true;
  ASSERT_EQ(train(resumed, resume), TrainStatus::kCompleted);

  std::map<int64_t, double> expected = step_losses(straight.run.output_dir);
  std::map<int64_t, double> actual = step_losses(resumed.run.output_dir);
  ASSERT_GT(expected.size(), 10u);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(read_json(fs::path(straight.run.output_dir) / "final_metrics.json")["test/ndcg@10"],
            read_json(fs::path(resumed.run.output_dir) / "final_metrics.json")["test/ndcg@10"]);
}

TEST_F(TrainerTest, DivergenceStopsWithTheStepAndKeepsTheLastGoodCheckpoint) {
  RunConfig c = config("diverges");
  c.stages[0].eval.every_steps = 1;
  TrainerOptions two_steps;
  two_steps.interrupt_after_steps = 2;
  ASSERT_EQ(train(c, two_steps), TrainStatus::kInterrupted);
  c.stages[0].train.lr = 1e30f;
  c.stages[0].train.grad_clip = 0.0f;
  TrainerOptions resume;
  resume.resume = true;
  try {
    train(c, resume);
    FAIL() << "a diverging run must stop with an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at step 3"), std::string::npos) << e.what();
  }
  const fs::path checkpoints = fs::path(c.run.output_dir) / "checkpoints";
  std::optional<fs::path> latest = latest_checkpoint(checkpoints);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "pretrain-step2");
  CheckpointData good = load_checkpoint(*latest);
  for (float p : good.parameters) ASSERT_TRUE(std::isfinite(p));
}

TEST_F(TrainerTest, StopRequestSavesACheckpointAndReturnsInterrupted) {
  RunConfig c = config("signalled");
  request_stop();
  EXPECT_EQ(train(c, {}), TrainStatus::kInterrupted);
  EXPECT_TRUE(fs::exists(fs::path(c.run.output_dir) / "checkpoints" / "pretrain-step1"));
}

// The message of the error train() throws for `c` ("" when it does not throw).
std::string train_error(const RunConfig& c) {
  try {
    train(c, {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(TrainerTest, TooManySampledNegativesForTheCatalogStopBeforeTraining) {
  RunConfig c = config("negatives");
  c.stages[0].eval.sampled_negatives = 1000;
  const std::string error = train_error(c);
  EXPECT_NE(error.find("eval.sampled_negatives is 1000 but user"), std::string::npos) << error;
  const fs::path checkpoints = fs::path(c.run.output_dir) / "checkpoints";
  EXPECT_FALSE(fs::exists(checkpoints) && !fs::is_empty(checkpoints));
}

TEST_F(TrainerTest, AModelLargerThanTheMachineStopsBeforeItAllocatesNamingTheKeys) {
  RunConfig c = config("huge");
  c.model.n_layer = 100000000;
  const std::string error = train_error(c);
  EXPECT_NE(error.find("needs about"), std::string::npos) << error;
  EXPECT_NE(error.find("reduce model.n_layer (100000000)"), std::string::npos) << error;
  c = config("long");
  c.data.max_len = 2000000000;
  EXPECT_NE(train_error(c).find("data.max_len (2000000000)"), std::string::npos);
}

TEST_F(TrainerTest, ADatasetWithNothingToEvaluateStopsBeforeTraining) {
  std::ofstream(root_ / "short.csv") << "u1,a,1\nu1,b,2\nu2,a,1\nu2,c,2\n";
  prepare_dataset({root_ / "short.csv"}, PrepareOptions{}, root_ / "short");
  RunConfig c = config("short");
  c.data.path = (root_ / "short").string();
  const std::string error = train_error(c);
  EXPECT_NE(error.find("has no user with at least 3 events"), std::string::npos) << error;
}

}  // namespace
}  // namespace recforge
