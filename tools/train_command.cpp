// `recforge train CONFIG [key=value ...]`: runs every stage of a YAML configuration. SIGINT and
// SIGTERM ask the trainer to save a checkpoint after the current step and exit; `--resume`
// continues from the run directory's latest checkpoint.
//
// Multi-process runs: `--nproc N` (N > 1) starts N workers on this host (tools/launcher.h), each
// this same command line without --nproc; otherwise the process finds its rank from
// --rank/--world-size/--local-rank or a launcher's variables (train/dist/launch.h) and hands it to
// the trainer.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "kernels/check.h"
#include "tools/commands.h"
#include "tools/launcher.h"
#include "train/config/config.h"
#include "train/dist/communicator.h"
#include "train/dist/launch.h"
#include "train/text/text_trainer.h"
#include "train/trainer.h"

namespace recforge {
namespace {

struct TrainCommandOptions {
  std::string config;
  std::vector<std::string> overrides;
  TrainerOptions trainer;
  std::vector<std::string> command_line;
  int nproc = 1;
  int rank = 0, world_size = 1, local_rank = 0;
  const CLI::Option* rank_flag = nullptr;
  const CLI::Option* world_size_flag = nullptr;
  const CLI::Option* local_rank_flag = nullptr;
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

void exit_with(int code) {
  std::fflush(stdout);
  std::exit(code);
}

void run_train(const TrainCommandOptions& options, const TrainerOptions& trainer) {
  RunConfig config = load_config(options.config, options.overrides);
  install_stop_handlers();
  TrainStatus status = TrainStatus::kCompleted;
  try {
    status = config.text_run() ? train_text(config, trainer) : train(config, trainer);
  } catch (const Error& e) {
    if (trainer.launch.world_size == 1) throw;
    end_job(concat("error on rank ", trainer.launch.rank, ": ", e.what()), 1);
  }
  if (status == TrainStatus::kInterrupted) exit_with(kInterruptedExitCode);
}

LaunchFlags launch_flags(const TrainCommandOptions& options) {
  LaunchFlags flags;
  if (options.rank_flag->count() > 0) flags.rank = options.rank;
  if (options.world_size_flag->count() > 0) flags.world_size = options.world_size;
  if (options.local_rank_flag->count() > 0) flags.local_rank = options.local_rank;
  return flags;
}

// This binary (argv[0] may be relative or a name found in PATH) with the same arguments less
// --nproc.
std::vector<std::string> worker_command_line(const std::vector<std::string>& command_line) {
  std::vector<std::string> argv = without_option(command_line, "--nproc");
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) argv[0] = self.string();
  return argv;
}

int launch_workers(const TrainCommandOptions& options, const LaunchFlags& flags) {
  if (flags.rank || flags.world_size || flags.local_rank) {
    throw Error("--nproc starts its own ranks: drop --rank, --world-size and --local-rank");
  }
  for (const char* key : {"RANK", "WORLD_SIZE"}) {
    const char* value = std::getenv(key);
    if (value != nullptr && *value != '\0') {
      throw Error(concat("--nproc ", options.nproc,
                         " in a process that is already part of a launch (", key, "=", value,
                         " is set): use either --nproc or another launcher (torchrun, mpirun, "
                         "srun), not both"));
    }
  }
  load_config(options.config, options.overrides);  // a bad config fails once, not in every worker
  return run_workers(options.nproc, worker_command_line(options.command_line));
}

void run_command(const TrainCommandOptions& options) {
  const LaunchFlags flags = launch_flags(options);
  if (options.nproc > 1) {
    if (int code = launch_workers(options, flags); code != 0) exit_with(code);
    return;
  }
  TrainerOptions trainer = options.trainer;
  trainer.launch = detect_launch(flags);
  if (trainer.launch.source != "none") {
    std::printf("launch: %s\n", describe(trainer.launch).c_str());
    std::fflush(stdout);
  }
  run_train(options, trainer);
}

}  // namespace

void register_train_command(CLI::App& app, const std::vector<std::string>& command_line) {
  auto options = std::make_shared<TrainCommandOptions>();
  options->command_line = command_line;
  CLI::App* command = app.add_subcommand("train", "Train on a prepared dataset from a YAML config");
  command->add_option("config", options->config, "the YAML configuration")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("overrides", options->overrides,
                      "key=value overrides, e.g. stages.0.train.lr=3e-4 run.device=cpu");
  command->add_flag("--resume", options->trainer.resume,
                    "continue from the run directory's latest checkpoint");
  command->add_flag("--allow-config-change", options->trainer.allow_config_change,
                    "resume even though a setting that decides the data order changed");
  command->add_option("--interrupt-after-steps", options->trainer.interrupt_after_steps,
                      "stop as if interrupted after N optimizer steps (for resume tests)");
  command
      ->add_option("--nproc", options->nproc,
                   "start N worker processes on this host (RANK, WORLD_SIZE, LOCAL_RANK, "
                   "MASTER_ADDR, MASTER_PORT set for each), like torchrun")
      ->check(CLI::Range(1, 1024));
  options->rank_flag = command->add_option(
      "--rank", options->rank, "this process's rank (default: from torchrun, mpirun or srun)");
  options->world_size_flag =
      command->add_option("--world-size", options->world_size, "the number of processes");
  options->local_rank_flag =
      command->add_option("--local-rank", options->local_rank, "this process's index on its host");
  command->callback([options] { run_command(*options); });
}

}  // namespace recforge
