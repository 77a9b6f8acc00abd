// AdamW over the trainable parts of a model: a list of parameter groups, each a contiguous range of
// a flat fp32 buffer (the whole model; or only LoRA adapters and some embedding rows when the rest
// is frozen) with its gradients, its weight-decay boundary and a learning-rate factor. The
// optimizer owns the moments m and v of the groups only, laid end to end in group order, counts
// steps and applies global-norm gradient clipping over all groups together.
//
// ZeRO-1 (Rajbhandari et al. 2020), with a communicator of W ranks: each group's elements are cut
// into W equal shards (the last padded), rank r keeps m and v of shard r only, and a step is
//   reduce-scatter of the gradients (rank r receives the sum over ranks of shard r),
//   the global gradient norm from the shards' squared norms (one host all-reduce),
//   AdamW on shard r of the parameters, and
//   all-gather of the updated shards into every rank's full parameters.
// Without ZeRO-1 the gradients must already be summed over the ranks (the trainer all-reduces
// them) and every rank updates everything. Checkpoints see the full moments either way
// (full_moments gathers them), so a run resumes at any world size, with or without ZeRO-1.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/buffer.h"

namespace recforge {

class Communicator;

struct ParameterGroup {
  float* parameters = nullptr;
  const float* gradients = nullptr;
  int64_t size = 0;
  int64_t num_decayed = 0;  // the leading elements that take weight decay
  float lr_scale = 1.0f;
};

// Every element of a parameter buffer, its first `num_decayed` elements decayed.
ParameterGroup whole_buffer(Buffer<float>& parameters, const Buffer<float>& gradients,
                            int64_t num_decayed);

class AdamW {
 public:
  // `zero1`: shard the optimizer state over `comm`'s ranks (comm must then be given).
  AdamW(const Context& ctx, std::vector<ParameterGroup> groups, AdamWConfig config,
        Communicator* comm = nullptr, bool zero1 = false);

  // One update of every group. `max_grad_norm` <= 0 disables clipping. Returns the gradient norm
  // before clipping. A non-finite gradient norm throws recforge::Error before anything changes.
  float step(float lr, float max_grad_norm);

  int steps_taken() const { return step_; }
  int64_t num_trainable() const { return num_trainable_; }
  const std::vector<ParameterGroup>& groups() const { return groups_; }
  bool zero1() const { return zero1_; }
  // m and v over every group, end to end (gathered from the ranks with ZeRO-1: every rank must
  // call it). restore() puts such moments back (each rank keeping its shards) with the step count.
  std::pair<std::vector<float>, std::vector<float>> full_moments();
  void restore(std::span<const float> m, std::span<const float> v, int steps_taken);
  const AdamWConfig& config() const { return config_; }

 private:
  // Group g's shard on this rank: [first, first + count) of its elements; `stride` elements per
  // rank (the padded shard size); `state` the shard's offset in m_ and v_.
  struct Shard {
    int64_t first = 0, count = 0, stride = 0, state = 0;
  };
  float zero1_step(float lr, float max_grad_norm);
  std::vector<float> gather_moment(Buffer<float>& moment);

  Context ctx_;
  std::vector<ParameterGroup> groups_;
  int64_t num_trainable_ = 0;
  AdamWConfig config_;
  Communicator* comm_ = nullptr;
  bool zero1_ = false;
  std::vector<Shard> shards_;
  Buffer<float> m_, v_;
  Buffer<float> padded_, shard_;  // ZeRO-1 scratch: a padded group, one rank's shard
  int step_ = 0;
};

}  // namespace recforge
