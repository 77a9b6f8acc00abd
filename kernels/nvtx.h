// Named ranges on the profiler's timeline (Nsight Systems: `nsys profile -t cuda,nvtx`, see
// tools/profile.sh). `NvtxRange range("layer ", l, " forward");` pushes a range that ends when
// `range` goes out of scope; ranges nest. With CUDA the header-only NVTX3 of the toolkit records
// them (nearly free when no profiler is attached); without CUDA the class compiles to nothing and
// the name is never built.
#pragma once

#include "kernels/check.h"
#include "kernels/context.h"

#if RECFORGE_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace recforge {

class NvtxRange {
 public:
  // The range's name is the pieces concatenated, as concat() does.
  template <typename... Parts>
  explicit NvtxRange(const Parts&... name_parts) {
#if RECFORGE_WITH_CUDA
    nvtxRangePushA(concat(name_parts...).c_str());
#else
    ((void)name_parts, ...);
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
  ~NvtxRange() {
#if RECFORGE_WITH_CUDA
    nvtxRangePop();
#endif
  }
};

}  // namespace recforge
