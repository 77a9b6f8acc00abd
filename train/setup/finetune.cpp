#include "train/setup/finetune.h"

#include <algorithm>

#include "model/vocabulary.h"

namespace recforge {
namespace {

// The groups over the model's parameter buffer: [0, known) and the rest, with the known items'
// rows [known_begin, known_end) kept out, trained at their own rate or not at all.
std::vector<ParameterGroup> trainable_groups(Decoder<float>& model, const FinetuneSection& finetune,
                                             const StageStart& start) {
  const ParameterLayout& layout = model.layout();
  ParameterGroup all = whole_buffer(model.parameters(), model.gradients(), layout.num_decayed());
  const bool lora = finetune.method == FinetuneMethod::kLora;
  const bool separate =
      lora ||
      (start.checkpoint && start.known_items > 0 &&
       (finetune.known_items == KnownItems::kFrozen || finetune.known_items_lr_scale != 1.0f));
  if (!separate) return {all};
  const int64_t known_begin = layout.token_row_offset(kFirstItemToken);
  const int64_t known_end = layout.token_row_offset(kFirstItemToken + start.known_items);
  RECFORGE_CHECK(layout.offset("wte") == 0, "the token embedding must lead the parameter layout");
  auto range = [&](int64_t begin, int64_t end) {
    const int64_t decayed = std::clamp(layout.num_decayed() - begin, int64_t{0}, end - begin);
    return ParameterGroup{all.parameters + begin, all.gradients + begin, end - begin, decayed};
  };
  std::vector<ParameterGroup> groups = {range(0, known_begin)};
  if (finetune.known_items == KnownItems::kTrain && known_end > known_begin) {
    groups.push_back(range(known_begin, known_end));
    groups.back().lr_scale = finetune.known_items_lr_scale;
  }
  if (!lora) {
    groups.push_back(range(known_end, layout.total_size()));
    return groups;
  }
  const int64_t wte_end = layout.token_row_offset(model.config().vocab_size);
  if (wte_end > known_end) groups.push_back(range(known_end, wte_end));
  groups.push_back(whole_buffer(model.adapter_parameters(), model.adapter_gradients(),
                                model.lora_layout().total_size()));
  return groups;
}

}  // namespace

LoraConfig lora_config(const LoraSection& section) {
  LoraConfig config;
  config.rank = section.rank;
  config.alpha = section.alpha;
  config.rslora = section.rslora;
  config.dropout = section.dropout;
  config.targets = section.targets;
  return config;
}

std::vector<ParameterGroup> set_up_finetuning(Decoder<float>& model,
                                              const FinetuneSection& finetune,
                                              const StageStart& start, uint64_t seed) {
  if (finetune.method == FinetuneMethod::kLora) {
    model.enable_lora(lora_config(finetune.lora), seed);
    model.set_base_frozen(true);
  }
  return trainable_groups(model, finetune, start);
}

}  // namespace recforge
