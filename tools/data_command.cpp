// `recforge data prepare`: interaction logs -> a prepared dataset directory (train/data/dataset.h).
// `recforge data synth`: a CSV log with planted sequential structure (train/data/log_synth.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "tools/commands.h"
#include "train/data/dataset.h"
#include "train/data/event_split.h"
#include "train/data/item_titles.h"
#include "train/data/log_synth.h"
#include "train/text/log_prompts.h"

namespace recforge {
namespace {

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string output;
  std::string items_delimiter = ",";
  PrepareOptions options;
};

struct SynthArgs {
  std::string output;
  SynthOptions options;
};

void run_prepare(const PrepareArgs& args) {
  std::vector<std::filesystem::path> inputs(args.inputs.begin(), args.inputs.end());
  PrepareReport report = prepare_dataset(inputs, args.options, args.output);
  std::printf("prepared %s: %lld interactions, %lld users, %lld items\n", args.output.c_str(),
              static_cast<long long>(report.interactions), static_cast<long long>(report.users),
              static_cast<long long>(report.items));
  std::printf(
      "read %lld lines (%lld skipped), %lld interactions before dedup and k-core (%d "
      "rounds)\n",
      static_cast<long long>(report.lines_read), static_cast<long long>(report.lines_skipped),
      static_cast<long long>(report.interactions_read), report.kcore_rounds);
  if (report.lines_skipped > 0)
    std::printf("first skipped line: %s\n", report.first_bad_line.c_str());
  std::printf(
      "parse %.2f s (%.2f M lines/s, %.2f M interactions/s), total %.2f s (%.2f M "
      "lines/s, %.2f M interactions/s)\n",
      report.parse_seconds, report.lines_read / report.parse_seconds / 1e6,
      report.interactions_read / report.parse_seconds / 1e6, report.seconds,
      report.lines_read / report.seconds / 1e6, report.interactions_read / report.seconds / 1e6);
  std::printf("cpu %.2f s (%.2f M lines/s per core; single-threaded)\n", report.cpu_seconds,
              report.lines_read / report.cpu_seconds / 1e6);
}

void register_prepare(CLI::App& data) {
  auto args = std::make_shared<PrepareArgs>();
  PrepareOptions& o = args->options;
  CLI::App* prepare =
      data.add_subcommand("prepare", "Interaction logs -> a memory-mappable dataset directory");
  prepare->add_option("--input", args->inputs, "log file (repeatable; read in order)")->required();
  prepare->add_option("--format", o.format, "log format")
      ->required()
      ->check(CLI::IsMember({"csv", "tsv", "seq", "pairs"}));
  prepare->add_option("--user-col", o.user_col, "csv/tsv: 0-based user column")
      ->capture_default_str();
  prepare->add_option("--item-col", o.item_col, "csv/tsv: 0-based item column")
      ->capture_default_str();
  prepare->add_option("--time-col", o.time_col, "csv/tsv: 0-based time column, -1 for none")
      ->capture_default_str();
  prepare->add_option("--rating-col", o.rating_col, "csv/tsv: 0-based rating column, -1 for none")
      ->capture_default_str();
  prepare->add_flag("--header", o.header, "skip each file's first line");
  prepare->add_flag("--skip-bad-lines", o.skip_bad_lines, "count and skip malformed lines");
  prepare->add_option("--dedup", o.dedup, "drop repeated (user, item) events, keeping the first")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "consecutive", "all"}));
  prepare->add_option("--min-user-interactions", o.min_user_interactions, "k-core: users")
      ->capture_default_str()
      ->check(at_least(0));
  prepare->add_option("--min-item-interactions", o.min_item_interactions, "k-core: items")
      ->capture_default_str()
      ->check(at_least(0));
  prepare->add_option("--output", args->output, "dataset directory (created on success)")
      ->required();
  prepare->add_flag("--overwrite", o.overwrite,
                    "replace a dataset already at --output (once the new one is complete)");
  prepare->add_option("--items", o.items_file,
                      "item titles: a delimited file (id and title fields) or a JSON array of "
                      "{id, title}, stored as titles.tsv for text prompts");
  prepare->add_option("--items-delimiter", args->items_delimiter, "--items: field delimiter")
      ->capture_default_str();
  prepare->add_option("--items-id-col", o.item_titles.id_col, "--items: 0-based id field")
      ->capture_default_str()
      ->check(at_least(0));
  prepare->add_option("--items-title-col", o.item_titles.title_col, "--items: 0-based title field")
      ->capture_default_str()
      ->check(at_least(0));
  prepare->add_flag("--items-header", o.item_titles.header, "--items: skip the first line");
  prepare
      ->add_option("--items-encoding", o.item_titles.encoding,
                   "--items: utf-8, or latin-1 (converted to UTF-8 on read)")
      ->capture_default_str()
      ->check(CLI::IsMember({"utf-8", "latin-1"}));
  prepare->callback([args] {
    RECFORGE_CHECK(args->items_delimiter.size() == 1 || args->items_delimiter == "\\t",
                   "--items-delimiter: expected one character (or \\t), got \"",
                   args->items_delimiter, "\"");
    args->options.item_titles.delimiter =
        args->items_delimiter == "\\t" ? '\t' : args->items_delimiter[0];
    run_prepare(*args);
  });
}

void register_synth(CLI::App& data) {
  auto args = std::make_shared<SynthArgs>();
  SynthOptions& o = args->options;
  CLI::App* synth = data.add_subcommand(
      "synth", "Write a CSV log (user,item,timestamp) with planted successor chains");
  synth->add_option("--output", args->output, "CSV file")->required();
  synth->add_option("--users", o.users, "users")->capture_default_str();
  synth->add_option("--items", o.items, "items")->capture_default_str();
  synth->add_option("--seed", o.seed, "random seed")->capture_default_str();
  synth->add_option("--min-length", o.min_length, "shortest sequence")->capture_default_str();
  synth->add_option("--max-length", o.max_length, "longest sequence")->capture_default_str();
  synth->callback([args] {
    int64_t written = write_synthetic_log(args->options, args->output);
    std::printf("wrote %s: %lld interactions of %lld users over %d items\n", args->output.c_str(),
                static_cast<long long>(written), static_cast<long long>(args->options.users),
                args->options.items);
  });
}

}  // namespace

struct PromptsArgs {
  std::string data, task = "candidate_choice", part = "test", split = "chronological", output;
  std::string save_candidates;
  LogPromptOptions options;
};

void run_prompts(const PromptsArgs& args) {
  LogPromptOptions options = args.options;
  options.part = parse_split_part(args.part);
  const Dataset data = Dataset::open(args.data);
  const std::vector<std::string> titles = read_dataset_titles(data);
  const EventSplit split = args.split == "chronological" ? EventSplit::chronological(data, {})
                                                         : EventSplit::leave_one_out(data);
  size_t count = 0;
  if (args.task == "preference") {
    const auto examples = preference_prompts(split, titles, options);
    write_instruction_file(args.output, examples);
    count = examples.size();
  } else {
    const std::vector<CandidateList> lists = candidate_lists(split, titles, options);
    const auto examples = candidate_prompts(data, titles, lists, options);
    write_candidate_file(args.output, examples);
    if (!args.save_candidates.empty()) save_candidate_lists(args.save_candidates, lists);
    count = examples.size();
  }
  std::printf("%zu %s prompts (%s part, %s split) written to %s\n", count, args.task.c_str(),
              args.part.c_str(), args.split.c_str(), args.output.c_str());
}

void register_prompts(CLI::App& data) {
  auto args = std::make_shared<PromptsArgs>();
  LogPromptOptions& o = args->options;
  CLI::App* prompts = data.add_subcommand(
      "prompts", "A dataset with titles -> a prompt file (TALLRec or S-DPO JSON) for LLM tuning");
  prompts->add_option("--data", args->data, "prepared dataset with titles (prepare --items)")
      ->required();
  prompts->add_option("--task", args->task, "preference (TALLRec) or candidate_choice (S-DPO)")
      ->capture_default_str()
      ->check(CLI::IsMember({"preference", "candidate_choice"}));
  prompts->add_option("--part", args->part, "train, valid or test")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "valid", "test"}));
  prompts
      ->add_option("--split", args->split,
                   "chronological (last 10% test, 10% valid) or "
                   "leave_one_out")
      ->capture_default_str()
      ->check(CLI::IsMember({"chronological", "leave_one_out"}));
  prompts->add_option("--per-user", o.per_user, "target events per user")
      ->capture_default_str()
      ->check(at_least(1));
  prompts->add_option("--history", o.history, "most recent titles shown")
      ->capture_default_str()
      ->check(at_least(1));
  prompts->add_option("--candidates", o.candidates, "candidate_choice: candidates per prompt")
      ->capture_default_str()
      ->check(at_least(2));
  prompts->add_option("--like-threshold", o.like_threshold, "preference: a like's least rating")
      ->capture_default_str();
  prompts->add_option("--seed", o.seed, "negative candidates' seed")->capture_default_str();
  prompts->add_option("--noun", o.noun, "preference: what an item is (movie, book, ...)")
      ->capture_default_str();
  prompts->add_option("--output", args->output, "JSON prompt file")->required();
  prompts->add_option("--save-candidates", args->save_candidates,
                      "candidate_choice: also write the candidate lists as item ids here (for "
                      "`recforge eval --run DIR --candidates FILE`)");
  prompts->callback([args] { run_prompts(*args); });
}

void register_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Prepare interaction logs");
  data->require_subcommand(1);
  register_prepare(*data);
  register_synth(*data);
  register_prompts(*data);
}

}  // namespace recforge
