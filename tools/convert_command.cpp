// `recforge convert --model FILE.gguf --output DIR`: a pretrained model rewritten as a Hugging Face
// directory (config.json, model.safetensors in F32, tokenizer.json, tokenizer_config.json) that
// `transformers` loads, e.g. a quantized GGUF dequantized once for other tools.
#include <cstdio>

#include "model/llama/export.h"
#include "model/llama/load.h"
#include "tools/commands.h"

namespace recforge {
namespace {

struct ConvertOptions {
  std::string model, output;
  bool overwrite = false;
};

void run_convert(const ConvertOptions& options) {
  const std::filesystem::path output = options.output;
  RECFORGE_CHECK(options.overwrite || !std::filesystem::exists(output / "model.safetensors"),
                 output.string(), " already holds a model; pass --overwrite to replace it");
  const PretrainedLlama pretrained = load_pretrained_llama(options.model);
  save_llama_hf_directory(output, pretrained.config, pretrained.parameters, pretrained.tokenizer);
  std::printf("%s: %s\n", output.string().c_str(), pretrained.config.describe().c_str());
}

}  // namespace

void register_convert_command(CLI::App& app) {
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* command = app.add_subcommand(
      "convert", "Rewrite a pretrained model (GGUF) as a Hugging Face directory");
  command->add_option("--model", options->model, "GGUF file or Hugging Face model directory")
      ->required();
  command->add_option("--output", options->output, "the directory to write")->required();
  command->add_flag("--overwrite", options->overwrite, "replace a model already there");
  command->callback([options] { run_convert(*options); });
}

}  // namespace recforge
