// `recforge recommend --checkpoint DIR | --run DIR (--user ID | --history "i1 i2 ...")`: the top-K
// items for a user of the training data (after their whole history) or for an explicit history
// of original item ids, printed as "rank<TAB>item<TAB>score".
// `recforge recommend --model FILE [--adapter DIR] --data DIR --user ID`: a language model's top-K
// titles for the user (train/text/title_ranking.h: the prompt from the user's most recent titles,
// every other title of the catalogue scored as the answer), "rank<TAB>item<TAB>title<TAB>log p".
#include <cstdio>
#include <optional>
#include <sstream>

#include "kernels/check.h"
#include "tools/commands.h"
#include "tools/model_source.h"
#include "train/data/dataset.h"
#include "train/data/item_titles.h"
#include "train/eval/checkpointed_model.h"
#include "train/eval/evaluation.h"
#include "train/text/text_trainer.h"
#include "train/text/title_ranking.h"

namespace recforge {
namespace {

struct RecommendOptions {
  ModelSource source;
  std::string user, history, device = "auto";
  int k = 10;
  bool exclude_history = false;
  std::string model, adapter;
  int recent = 10;
  std::string template_text =
      "The user watched these movies, oldest first: {history}.\nWhich movie will the user "
      "watch next? Answer with the title only.";
};

void run_text_recommend(const RecommendOptions& options) {
  RECFORGE_CHECK(!options.source.data.empty() && !options.user.empty(),
                 "recommend --model needs --data DIR (a dataset with titles) and --user ID");
  const Dataset data = Dataset::open(options.source.data);
  const std::vector<std::string> titles = read_dataset_titles(data);
  const std::optional<int32_t> user = data.find_user(options.user);
  RECFORGE_CHECK(user.has_value(), "user \"", options.user, "\" is not in the dataset ",
                 data.directory().string());
  const auto items = data.items(*user);
  std::vector<std::string> history;
  for (size_t j = items.size() > static_cast<size_t>(options.recent) ? items.size() - options.recent
                                                                     : 0;
       j < items.size(); ++j) {
    history.push_back(titles[items[j]]);
  }
  TextModel loaded = load_text_model(options.model, options.adapter, parse_device(options.device),
                                     Precision::kFp32, 256);
  const std::vector<int> seen(items.begin(), items.end());
  const std::vector<RankedTitle> top = rank_titles(
      *loaded.model, loaded.tokenizer, next_title_message(history, options.template_text), titles,
      seen, options.k, loaded.config.max_len);
  for (size_t i = 0; i < top.size(); ++i) {
    std::printf("%zu\t%s\t%s\t%.4f\n", i + 1, data.item_name(top[i].item).c_str(),
                titles[top[i].item].c_str(), top[i].log_prob);
  }
}

// The model's item of each original id of --history: through the checkpoint's own vocabulary, or
// the dataset's when the checkpoint recorded none.
std::vector<int32_t> explicit_history(const CheckpointedModel& loaded, const ModelSource& source,
                                      const std::string& history) {
  std::vector<std::string> ids;
  std::stringstream stream(history);
  for (std::string id; stream >> id;) ids.push_back(id);
  if (ids.empty()) throw Error("--history is empty: give at least one item id");
  if (!loaded.item_ids.empty()) {
    return match_item_ids(loaded.item_ids, ids, (loaded.checkpoint / "items.tsv").string(),
                          "--history");
  }
  const Dataset data = Dataset::open(source.data_path(loaded));
  const std::vector<int32_t> model_item = model_items_of(loaded, data);
  std::vector<int32_t> items;
  for (const std::string& id : ids) {
    std::optional<int32_t> item = data.find_item(id);
    if (!item) throw Error("--history: item \"" + id + "\" is not in the dataset's catalog");
    items.push_back(model_item[*item]);
  }
  return items;
}

// The model's items of a user's whole history in the dataset.
std::vector<int32_t> user_history(const CheckpointedModel& loaded, const Dataset& data,
                                  const std::string& user) {
  std::optional<int32_t> found = data.find_user(user);
  if (!found) {
    throw Error("user \"" + user + "\" is not in the dataset " + data.directory().string());
  }
  const std::vector<int32_t> model_item = model_items_of(loaded, data);
  std::vector<int32_t> items;
  for (int32_t item : data.items(*found)) items.push_back(model_item[item]);
  return items;
}

void run_recommend(const RecommendOptions& options) {
  Context ctx = Context::create(parse_device(options.device));
  const std::filesystem::path checkpoint = options.source.checkpoint_path();
  CheckpointedModel loaded = open_checkpointed_model(ctx, checkpoint, 1);
  std::optional<Dataset> data;
  if (!options.user.empty() || loaded.item_ids.empty()) {
    data.emplace(Dataset::open(options.source.data_path(loaded)));
  }
  const std::vector<int32_t> history =
      options.user.empty() ? explicit_history(loaded, options.source, options.history)
                           : user_history(loaded, *data, options.user);
  const std::vector<Recommendation> top =
      recommend(*loaded.model, loaded.num_items(), history, options.k, options.exclude_history,
                loaded.masked, loaded.prompt);
  for (size_t i = 0; i < top.size(); ++i) {
    const std::string& name =
        loaded.item_ids.empty() ? data->item_name(top[i].item) : loaded.item_ids[top[i].item];
    std::printf("%zu\t%s\t%.4f\n", i + 1, name.c_str(), top[i].score);
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
      ->check(at_least(1))
      ->capture_default_str();
  command->add_flag("--exclude-history", options->exclude_history,
                    "never recommend an item of the history");
  command->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  command->add_option(
      "--model", options->model,
      "a pretrained language model (GGUF, Hugging Face directory or "
      "smollm2-135m-instruct) ranking the catalogue's titles; needs --data, --user");
  command->add_option("--adapter", options->adapter, "--model: a PEFT LoRA adapter directory");
  command->add_option("--recent", options->recent, "--model: most recent titles in the prompt")
      ->check(at_least(1))
      ->capture_default_str();
  command->add_option("--template", options->template_text, "--model: prompt with {history}");
  command->callback([options, user, history] {
    if (!options->model.empty()) return run_text_recommend(*options);
    options->source.require("recommend");
    if (!*user && !*history) throw Error("recommend needs --user ID or --history \"i1 i2 ...\"");
    run_recommend(*options);
  });
}

}  // namespace recforge
