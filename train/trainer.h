// The training loop: runs each stage of a configuration in its run directory — packed
// micro-batches of the objective, gradient accumulation, the learning-rate schedule, AdamW,
// periodic validation with early stopping, atomic checkpoints, exact resume, and the test metrics
// at the best validation checkpoint in `final_metrics.json`.
//
// Run directory: config.resolved.yaml, metrics.jsonl, checkpoints/<stage>-step<N>/ (the best and
// the latest are kept), negatives-<split>.txt (the sampled protocol's saved negatives),
// final_metrics.json.
//
// Determinism: the epoch order, the masked positions, the sampled negatives and the dropout masks
// all come from the counter-based generator keyed by (seed, epoch or step), and the checkpoint
// holds the parameters, AdamW's moments and step, and the data cursor; so a run interrupted and
// resumed (on the same device and thread count) logs the same losses, bit for bit, as one that
// was not.
#pragma once

#include <cstdint>

#include "train/config.h"

namespace recforge {

struct TrainerOptions {
  bool resume = false;  // continue from the run directory's latest checkpoint
  // > 0: act as if SIGTERM arrived once this many optimizer steps are done (tests of resume).
  int64_t interrupt_after_steps = 0;
};

enum class TrainStatus { kCompleted, kInterrupted };

TrainStatus train(const RunConfig& config, const TrainerOptions& options);

// Async-signal-safe: asks the running trainer to save a checkpoint after the current step and
// return kInterrupted. The `recforge train` command calls it on SIGINT and SIGTERM.
void request_stop();

}  // namespace recforge
