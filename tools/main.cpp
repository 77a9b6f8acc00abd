// recforge: one command-line binary with subcommands.
#include <csignal>
#include <cstdio>
#include <exception>

#include "kernels/check.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // Past `ulimit -f` a write fails with EFBIG, which the writer reports naming its file, instead of
  // the signal killing the process without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"recforge: LLM-style recommender training on interaction logs (CPU and CUDA)"};
  app.require_subcommand(1);
  recforge::register_demo_command(app);
  recforge::register_bench_command(app);
  recforge::register_train_command(app, std::vector<std::string>(argv, argv + argc));
  recforge::register_eval_command(app);
  recforge::register_recommend_command(app);
  recforge::register_data_command(app);
  recforge::register_generate_command(app);
  recforge::register_convert_command(app);
  recforge::register_tokenize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const recforge::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
