#include "train/optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/global_norm.h"
#include "kernels/nvtx.h"
#include "train/dist/communicator.h"

namespace recforge {

ParameterGroup whole_buffer(Buffer<float>& parameters, const Buffer<float>& gradients,
                            int64_t num_decayed) {
  RECFORGE_CHECK(parameters.size() == gradients.size(), "parameters (", parameters.size(),
                 ") and gradients (", gradients.size(), ") differ in size");
  return {parameters.data(), gradients.data(), static_cast<int64_t>(parameters.size()),
          num_decayed};
}

namespace {

int64_t total_size(const std::vector<ParameterGroup>& groups) {
  int64_t total = 0;
  for (const ParameterGroup& g : groups) {
    RECFORGE_CHECK(g.size > 0 && g.num_decayed >= 0 && g.num_decayed <= g.size &&
                       g.parameters != nullptr && g.gradients != nullptr && g.lr_scale > 0.0f,
                   "AdamW: a parameter group of ", g.size, " elements (", g.num_decayed,
                   " decayed, lr scale ", g.lr_scale, ") is malformed");
    total += g.size;
  }
  return total;
}

}  // namespace

AdamW::AdamW(const Context& ctx, std::vector<ParameterGroup> groups, AdamWConfig config,
             Communicator* comm, bool zero1)
    : ctx_(ctx),
      groups_(std::move(groups)),
      num_trainable_(total_size(groups_)),
      config_(config),
      comm_(comm),
      zero1_(zero1 && comm != nullptr && comm->world_size() > 1) {
  RECFORGE_CHECK(!zero1 || comm != nullptr, "AdamW: ZeRO-1 needs a communicator");
  const int64_t W = zero1_ ? comm_->world_size() : 1, r = zero1_ ? comm_->rank() : 0;
  int64_t state = 0, largest = 1, gradient_shards = 0;
  for (const ParameterGroup& g : groups_) {
    Shard s;
    s.stride = (g.size + W - 1) / W;
    s.first = std::min(r * s.stride, g.size);
    s.count = std::min(s.stride, g.size - s.first);
    s.state = state;
    state += s.count;
    gradient_shards += s.stride;
    largest = std::max(largest, s.stride * W);
    shards_.push_back(s);
  }
  m_ = Buffer<float>(ctx.device(), std::max<int64_t>(state, 1));
  v_ = Buffer<float>(ctx.device(), std::max<int64_t>(state, 1));
  m_.zero(ctx_);
  v_.zero(ctx_);
  if (zero1_) {
    padded_ = Buffer<float>(ctx.device(), largest);
    shard_ = Buffer<float>(ctx.device(), gradient_shards);
  }
}

// The norm of all groups' gradients together: sqrt(Σ_g ‖grad_g‖²).
float AdamW::step(float lr, float max_grad_norm) {
  NvtxRange range("optimizer");
  if (zero1_) return zero1_step(lr, max_grad_norm);
  double squares = 0.0;
  for (const ParameterGroup& g : groups_) {
    const double norm = global_norm(ctx_, g.gradients, g.size);
    squares += norm * norm;
  }
  const float norm = static_cast<float>(std::sqrt(squares));
  RECFORGE_CHECK(std::isfinite(norm), "the gradient norm is ", norm, " at step ", step_ + 1,
                 ": training stopped before the update");
  const float clip = clip_factor(norm, max_grad_norm);
  ++step_;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const ParameterGroup& g = groups_[i];
    AdamWConfig config = config_;
    config.lr = lr * g.lr_scale;
    adamw_update(ctx_, g.parameters, g.gradients, m_.data() + shards_[i].state,
                 v_.data() + shards_[i].state, g.size, g.num_decayed, config, step_, clip);
  }
  return norm;
}

// ZeRO-1: reduce-scatter the gradients into this rank's shards, the norm over all shards, AdamW on
// this rank's shard of each group, all-gather the parameters.
float AdamW::zero1_step(float lr, float max_grad_norm) {
  const Device device = ctx_.device();
  const int64_t W = comm_->world_size();
  std::vector<double> squares = {0.0};
  int64_t offset = 0;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const ParameterGroup& g = groups_[i];
    const Shard& s = shards_[i];
    copy_bytes(padded_.data(), device, g.gradients, device, g.size * sizeof(float));
    zero_bytes(ctx_, padded_.data() + g.size, (s.stride * W - g.size) * sizeof(float));
    comm_->reduce_scatter_sum(padded_.data(), shard_.data() + offset, s.stride);
    const double norm = global_norm(ctx_, shard_.data() + offset, s.stride);
    squares[0] += norm * norm;
    offset += s.stride;
  }
  comm_->all_reduce_sum_host(squares.data(), 1);
  const float norm = static_cast<float>(std::sqrt(squares[0]));
  RECFORGE_CHECK(std::isfinite(norm), "the gradient norm is ", norm, " at step ", step_ + 1,
                 ": training stopped before the update");
  const float clip = clip_factor(norm, max_grad_norm);
  ++step_;
  offset = 0;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const ParameterGroup& g = groups_[i];
    const Shard& s = shards_[i];
    if (s.count > 0) {
      AdamWConfig config = config_;
      config.lr = lr * g.lr_scale;
      const int64_t decayed = std::clamp(g.num_decayed - s.first, int64_t{0}, s.count);
      adamw_update(ctx_, g.parameters + s.first, shard_.data() + offset, m_.data() + s.state,
                   v_.data() + s.state, s.count, decayed, config, step_, clip);
    }
    // The updated shard, padded, gathered from every rank into the whole group.
    float* mine = shard_.data() + offset;
    copy_bytes(mine, device, g.parameters + s.first, device, s.count * sizeof(float));
    zero_bytes(ctx_, mine + s.count, (s.stride - s.count) * sizeof(float));
    comm_->all_gather(mine, padded_.data(), s.stride);
    copy_bytes(g.parameters, device, padded_.data(), device, g.size * sizeof(float));
    offset += s.stride;
  }
  return norm;
}

std::vector<float> AdamW::gather_moment(Buffer<float>& moment) {
  std::vector<float> full;
  full.reserve(num_trainable_);
  if (!zero1_) {
    std::vector<float> all = moment.download();
    all.resize(num_trainable_);
    return all;
  }
  const Device device = ctx_.device();
  for (size_t i = 0; i < groups_.size(); ++i) {
    const Shard& s = shards_[i];
    float* mine = shard_.data();  // scratch: the gradient shards are not needed after a step
    copy_bytes(mine, device, moment.data() + s.state, device, s.count * sizeof(float));
    zero_bytes(ctx_, mine + s.count, (s.stride - s.count) * sizeof(float));
    comm_->all_gather(mine, padded_.data(), s.stride);
    std::vector<float> group(groups_[i].size);
    copy_bytes(group.data(), Device::kCpu, padded_.data(), device, group.size() * sizeof(float));
    full.insert(full.end(), group.begin(), group.end());
  }
  return full;
}

std::pair<std::vector<float>, std::vector<float>> AdamW::full_moments() {
  std::vector<float> m = gather_moment(m_);
  return {std::move(m), gather_moment(v_)};
}

void AdamW::restore(std::span<const float> m, std::span<const float> v, int steps_taken) {
  RECFORGE_CHECK(m.size() == static_cast<size_t>(num_trainable_) && v.size() == m.size(),
                 "optimizer state holds ", m.size(), " and ", v.size(), " moments, expected ",
                 num_trainable_);
  int64_t offset = 0;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const Shard& s = shards_[i];
    m_.upload(m.subspan(offset + s.first, s.count), s.state);
    v_.upload(v.subspan(offset + s.first, s.count), s.state);
    offset += groups_[i].size;
  }
  step_ = steps_taken;
}

}  // namespace recforge
