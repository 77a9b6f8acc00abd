// The training loop: runs the stages of a configuration in order in one run directory, each from
// scratch, the previous stage's best checkpoint or a given checkpoint (train/setup/stage_start.h),
// with what it trains behind a StageTask (pre-training, SFT, DPO) — packed micro-batches, gradient
// accumulation, the learning-rate schedule, AdamW over the trainable parameter groups, periodic
// validation with early stopping, atomic checkpoints, exact resume, and the metrics at the best
// validation checkpoint in `final_metrics-<stage>.json`.
//
// Run directory: config.resolved.yaml, metrics.jsonl, checkpoints/<stage>-step<N>/ (per stage the
// best and the latest are kept), negatives-<stage>-<split>.txt (the sampled protocol's saved
// negatives), data-<stage>/ (a dataset aligned to a checkpoint's items, when it had new ones),
// reference-<stage>.f32 (DPO's precomputed reference), final_metrics-<stage>.json and
// final_metrics.json (the last finished stage's).
//
// Determinism: the epoch order, the masked positions, the sampled negatives and the dropout masks
// all come from the counter-based generator keyed by (seed, epoch or step), and the checkpoint
// holds the parameters, AdamW's moments and step, and the data cursor; so a run interrupted and
// resumed (on the same device and thread count) logs the same losses, bit for bit, as one that
// was not.
#pragma once

#include <cstdint>

#include "train/config/config.h"
#include "train/dist/launch.h"

namespace recforge {

struct TrainerOptions {
  bool resume = false;  // continue from the run directory's latest checkpoint
  // Resume even when a setting that decides the data order (batch size, seed, ...) changed.
  bool allow_config_change = false;
  // > 0: act as if SIGTERM arrived once this many optimizer steps are done (tests of resume).
  int64_t interrupt_after_steps = 0;
  // This process's place in a multi-process run (train/dist/launch.h); a single process by default.
  LaunchInfo launch;
};

enum class TrainStatus { kCompleted, kInterrupted };

TrainStatus train(const RunConfig& config, const TrainerOptions& options);

// Async-signal-safe: asks the running trainer to save a checkpoint after the current step and
// return kInterrupted. The `recforge train` command calls it on SIGINT and SIGTERM.
void request_stop();
// Whether request_stop() was called since the last take; clears the request.
bool take_stop_request();

}  // namespace recforge
