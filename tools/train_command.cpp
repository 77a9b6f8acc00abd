// `recforge train CONFIG [key=value ...]`: runs every stage of a YAML configuration. SIGINT and
// SIGTERM ask the trainer to save a checkpoint after the current step and exit; `--resume`
// continues from the run directory's latest checkpoint.
#include <csignal>
#include <cstdio>

#include "tools/commands.h"
#include "train/config.h"
#include "train/trainer.h"

namespace recforge {
namespace {

struct TrainCommandOptions {
  std::string config;
  std::vector<std::string> overrides;
  TrainerOptions trainer;
};

extern "C" void on_stop_signal(int) { request_stop(); }

void install_stop_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Exit codes of an interrupted run follow the shell's convention for the signal (128 + 15).
constexpr int kInterruptedExitCode = 143;

void run_train(const TrainCommandOptions& options) {
  RunConfig config = load_config(options.config, options.overrides);
  install_stop_handlers();
  if (train(config, options.trainer) == TrainStatus::kInterrupted) {
    std::fflush(stdout);
    std::exit(kInterruptedExitCode);
  }
}

}  // namespace

void register_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainCommandOptions>();
  CLI::App* command = app.add_subcommand("train", "Train on a prepared dataset from a YAML config");
  command->add_option("config", options->config, "the YAML configuration")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("overrides", options->overrides,
                      "key=value overrides, e.g. stages.0.train.lr=3e-4 run.device=cpu");
  command->add_flag("--resume", options->trainer.resume,
                    "continue from the run directory's latest checkpoint");
  command->add_option("--interrupt-after-steps", options->trainer.interrupt_after_steps,
                      "stop as if interrupted after N optimizer steps (for resume tests)");
  command->callback([options] { run_train(*options); });
}

}  // namespace recforge
