// What a stage trains, set up once at its start, after its starting weights are loaded
// (train/setup/stage_start.h):
//   full fine-tuning   the whole model, except that with finetune.known_items frozen (or at their
//                      own learning rate) the embedding rows of the checkpoint's items form their
//                      own group (or none);
//   LoRA               adapters on the targeted layers (A from the run's seed, B = 0), the base
//                      frozen (no base weight gradient is computed), and as groups the adapters,
//                      the special-token rows (task and answer tokens a pre-trained model never
//                      saw), the new items' rows and, unless frozen, the known items' rows.
#pragma once

#include <cstdint>
#include <vector>

#include "model/decoder.h"
#include "model/lora.h"
#include "train/config/config.h"
#include "train/optim/optimizer.h"
#include "train/setup/stage_start.h"

namespace recforge {

LoraConfig lora_config(const LoraSection& section);

// Adds the stage's adapters to `model` (LoRA only) and returns the parameter groups AdamW trains.
std::vector<ParameterGroup> set_up_finetuning(Decoder<float>& model,
                                              const FinetuneSection& finetune,
                                              const StageStart& start, uint64_t seed);

}  // namespace recforge
