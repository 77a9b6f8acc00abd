// The `recforge` subcommands. Each registers its options on the CLI11 app and runs when selected.
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

namespace recforge {

// A check for integer options whose message says what is expected ("an integer >= 1, got 0");
// CLI11's own range checks print the whole range of a double instead.
inline CLI::Validator at_least(int64_t low) {
  return CLI::Validator(
      [low](std::string& text) -> std::string {
        int64_t value = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error == std::errc() && end == text.data() + text.size() && value >= low) return "";
        return "expected an integer >= " + std::to_string(low) + ", got \"" + text + "\"";
      },
      ">= " + std::to_string(low));
}

void register_demo_command(CLI::App& app);
void register_bench_command(CLI::App& app);
// `bench kernels`, under the `bench` subcommand (registered by register_bench_command).
void register_kernel_bench_command(CLI::App& bench);
// `bench llm`, likewise (tools/bench_command.cpp).
void register_llm_bench_command(CLI::App& bench);
// `command_line` is the process's argv: `train --nproc N` starts its workers with it.
void register_train_command(CLI::App& app, const std::vector<std::string>& command_line);
void register_eval_command(CLI::App& app);
void register_recommend_command(CLI::App& app);
void register_data_command(CLI::App& app);
void register_generate_command(CLI::App& app);
void register_convert_command(CLI::App& app);
void register_tokenize_command(CLI::App& app);

}  // namespace recforge
