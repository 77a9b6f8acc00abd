// The `recforge` subcommands. Each registers its options on the CLI11 app and runs when selected.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace recforge {

void register_demo_command(CLI::App& app);
void register_bench_command(CLI::App& app);
// `bench kernels`, under the `bench` subcommand (registered by register_bench_command).
void register_kernel_bench_command(CLI::App& bench);
// `command_line` is the process's argv: `train --nproc N` starts its workers with it.
void register_train_command(CLI::App& app, const std::vector<std::string>& command_line);
void register_eval_command(CLI::App& app);
void register_recommend_command(CLI::App& app);
void register_data_command(CLI::App& app);

}  // namespace recforge
