#include <cmath>

#include "kernels/dpo_loss.h"

namespace recforge {
namespace {

struct NamedLoss {
  const char* name;
  DpoLoss type;
};
constexpr NamedLoss kLossNames[] = {{"sigmoid", DpoLoss::kSigmoid},
                                    {"ipo", DpoLoss::kIpo},
                                    {"hinge", DpoLoss::kHinge},
                                    {"robust", DpoLoss::kRobust},
                                    {"sdpo", DpoLoss::kSdpo}};

}  // namespace

DpoLoss parse_dpo_loss(std::string_view name) {
  for (const NamedLoss& loss : kLossNames) {
    if (name == loss.name) return loss.type;
  }
  RECFORGE_CHECK(false, "unknown DPO loss \"", name,
                 "\" (expected one of: sigmoid, ipo, hinge, robust, sdpo)");
  return DpoLoss::kSigmoid;
}

std::string dpo_loss_name(DpoLoss type) {
  for (const NamedLoss& loss : kLossNames) {
    if (type == loss.type) return loss.name;
  }
  RECFORGE_CHECK(false, "dpo_loss_name: unknown DpoLoss ", static_cast<int>(type));
  return {};
}

void check_dpo_params(const DpoParams& params) {
  const std::string name = dpo_loss_name(params.type);
  RECFORGE_CHECK(std::isfinite(params.beta) && params.beta > 0.0f, "dpo_loss (", name, "): beta ",
                 params.beta, " must be finite and > 0");
  const float eps = params.label_smoothing;
  if (params.type == DpoLoss::kSigmoid || params.type == DpoLoss::kRobust) {
    RECFORGE_CHECK(eps >= 0.0f && eps < 0.5f, "dpo_loss (", name, "): label_smoothing ", eps,
                   " must lie in [0, 0.5)");
  } else {
    RECFORGE_CHECK(eps == 0.0f, "dpo_loss (", name, "): label_smoothing ", eps,
                   " is only defined for the sigmoid and robust losses; set it to 0");
  }
}

namespace cpu {

template <typename T>
void dpo_loss(T* losses, T* dpolicy, T* metrics, const T* policy, const T* reference, int N, int K,
              DpoParams params, T loss_scale) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const int64_t row = static_cast<int64_t>(n) * K;
    losses[n] =
        dpo_pair_loss(dpolicy ? dpolicy + row : nullptr,
                      metrics ? metrics + static_cast<int64_t>(n) * kDpoNumMetrics : nullptr,
                      policy + row, reference + row, K, params, loss_scale);
  }
}

template void dpo_loss<float>(float*, float*, float*, const float*, const float*, int, int,
                              DpoParams, float);
template void dpo_loss<double>(double*, double*, double*, const double*, const double*, int, int,
                               DpoParams, double);

}  // namespace cpu
}  // namespace recforge
