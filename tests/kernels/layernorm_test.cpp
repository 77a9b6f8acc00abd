#include "kernels/layernorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "tests/kernels/layernorm_case.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::type_name;

// One shape's inputs (drawn as float) and PyTorch reference, the backward's included.
struct LayerNormCase : testing::LayerNormForwardCase {
  std::vector<float> dout;
  std::vector<float> dinp0, dweight0, dbias0;  // the gradients before the backward
  std::vector<double> dinp, dweight, dbias;
  std::string label(const char* type) const {
    return std::string("layernorm.") + type + ".C" + std::to_string(shape.C);
  }
};

std::vector<LayerNormCase> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<LayerNormCase> cases;
  ReferenceCase ref("kernels.py", "layernorm");
  ref.put_scalar("num_cases", std::size(testing::kLayerNormShapes));
  for (const testing::LayerNormShape& shape : testing::kLayerNormShapes) {
    LayerNormCase c;
    c.shape = shape;
    std::string p = testing::case_prefix(cases.size());
    c.put_inputs(rng, ref, p);
    const size_t size = static_cast<size_t>(shape.N) * shape.C;
    c.dout = testing::random_normal<float>(rng, size);
    c.dinp0 = testing::random_normal<float>(rng, size);
    c.dweight0 = testing::random_normal<float>(rng, shape.C);
    c.dbias0 = testing::random_normal<float>(rng, shape.C);
    const std::vector<int64_t> matrix{shape.N, shape.C}, vector{shape.C};
    ref.put(p + "dout", c.dout, matrix);
    ref.put(p + "dinp0", c.dinp0, matrix);
    ref.put(p + "dweight0", c.dweight0, vector);
    ref.put(p + "dbias0", c.dbias0, vector);
    cases.push_back(std::move(c));
  }
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = testing::case_prefix(i);
    LayerNormCase& c = cases[i];
    c.get_outputs(ref, p);
    c.dinp = ref.result(p + "dinp");
    c.dweight = ref.result(p + "dweight");
    c.dbias = ref.result(p + "dbias");
  }
  return cases;
}

// The kernel's forward outputs for one case, element type T.
template <typename T>
struct Forward {
  std::vector<T> inp, weight, bias, out, mean, rstd;
  explicit Forward(const LayerNormCase& c)
      : inp(convert<T>(c.inp)),
        weight(convert<T>(c.weight)),
        bias(convert<T>(c.bias)),
        out(c.inp.size(), NAN),
        mean(c.shape.N, NAN),
        rstd(c.shape.N, NAN) {
    layernorm_forward(Context::cpu(), out.data(), mean.data(), rstd.data(), inp.data(),
                      weight.data(), bias.data(), c.shape.N, c.shape.C);
  }
};

// The PyTorch references of every shape are computed once and shared by the tests of the suite.
class LayerNormReference : public testing::SharedReferenceCases<LayerNormCase, make_cases> {
 protected:
  template <typename T>
  void check_forward(double tolerance) {
    for (const LayerNormCase& c : *cases_) {
      Forward<T> f(c);
      std::string label = c.label(type_name<T>());
      expect_close(label + ".out", f.out, c.out, tolerance);
      expect_close(label + ".mean", f.mean, c.mean, tolerance);
      expect_close(label + ".rstd", f.rstd, c.rstd, tolerance);
    }
  }

  template <typename T>
  void check_residual_forward(double tolerance) {
    for (const LayerNormCase& c : *cases_) {
      const auto [N, C] = c.shape;
      std::vector<T> a = convert<T>(c.a), b = convert<T>(c.b);
      std::vector<T> weight = convert<T>(c.weight), bias = convert<T>(c.bias);
      std::vector<T> residual(a.size(), NAN), out(a.size(), NAN), mean(N, NAN), rstd(N, NAN);
      residual_layernorm_forward(Context::cpu(), residual.data(), out.data(), mean.data(),
                                 rstd.data(), a.data(), b.data(), weight.data(), bias.data(), N, C);
      std::string label = c.label(type_name<T>()) + ".residual_layernorm";
      expect_close(label + ".residual", residual, c.residual, tolerance);
      expect_close(label + ".out", out, c.residual_out, tolerance);
    }
  }

  // The backward from the kernel's own mean and rstd, accumulated into dinp0/dweight0/dbias0;
  // with `frozen` dweight and dbias are null and only dinp is checked.
  // With `nested` the backward runs inside an enclosing OpenMP parallel region.
  template <typename T>
  void check_backward(double tolerance, bool frozen = false, bool nested = false) {
    for (const LayerNormCase& c : *cases_) {
      Forward<T> f(c);
      std::vector<T> dout = convert<T>(c.dout), dinp = convert<T>(c.dinp0);
      std::vector<T> dweight = convert<T>(c.dweight0), dbias = convert<T>(c.dbias0);
      auto backward = [&] {
        layernorm_backward(Context::cpu(), dinp.data(), frozen ? nullptr : dweight.data(),
                           frozen ? nullptr : dbias.data(), dout.data(), f.inp.data(),
                           f.weight.data(), f.mean.data(), f.rstd.data(), c.shape.N, c.shape.C);
      };
      if (nested) {
        testing::run_inside_parallel_region(backward);
      } else {
        backward();
      }
      std::string label =
          c.label(type_name<T>()) + (frozen ? ".frozen" : "") + (nested ? ".nested" : "");
      expect_close(label + ".dinp", dinp, c.dinp, tolerance);
      if (frozen) {
        double untouched = testing::relative_error(dweight, convert<double>(c.dweight0)) +
                           testing::relative_error(dbias, convert<double>(c.dbias0));
        testing::report_error(label + ".dweight/dbias buffers vs initial values", untouched);
        EXPECT_EQ(untouched, 0.0);
      } else {
        expect_close(label + ".dweight", dweight, c.dweight, tolerance);
        expect_close(label + ".dbias", dbias, c.dbias, tolerance);
      }
    }
  }
};

TEST_F(LayerNormReference, ForwardMatchesPyTorch) { check_forward<float>(1e-6); }

TEST_F(LayerNormReference, ForwardInDoubleMatchesPyTorch) { check_forward<double>(1e-13); }

TEST_F(LayerNormReference, ResidualForwardMatchesPyTorch) { check_residual_forward<float>(1e-6); }

TEST_F(LayerNormReference, ResidualForwardInDoubleMatchesPyTorch) {
  check_residual_forward<double>(1e-13);
}

TEST_F(LayerNormReference, BackwardAccumulatesLikePyTorch) { check_backward<float>(1e-6); }

TEST_F(LayerNormReference, BackwardInDoubleAccumulatesLikePyTorch) {
  check_backward<double>(1e-13);
}

TEST_F(LayerNormReference, BackwardWithFrozenNormSkipsWeightGradients) {
  check_backward<float>(1e-6, /*frozen=*/true);
}

// Disabled until layernorm_backward splits its rows by the team it gets (omp_get_num_threads())
// instead of omp_get_max_threads(): with fewer threads than requested (an enclosing parallel
// region, OMP_THREAD_LIMIT, OMP_DYNAMIC) it silently skips the rows of the missing threads.
TEST_F(LayerNormReference, BackwardInsideParallelRegionMatchesPyTorch) {
  check_backward<float>(1e-6, /*frozen=*/false, /*nested=*/true);
}

}  // namespace
}  // namespace recforge
