// Multi-stage runs: stages chain through their best checkpoints, a finished stage is skipped on
// resume, and a checkpoint fine-tuned on newer logs with items it never saw learns to recommend
// them while the rows of the items it knew stay as they were (known_items: frozen).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "model/checkpoint.h"
#include "model/parameters.h"
#include "model/vocabulary.h"
#include "train/data/dataset.h"
#include "train/data/split.h"
#include "train/eval/checkpointed_model.h"
#include "train/eval/evaluation.h"
#include "train/setup/stage_start.h"
#include "train/tasks/sft_stage.h"
#include "train/trainer.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Users who walk a cycle of `count` items named <prefix>0 .. <prefix>{count-1}: every user starts
// somewhere and always moves to the next item, so the next item is fully predictable.
void append_cycle_users(std::ofstream& out, const std::string& user_prefix,
                        const std::string& item_prefix, int users, int count, int length) {
  for (int u = 0; u < users; ++u) {
    const int start = (u * 7) % count;
    for (int t = 0; t < length; ++t) {
      out << user_prefix << u << "," << item_prefix << (start + t) % count << "," << t << "\n";
    }
  }
}

class PipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("recforge-pipeline-test-" + std::to_string(::getpid()));
    fs::create_directories(root_);
    {
      std::ofstream old_logs(root_ / "old.csv");
      append_cycle_users(old_logs, "a", "old", 240, 30, 12);
    }
    {
      std::ofstream new_logs(root_ / "new.csv");
      append_cycle_users(new_logs, "b", "new", 240, 30, 12);
      append_cycle_users(new_logs, "c", "old", 40, 30, 12);
    }
    {
      // 20 items, each user rating 12 of them: the even ones ("good") always get 5 stars, the
      // odd ones ("bad") 1 star.
      std::ofstream rated(root_ / "rated.csv");
      for (int u = 0; u < 200; ++u) {
        for (int t = 0; t < 12; ++t) {
          const int item = (u * 3 + t) % 20;
          const bool good = item % 2 == 0;
          rated << "r" << u << "," << (good ? "good" : "bad") << item << "," << t << ","
                << (good ? 5 : 1) << "\n";
        }
      }
    }
    PrepareOptions with_ratings;
    with_ratings.rating_col = 3;
    prepare_dataset({root_ / "rated.csv"}, with_ratings, root_ / "rated");
    prepare_dataset({root_ / "old.csv"}, PrepareOptions{}, root_ / "old");
    prepare_dataset({root_ / "new.csv"}, PrepareOptions{}, root_ / "new");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static StageSection stage(const std::string& name, int epochs) {
    StageSection s;
    s.name = name;
    s.objective.type = ObjectiveType::kNbp;
    s.train.batch_size = 32;
    s.train.lr = 5e-3f;
    s.train.epochs = epochs;
    s.eval.patience = 0;
    s.eval.exclude_history = false;
    s.eval.sampled_negatives = 5;
    return s;
  }

  static RunConfig config(const std::string& name, const fs::path& data) {
    RunConfig c;
    c.run.output_dir = (root_ / name).string();
    c.run.device = DeviceChoice::kCpu;
    c.run.log_every_steps = 4;
    c.data.path = data.string();
    c.data.max_len = 10;
    c.model.d_model = 32;
    c.model.n_layer = 1;
    c.model.n_head = 1;
    c.model.dropout = 0.0f;
    return c;
  }

  static json read_json(const fs::path& file) {
    std::ifstream in(file);
    return json::parse(in);
  }

  static fs::path best_of(const RunConfig& c, const std::string& stage) {
    const json result =
        read_json(fs::path(c.run.output_dir) / ("final_metrics-" + stage + ".json"));
    return fs::path(c.run.output_dir) / "checkpoints" /
           result["best_checkpoint"].get<std::string>();
  }

  static fs::path root_;
};

fs::path PipelineTest::root_;

TEST_F(PipelineTest, SecondStageStartsFromTheFirstStagesBestCheckpoint) {
  RunConfig c = config("two-stages", root_ / "old");
  c.stages = {stage("first", 2), stage("second", 1)};
  c.stages[1].train.lr = 1e-9f;  // barely moves: its result shows where it started
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  const CheckpointData first = load_checkpoint(best_of(c, "first"));
  const CheckpointData second = load_checkpoint(best_of(c, "second"));
  double largest_change = 0.0;
  for (size_t i = 0; i < first.parameters.size(); ++i) {
    largest_change =
        std::max(largest_change, std::abs(double{second.parameters[i]} - first.parameters[i]));
  }
  EXPECT_LT(largest_change, 1e-5);
  EXPECT_TRUE(fs::exists(fs::path(c.run.output_dir) / "final_metrics.json"));
}

TEST_F(PipelineTest, SftPreferenceThenRatingLearnTheRatingRule) {
  RunConfig c = config("sft-tasks", root_ / "rated");
  c.data.split = SplitProtocol::kChronological;
  c.stages = {stage("preference", 6), stage("rating", 6)};
  c.stages[0].objective.type = c.stages[1].objective.type = ObjectiveType::kSft;
  c.stages[0].objective.task = SftTask::kPreference;
  c.stages[0].eval.metric = selection_metric("auc");
  c.stages[1].objective.task = SftTask::kRating;
  c.stages[1].eval.metric = selection_metric("rmse");
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  const fs::path run(c.run.output_dir);
  const json preference = read_json(run / "final_metrics-preference.json");
  EXPECT_GT(preference["test/auc"].get<double>(), 0.95) << preference.dump(2);
  const json rating = read_json(run / "final_metrics-rating.json");
  EXPECT_LT(rating["test/rmse"].get<double>(), 0.5) << rating.dump(2);
  EXPECT_EQ(rating["test_examples"].get<int>(), 200);
}

TEST_F(PipelineTest, PretrainLoraSftThenDpoChainAndKeepTheBaseFrozen) {
  RunConfig c = config("lora-dpo", root_ / "old");
  c.stages = {stage("pretrain", 4), stage("sft", 2), stage("dpo", 1), stage("dpo_full", 1)};
  c.stages[1].objective.type = ObjectiveType::kSft;
  c.stages[1].finetune.method = FinetuneMethod::kLora;
  c.stages[1].finetune.lora.targets = {"all_linear"};
  c.stages[1].finetune.known_items = KnownItems::kFrozen;
  c.stages[2].objective.type = ObjectiveType::kDpo;
  c.stages[2].objective.dpo.loss = DpoLoss::kSdpo;
  c.stages[2].objective.dpo.rejected = 3;
  c.stages[2].objective.dpo.precompute_reference = false;
  c.stages[2].finetune = c.stages[1].finetune;
  c.stages[2].train.lr = 1e-3f;
  c.stages[3].objective.type = ObjectiveType::kDpo;
  c.stages[3].train.lr = 1e-4f;
  c.run.log_every_steps = 1;
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);

  const CheckpointData pretrained = load_checkpoint(best_of(c, "pretrain"));
  const fs::path sft_dir = best_of(c, "sft");
  const CheckpointData sft = load_checkpoint(sft_dir);
  EXPECT_TRUE(fs::exists(sft_dir / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(sft_dir / "adapter_config.json"));
  const ParameterLayout layout(sft.model_config);
  const int64_t wte_size = layout.at("wte").size;
  for (int64_t k = wte_size; k < layout.total_size(); ++k) {
    ASSERT_EQ(sft.parameters[k], pretrained.parameters[k]) << "base element " << k;
  }
  std::ifstream log(fs::path(c.run.output_dir) / "metrics.jsonl");
  bool rewards_logged = false;
  for (std::string line; std::getline(log, line);) {
    const json event = json::parse(line);
    if (event.value("stage", "") != "dpo" || !event.contains("loss")) continue;
    if (event["step"] == 1) {  // the fresh adapter leaves the policy equal to its reference
      EXPECT_EQ(event["rewards/margins"].get<double>(), 0.0);
      EXPECT_EQ(event["rewards/chosen"].get<double>(), 0.0);
      EXPECT_NEAR(event["loss"].get<double>(), std::log(4.0), 1e-6);  // S-DPO, 3 rejected
    }
    for (const char* key : {"rewards/chosen", "rewards/rejected", "rewards/margins",
                            "rewards/accuracies", "logps/chosen", "logps/rejected"}) {
      EXPECT_TRUE(event.contains(key)) << key;
    }
    rewards_logged = true;
  }
  EXPECT_TRUE(rewards_logged);
  for (const char* stage : {"sft", "dpo", "dpo_full"}) {
    const json result =
        read_json(fs::path(c.run.output_dir) / ("final_metrics-" + std::string(stage) + ".json"));
    EXPECT_GT(result["test/hr@10"].get<double>(), 0.5) << stage << result.dump(2);
  }
  EXPECT_TRUE(fs::exists(fs::path(c.run.output_dir) / "reference-dpo_full.f32"));
}

TEST_F(PipelineTest, DpoFromRatingsPrefersTheHighlyRatedItems) {
  RunConfig c = config("dpo-ratings", root_ / "rated");
  c.stages = {stage("pretrain", 2), stage("dpo", 4)};
  c.stages[1].objective.type = ObjectiveType::kDpo;
  c.stages[1].objective.dpo.pairs = PairSource::kRating;
  c.stages[1].objective.dpo.chosen_min_rating = 4;
  c.stages[1].objective.dpo.rejected_max_rating = 2;
  c.stages[1].objective.dpo.beta = 0.5f;
  c.stages[1].train.lr = 3e-3f;
  c.run.log_every_steps = 1;
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  std::ifstream log(fs::path(c.run.output_dir) / "metrics.jsonl");
  std::optional<double> first_margin;
  double last_accuracy = 0.0, last_margin = 0.0;
  for (std::string line; std::getline(log, line);) {
    const json event = json::parse(line);
    if (event.value("stage", "") != "dpo" || !event.contains("loss")) continue;
    if (!first_margin) first_margin = event["rewards/margins"].get<double>();
    last_accuracy = event["rewards/accuracies"].get<double>();
    last_margin = event["rewards/margins"].get<double>();
  }
  // At step 1 the policy is its reference, up to the rounding of a differently packed batch.
  ASSERT_TRUE(first_margin.has_value());
  EXPECT_LT(std::abs(*first_margin), 1e-5);
  EXPECT_GT(last_accuracy, 0.9);
  EXPECT_GT(last_margin, 0.1);
}

TEST_F(PipelineTest, SftLossReachesOnlyTheAnswerPositions) {
  RunConfig c = config("sft-mask", root_ / "rated");
  c.data.split = SplitProtocol::kChronological;
  c.stages = {stage("preference", 1)};
  c.stages[0].objective.type = ObjectiveType::kSft;
  c.stages[0].objective.task = SftTask::kPreference;
  const Dataset data = Dataset::open(root_ / "rated");
  const LeaveOneOutSplit split(data);
  SftStage task(c, c.stages[0], Context::cpu(), data, split, Distributed{});
  const ModelConfig model_config = model_config_for(c, data.num_items());
  Decoder<float> model(Context::cpu(), model_config, task.max_tokens());
  model.load_parameters(initial_parameters(model_config, model.layout(), 3));
  const std::vector<uint32_t> examples = {0, 5, 17, 40};
  model.zero_gradients();
  const MicroBatch micro[] = {examples};
  const StepLosses losses = task.forward_backward(model, micro, 0, DataShard{});
  EXPECT_GT(losses.loss, 0.0);
  // ∂L/∂hidden of the micro-batch: non-zero at each prompt's last position only.
  std::vector<int32_t> answer_rows;
  int32_t end = 0;
  for (uint32_t e : examples) {
    end += task.example_tokens(e);
    answer_rows.push_back(end - 1);
  }
  const int C = model_config.d_model;
  std::vector<float> dhidden(static_cast<size_t>(end) * C);
  copy_bytes(dhidden.data(), Device::kCpu, model.hidden_gradient(), Device::kCpu,
             dhidden.size() * sizeof(float));
  for (int32_t row = 0; row < end; ++row) {
    double norm = 0.0;
    for (int ch = 0; ch < C; ++ch) norm += std::abs(dhidden[static_cast<size_t>(row) * C + ch]);
    const bool answer = std::find(answer_rows.begin(), answer_rows.end(), row) != answer_rows.end();
    if (answer) {
      EXPECT_GT(norm, 0.0) << "answer row " << row;
    } else {
      EXPECT_EQ(norm, 0.0) << "prompt row " << row;
    }
  }
}

TEST_F(PipelineTest, ResumeSkipsAFinishedStage) {
  RunConfig c = config("resume-stages", root_ / "old");
  c.stages = {stage("first", 1), stage("second", 2)};
  ASSERT_EQ(train(c, {}), TrainStatus::kCompleted);
  const fs::path first = best_of(c, "first");
  // As if the run had died before the second stage wrote its final metrics.
  fs::remove(fs::path(c.run.output_dir) / "final_metrics-second.json");
  TrainerOptions resume;
  resume.resume = true;
  testing::internal::CaptureStdout();
  ASSERT_EQ(train(c, resume), TrainStatus::kCompleted);
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("stage first already finished"), std::string::npos) << out;
  EXPECT_EQ(best_of(c, "first"), first);
}

TEST_F(PipelineTest, FineTuningOnNewLogsLearnsTheNewItemsAndKeepsKnownRows) {
  RunConfig base = config("base", root_ / "old");
  base.stages = {stage("pretrain", 6)};
  ASSERT_EQ(train(base, {}), TrainStatus::kCompleted);
  const fs::path pretrained = best_of(base, "pretrain");

  RunConfig tuned = config("tuned", root_ / "old");
  tuned.stages = {stage("newlogs", 8)};
  tuned.stages[0].init = {InitFrom::kCheckpoint, pretrained.string()};
  tuned.stages[0].data = (root_ / "new").string();
  tuned.stages[0].finetune.known_items = KnownItems::kFrozen;
  ASSERT_EQ(train(tuned, {}), TrainStatus::kCompleted);

  const CheckpointData before = load_checkpoint(pretrained);
  const CheckpointData after = load_checkpoint(best_of(tuned, "newlogs"));
  ASSERT_EQ(after.item_ids.size(), 60u);  // 30 known (old0..old29) then the 30 new ones
  for (int i = 0; i < 30; ++i) EXPECT_EQ(after.item_ids[i], before.item_ids[i]);
  const int C = before.model_config.d_model;
  for (int64_t k = kFirstItemToken * C; k < (kFirstItemToken + 30) * C; ++k) {
    ASSERT_EQ(after.parameters[k], before.parameters[k]) << "known row element " << k;
  }
  const json result = read_json(fs::path(tuned.run.output_dir) / "final_metrics.json");
  EXPECT_GT(result["test/hr@10"].get<double>(), 0.8) << result.dump(2);

  CheckpointedModel model = open_checkpointed_model(Context::cpu(), best_of(tuned, "newlogs"), 4);
  Dataset aligned = Dataset::open(model.data_path);
  std::vector<int32_t> history;
  for (const char* id : {"new3", "new4", "new5"}) history.push_back(*aligned.find_item(id));
  const std::vector<Recommendation> top =
      recommend(*model.model, aligned.num_items(), history, 1, true, false);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(aligned.item_name(top[0].item), "new6");
}

}  // namespace
}  // namespace recforge
