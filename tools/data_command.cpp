// `recforge data prepare`: interaction logs -> a prepared dataset directory (train/data/dataset.h).
// `recforge data synth`: a CSV log with planted sequential structure (train/data/log_synth.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "train/data/dataset.h"
#include "train/data/log_synth.h"

namespace recforge {
namespace {

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string output;
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
  prepare->callback([args] { run_prepare(*args); });
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

void register_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Prepare interaction logs");
  data->require_subcommand(1);
  register_prepare(*data);
  register_synth(*data);
}

}  // namespace recforge
