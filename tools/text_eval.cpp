#include "tools/text_eval.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "train/text/text_evaluation.h"
#include "train/text/text_examples.h"
#include "train/text/text_trainer.h"

namespace recforge {

void run_text_eval(const TextEvalOptions& options) {
  RECFORGE_CHECK(!options.prompts.empty(), "eval --model needs --prompts FILE");
  PromptsSection prompts;
  prompts.task = parse_choice<TextTask>(options.task);
  prompts.template_text = options.template_text;
  prompts.max_context = options.max_context;
  prompts.train = options.demonstrations;
  prompts.in_context = options.in_context;
  RECFORGE_CHECK(prompts.in_context == 0 || !prompts.train.empty(),
                 "--in-context needs --demonstrations FILE");
  TextModel loaded = load_text_model(options.model, options.adapter, parse_device(options.device),
                                     parse_precision(options.precision), 256);
  const std::vector<TextExample> examples = load_text_examples(
      prompts, {options.prompts, 0, options.limit, 0, 0, true}, loaded.tokenizer);
  const TextEvalSettings settings{prompts.task, prompts.max_context, options.valid_ratio, "eval"};
  nlohmann::json result = evaluate_text(*loaded.model, loaded.tokenizer, examples, settings);
  result["model"] = options.model;
  result["task"] = options.task;
  result["prompts"] = options.prompts;
  if (!options.adapter.empty()) result["adapter"] = options.adapter;
  if (options.limit > 0) result["limit"] = options.limit;
  if (options.in_context > 0) result["in_context"] = options.in_context;
  std::printf("%s\n", result.dump(2).c_str());
}

}  // namespace recforge
