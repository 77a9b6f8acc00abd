// The options by which `eval` and `recommend` name a trained model: a run directory (its best
// checkpoint) or a checkpoint directory, and optionally another dataset directory.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>

#include "kernels/check.h"
#include "train/eval/checkpointed_model.h"

namespace recforge {

struct ModelSource {
  std::string run, checkpoint, data;
  CLI::Option *run_option = nullptr, *checkpoint_option = nullptr;

  void add_options(CLI::App* command) {
    run_option = command->add_option("--run", run, "a run directory (its best checkpoint)");
    checkpoint_option = command->add_option("--checkpoint", checkpoint, "a checkpoint directory");
    run_option->excludes(checkpoint_option);
    command->add_option("--data", data, "dataset directory (default: the training one)");
  }
  // Throws unless --run or --checkpoint was given; `command` names the subcommand.
  void require(const std::string& command) const {
    if (!*run_option && !*checkpoint_option) {
      throw Error(command + " needs --run DIR or --checkpoint DIR");
    }
  }
  std::filesystem::path checkpoint_path() const {
    return checkpoint.empty() ? best_checkpoint_of_run(run) : std::filesystem::path(checkpoint);
  }
  std::filesystem::path data_path(const CheckpointedModel& model) const {
    return data.empty() ? model.data_path : std::filesystem::path(data);
  }
};

}  // namespace recforge
