// One activation buffer cut into the tensors of a forward and backward: sized first with a null
// base (measuring), then carved for real.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"

namespace recforge {

// Hands out consecutive [rows, width] slices of one buffer, each starting on a 64-byte boundary
// (the CUDA kernels read 16-byte vectors; a [N, 1] statistic with odd N would misalign the next
// slice). With a null base it only measures.
template <typename T>
class ActivationCarver {
 public:
  ActivationCarver(T* base, int64_t rows) : base_(base), rows_(rows) {}
  T* take(int64_t width) {
    T* slice = base_ ? base_ + used_ : nullptr;
    used_ += (rows_ * width + kAlignElements - 1) / kAlignElements * kAlignElements;
    return slice;
  }
  int64_t used() const { return used_; }

 private:
  static constexpr int64_t kAlignElements = 64 / sizeof(T);
  T* base_;
  int64_t rows_;
  int64_t used_ = 0;
};

// A buffer on `device` holding exactly what `carve` (called with an ActivationCarver<T> over `rows`
// rows) takes: measured with a null base, allocated, then carved for real.
template <typename T, typename Carve>
Buffer<T> carved_buffer(Device device, int64_t rows, Carve carve) {
  ActivationCarver<T> measure(nullptr, rows);
  carve(measure);
  Buffer<T> buffer(device, measure.used());
  ActivationCarver<T> real(buffer.data(), rows);
  carve(real);
  return buffer;
}

}  // namespace recforge
