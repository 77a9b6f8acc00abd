// `recforge recommend --checkpoint DIR | --run DIR (--user ID | --history "i1 i2 ...")`: the top-K
// items for a user of the training data (after their whole history) or for an explicit history
// of original item ids, printed as "rank<TAB>item<TAB>score".
#include <cstdio>
#include <sstream>

#include "kernels/check.h"
#include "tools/commands.h"
#include "tools/model_source.h"
#include "train/data/dataset.h"
#include "train/eval/checkpointed_model.h"
#include "train/eval/evaluation.h"

namespace recforge {
namespace {

struct RecommendOptions {
  ModelSource source;
  std::string user, history, device = "auto";
  int k = 10;
  bool exclude_history = false;
};

std::vector<int32_t> history_items(const Dataset& data, const RecommendOptions& options) {
  if (!options.user.empty()) {
    std::optional<int32_t> user = data.find_user(options.user);
    if (!user)
      throw Error("user \"" + options.user + "\" is not in the dataset " +
                  data.directory().string());
    std::span<const int32_t> items = data.items(*user);
    return {items.begin(), items.end()};
  }
  std::vector<int32_t> items;
  std::stringstream stream(options.history);
  std::string id;
  while (stream >> id) {
    std::optional<int32_t> item = data.find_item(id);
    if (!item) throw Error("--history: item \"" + id + "\" is not in the dataset's catalog");
    items.push_back(*item);
  }
  if (items.empty()) throw Error("--history is empty: give at least one item id");
  return items;
}

void run_recommend(const RecommendOptions& options) {
  Context ctx = Context::create(parse_device(options.device));
  const std::filesystem::path checkpoint = options.source.checkpoint_path();
  CheckpointedModel loaded = open_checkpointed_model(ctx, checkpoint, 1);
  Dataset data = Dataset::open(options.source.data_path(loaded));
  std::vector<int32_t> history = history_items(data, options);
  const std::vector<Recommendation> top =
      recommend(*loaded.model, data.num_items(), history, options.k, options.exclude_history,
                loaded.masked, loaded.prompt);
  for (size_t i = 0; i < top.size(); ++i) {
    std::printf("%zu\t%s\t%.4f\n", i + 1, data.item_name(top[i].item).c_str(), top[i].score);
  }
}

}  // namespace

void register_recommend_command(CLI::App& app) {
  auto options = std::make_shared<RecommendOptions>();
  CLI::App* command = app.add_subcommand("recommend", "Top-K items for a user or a history");
  options->source.add_options(command);
  auto* user = command->add_option("--user", options->user, "a user id of the dataset");
  auto* history =
      command->add_option("--history", options->history, "item ids, oldest first, space-separated");
  user->excludes(history);
  command->add_option("--k", options->k, "how many items")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_flag("--exclude-history", options->exclude_history,
                    "never recommend an item of the history");
  command->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  command->callback([options, user, history] {
    options->source.require("recommend");
    if (!*user && !*history) throw Error("recommend needs --user ID or --history \"i1 i2 ...\"");
    run_recommend(*options);
  });
}

}  // namespace recforge
