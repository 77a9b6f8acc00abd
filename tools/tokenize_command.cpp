// `recforge tokenize`: each line of stdin as the model's token ids, space-separated, one line out
// per line in (no special tokens added; special-token text is encoded as ordinary text).
#include <iostream>
#include <string>

#include "model/llama/load.h"
#include "tools/commands.h"

namespace recforge {
namespace {

void run_tokenize(const std::string& model_path) {
  const Tokenizer tokenizer(load_tokenizer_spec(model_path));
  std::string line;
  while (std::getline(std::cin, line)) {
    const std::vector<int32_t> ids = tokenizer.encode(line);
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << '\n';
  }
}

}  // namespace

void register_tokenize_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  CLI::App* command =
      app.add_subcommand("tokenize", "Print the token ids of each line of stdin (no specials)");
  command->add_option("--model", *model, "GGUF file or Hugging Face model directory")->required();
  command->callback([model] { run_tokenize(*model); });
}

}  // namespace recforge
