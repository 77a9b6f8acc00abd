// The packed batch of the flash-attention GPU tests (fp32 and bf16): every head size and both masks
// over sequences of lengths 0, 1, tile-boundary sizes and several hundred, with the offsets on both
// backends.
#pragma once

#include <algorithm>
#include <memory>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "tests/support/backends.h"

namespace recforge::testing {

struct AttentionCase {
  int head_size;
  AttentionMask mask;
};

inline std::string attention_mask_name(AttentionMask mask) {
  return mask == AttentionMask::kCausal ? "causal" : "bidirectional";
}

inline void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << attention_mask_name(c.mask) << " HS=" << c.head_size;
}

inline const std::vector<AttentionCase> kAttentionCases = {
    {32, AttentionMask::kCausal},        {64, AttentionMask::kCausal},
    {128, AttentionMask::kCausal},       {32, AttentionMask::kBidirectional},
    {64, AttentionMask::kBidirectional}, {128, AttentionMask::kBidirectional}};

// Test names: causal_HS32, ..., bidirectional_HS128.
inline std::string attention_case_name(const ::testing::TestParamInfo<AttentionCase>& info) {
  return cat(attention_mask_name(info.param.mask), "_HS", info.param.head_size);
}

class AttentionGpuFixture : public GpuTestWithParam<AttentionCase> {
 protected:
  // Sequence lengths of the packed batch: empty sequences, single tokens, tile edges (31..33,
  // 63..65, 128, 129) and long ones.
  static inline const std::vector<int> kLengths = {0, 1,  300, 17, 64,  65, 0, 129,
                                                   1, 33, 200, 31, 128, 63, 0};
  static constexpr int kHeads = 3;

  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    std::vector<int32_t> offsets(kLengths.size() + 1, 0);
    std::partial_sum(kLengths.begin(), kLengths.end(), offsets.begin() + 1);
    offsets_ = std::make_unique<Mirrored<int32_t>>(std::span<const int32_t>(offsets));
    num_tokens_ = offsets.back();
    max_length_ = *std::max_element(kLengths.begin(), kLengths.end());
  }
  PackedSequences seqs(const Context& ctx) {
    return {offsets_->on(ctx), static_cast<int>(kLengths.size()), num_tokens_, max_length_};
  }
  AttentionShape shape() const { return {kHeads, GetParam().head_size, GetParam().mask}; }
  // " causal HS=64": the suffix of the printed error names.
  std::string label() const {
    return cat(" ", attention_mask_name(GetParam().mask), " HS=", GetParam().head_size);
  }
  size_t qkv_size() const { return static_cast<size_t>(num_tokens_) * 3 * shape().channels(); }
  size_t out_size() const { return static_cast<size_t>(num_tokens_) * shape().channels(); }
  size_t lse_size() const { return static_cast<size_t>(num_tokens_) * kHeads; }

  // dq, dk and dv of two packed gradients [num_tokens, 3, C] checked one by one, as
  // "attention.dq<label>" etc.: a bug confined to one part must not hide in the total.
  void expect_parts_close(const std::string& label, const std::vector<float>& gpu,
                          const std::vector<float>& cpu, double tolerance) const {
    const size_t C = shape().channels();
    for (int part = 0; part < 3; ++part) {
      std::vector<float> gpu_part, cpu_part;
      for (size_t n = 0; n < static_cast<size_t>(num_tokens_); ++n) {
        const size_t at = (3 * n + part) * C;
        gpu_part.insert(gpu_part.end(), gpu.begin() + at, gpu.begin() + at + C);
        cpu_part.insert(cpu_part.end(), cpu.begin() + at, cpu.begin() + at + C);
      }
      expect_close(cat("attention.d", "qkv"[part], label), gpu_part, cpu_part, tolerance);
    }
  }

  std::unique_ptr<Mirrored<int32_t>> offsets_;
  int num_tokens_ = 0, max_length_ = 0;
};

// Four one-token sequences (causal, two heads of 64) through attention_forward and
// attention_backward on the GPU, qkv, dout, out and dqkv stored as T, out and dqkv poisoned
// beforehand. A token attends to itself alone: out = v, dv = dout and dq = dk = 0.
template <typename T>
struct SingleTokenAttention {
  static constexpr int kHeadSize = 64, kHeads = 2, C = kHeadSize * kHeads, B = 4;
  std::vector<T> qkv, dout;  // inputs [B, 3, C] and [B, C]
  std::vector<T> out, dqkv;  // results [B, C] and [B, 3, C]

  explicit SingleTokenAttention(const Context& cuda)
      : qkv(stored_as<T>(random_floats(static_cast<size_t>(B) * 3 * C, 1))),
        dout(stored_as<T>(random_floats(static_cast<size_t>(B) * C, 2))) {
    const std::vector<int32_t> offsets = {0, 1, 2, 3, 4};
    Buffer<int32_t> offsets_gpu(Device::kCuda, std::span<const int32_t>(offsets));
    const PackedSequences seqs{offsets_gpu.data(), B, B, 1};
    const AttentionShape shape{kHeads, kHeadSize, AttentionMask::kCausal};
    Buffer<T> qkv_gpu(Device::kCuda, std::span<const T>(qkv));
    Buffer<T> dout_gpu(Device::kCuda, std::span<const T>(dout));
    Buffer<T> out_gpu(Device::kCuda, B * C), dqkv_gpu(Device::kCuda, B * 3 * C);
    Buffer<float> lse(Device::kCuda, B * kHeads), delta(Device::kCuda, B * kHeads);
    fill_bytes(Device::kCuda, out_gpu.data(), 0xFF, out_gpu.bytes());
    fill_bytes(Device::kCuda, dqkv_gpu.data(), 0xFF, dqkv_gpu.bytes());
    attention_forward(cuda, out_gpu.data(), lse.data(), qkv_gpu.data(), seqs, shape);
    attention_backward(cuda, dqkv_gpu.data(), delta.data(), dout_gpu.data(), qkv_gpu.data(),
                       out_gpu.data(), lse.data(), seqs, shape);
    out = out_gpu.download();
    dqkv = dqkv_gpu.download();
  }
};

}  // namespace recforge::testing
