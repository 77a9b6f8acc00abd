// `recforge eval --run DIR | --checkpoint DIR`: ranking metrics of a trained model on its dataset's
// leave-one-out validation or test part, printed as one JSON object. Full ranking (optionally with
// each user's earlier items excluded) or the sampled protocol with seeded negatives, saved beside
// the output when --save-negatives is given.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/check.h"
#include "tools/commands.h"
#include "tools/model_source.h"
#include "tools/text_eval.h"
#include "train/config/config.h"
#include "train/data/candidate_lists.h"
#include "train/eval/checkpointed_model.h"
#include "train/eval/eval_cases.h"

namespace recforge {
namespace {

struct EvalCommandOptions {
  ModelSource source;
  std::string device = "auto", split = "test", protocol = "full";
  std::string ks = "1,5,10,20", sampled_by = "uniform", save_negatives, candidates;
  bool include_history = false;
  int negatives = 100, batch_size = 256, threads = 0;
  uint64_t seed = 1;
};

// "1,5,10,20": distinct cut-offs >= 1, each all digits; anything else ("1e2", "1;5", "") is
// refused rather than read as something else.
std::vector<int> parse_ks(const std::string& text) {
  std::vector<int> ks;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ',');) {
    int k = 0;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), k);
    if (part.empty() || error != std::errc() || end != part.data() + part.size() || k < 1 ||
        std::find(ks.begin(), ks.end(), k) != ks.end()) {
      throw Error("--k: \"" + part + "\" is not a new cut-off >= 1 (expected distinct integers, " +
                  "comma-separated, e.g. 1,5,10,20)");
    }
    ks.push_back(k);
  }
  if (ks.empty() || text.back() == ',') {
    throw Error("--k \"" + text + "\": expected cut-offs, comma-separated, e.g. 1,5,10,20");
  }
  return ks;
}

// Each list's target ranked among its own candidates (the same lists an LLM's candidate_choice
// prompts show), its history the user's first history_length events.
RankingMetrics rank_candidate_lists(CheckpointedModel& loaded, const Dataset& data,
                                    std::span<const int32_t> model_item,
                                    const std::vector<CandidateList>& lists,
                                    const EvalOptions& eval) {
  std::vector<EvalCase> cases;
  std::vector<std::vector<int32_t>> negatives;
  for (const CandidateList& list : lists) {
    const auto items = data.items(list.user);
    EvalCase c;
    for (int64_t j = 0; j < list.history_length; ++j) c.history.push_back(model_item[items[j]]);
    c.target = model_item[list.items[list.answer]];
    cases.push_back(std::move(c));
    negatives.emplace_back();
    for (size_t i = 0; i < list.items.size(); ++i) {
      if (static_cast<int>(i) != list.answer) negatives.back().push_back(model_item[list.items[i]]);
    }
  }
  return evaluate_sampled(*loaded.model, cases, negatives, eval);
}

void print_candidate_eval(CheckpointedModel& loaded, const std::filesystem::path& checkpoint,
                          const Dataset& data, std::span<const int32_t> model_item,
                          const EvalOptions& eval, const std::filesystem::path& file) {
  const std::vector<CandidateList> lists = load_candidate_lists(file);
  check_candidate_lists(lists, data, file);
  nlohmann::json result = {{"checkpoint", checkpoint.string()},
                           {"candidates", file.string()},
                           {"lists", lists.size()},
                           {"candidates_per_list", lists[0].items.size()}};
  const RankingMetrics metrics = rank_candidate_lists(loaded, data, model_item, lists, eval);
  for (const auto& [key, value] : metrics.as_map("")) result[key] = value;
  std::printf("%s\n", result.dump(2).c_str());
}

void run_eval(const EvalCommandOptions& options) {
  const std::vector<int> ks = parse_ks(options.ks);
  const Device device = parse_device(options.device);
  Context ctx = device == Device::kCuda ? Context::cuda() : Context::cpu(options.threads);
  const std::filesystem::path checkpoint = options.source.checkpoint_path();
  CheckpointedModel loaded = open_checkpointed_model(ctx, checkpoint, options.batch_size);
  const std::filesystem::path data_path = options.source.data_path(loaded);
  Dataset data = Dataset::open(data_path);
  const std::vector<int32_t> model_item = model_items_of(loaded, data);
  EvalOptions eval;
  eval.ks = ks;
  eval.batch_size = options.batch_size;
  eval.masked = loaded.masked;
  eval.prompt = loaded.prompt;
  if (!options.candidates.empty()) {
    print_candidate_eval(loaded, checkpoint, data, model_item, eval, options.candidates);
    return;
  }
  LeaveOneOutSplit split(data);
  const Split which = options.split == "valid" ? Split::kValid : Split::kTest;
  const EvalProtocol protocol = parse_choice<EvalProtocol>(options.protocol);
  const NegativeSampling sampled_by = parse_choice<NegativeSampling>(options.sampled_by);
  EvalCases cases = evaluation_cases(data, split, which, !options.include_history);
  renumber_items(cases, model_item);
  nlohmann::json result = {{"checkpoint", checkpoint.string()},
                           {"split", options.split},
                           {"protocol", options.protocol},
                           {"users", cases.cases.size()}};
  RankingMetrics metrics(eval.ks);
  if (protocol == EvalProtocol::kFull) {
    metrics = evaluate_full_ranking(*loaded.model, loaded.num_items(), cases.cases, eval);
    result["setting"] = options.include_history
                            ? "full ranking over all items, nothing excluded"
                            : "full ranking over all items, each user's earlier items excluded";
  } else {
    std::vector<int64_t> popularity;
    if (sampled_by == NegativeSampling::kPopularity) {
      popularity.assign(loaded.num_items(), 0);
      const std::vector<int64_t> counts = split.train_item_counts();
      for (size_t i = 0; i < counts.size(); ++i) popularity[model_item[i]] = counts[i];
    }
    auto negatives = sample_eval_negatives(cases.cases, cases.user_items, loaded.num_items(),
                                           options.negatives, popularity, options.seed);
    if (!options.save_negatives.empty()) save_negatives(options.save_negatives, negatives);
    metrics = evaluate_sampled(*loaded.model, cases.cases, negatives, eval);
    result["setting"] = std::to_string(options.negatives) + " " + options.sampled_by +
                        " negatives per user, seed " + std::to_string(options.seed);
  }
  for (const auto& [key, value] : metrics.as_map(options.split)) result[key] = value;
  std::printf("%s\n", result.dump(2).c_str());
}

}  // namespace

void register_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "eval", "Ranking metrics of a trained model, or a language model's on prompt files");
  options->source.add_options(command);
  command->add_option("--split", options->split, "valid or test")
      ->check(CLI::IsMember({"valid", "test"}))
      ->capture_default_str();
  command->add_option("--protocol", options->protocol, "full or sampled")
      ->check(CLI::IsMember({"full", "sampled"}))
      ->capture_default_str();
  command->add_option("--k", options->ks, "cut-offs, comma-separated")->capture_default_str();
  command->add_flag("--include-history", options->include_history,
                    "full ranking: also rank the user's earlier items");
  command->add_option("--negatives", options->negatives, "sampled: negatives per user")
      ->check(at_least(1))
      ->capture_default_str();
  command->add_option("--sampled-by", options->sampled_by, "sampled: uniform or popularity")
      ->check(CLI::IsMember({"uniform", "popularity"}))
      ->capture_default_str();
  command->add_option("--seed", options->seed, "sampled: seed of the negatives")
      ->capture_default_str();
  command->add_option("--save-negatives", options->save_negatives, "sampled: write them here");
  command->add_option("--candidates", options->candidates,
                      "rank each target among its own candidates instead (a file from `recforge "
                      "data prompts --save-candidates`)");
  command->add_option("--device", options->device, "cpu, cuda or auto")->capture_default_str();
  command->add_option("--threads", options->threads, "CPU threads (default: all)");
  command->add_option("--batch-size", options->batch_size, "users per forward pass")
      ->check(at_least(1))
      ->capture_default_str();
  auto text = std::make_shared<TextEvalOptions>();
  command->add_option("--model", text->model,
                      "a pretrained language model (GGUF or Hugging Face directory) instead of a "
                      "trained run: text-prompt tasks");
  command->add_option("--adapter", text->adapter, "--model: a PEFT LoRA adapter directory");
  command->add_option("--task", text->task, "--model: preference or candidate_choice")
      ->check(CLI::IsMember({"preference", "candidate_choice"}))
      ->capture_default_str();
  command->add_option("--prompts", text->prompts,
                      "--model: Alpaca/TALLRec or S-DPO JSON prompt file");
  command->add_option("--limit", text->limit, "--model: the first N examples only")
      ->check(at_least(1));
  command->add_option("--template", text->template_text,
                      "--model, candidate_choice: prompt with {history} and {candidates}");
  command->add_option("--precision", text->precision, "--model: linear weights fp32 or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  command
      ->add_option("--in-context", text->in_context,
                   "--model, preference: demonstrations per prompt (from --demonstrations)")
      ->check(at_least(0));
  command->add_option("--demonstrations", text->demonstrations,
                      "--model: the prompt file whose first --in-context examples are shown");
  command->add_option("--max-context", text->max_context, "--model: longest prompt, tokens")
      ->check(at_least(16))
      ->capture_default_str();
  command->add_flag("--valid-ratio", text->valid_ratio,
                    "--model, candidate_choice: also generate greedily and report ValidRatio");
  command->callback([options, text] {
    if (!text->model.empty()) {
      text->device = options->device;
      return run_text_eval(*text);
    }
    options->source.require("eval");
    run_eval(*options);
  });
}

}  // namespace recforge
