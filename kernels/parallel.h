// Static partition of [0, n) into contiguous, nearly equal ranges, one per thread: the CPU kernels
// use it where the result must not depend on scheduling (fixed reduction order).
#pragma once

#include <cstdint>

namespace recforge::cpu {

struct Range {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};

inline Range partition(int64_t n, int part, int parts) {
  return {n * part / parts, n * (part + 1) / parts};
}

}  // namespace recforge::cpu
