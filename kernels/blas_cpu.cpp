#include <cblas.h>

#include "kernels/blas.h"

namespace recforge::cpu {
namespace {
CBLAS_TRANSPOSE to_cblas(Transpose t) { return t == Transpose::kYes ? CblasTrans : CblasNoTrans; }
}  // namespace

void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, float alpha, const float* A,
          int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, to_cblas(trans_a), to_cblas(trans_b), M, N, K, alpha, A, lda, B, ldb,
              beta, C, ldc);
}

void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, double alpha, const double* A,
          int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, to_cblas(trans_a), to_cblas(trans_b), M, N, K, alpha, A, lda, B, ldb,
              beta, C, ldc);
}

}  // namespace recforge::cpu

namespace recforge {
void blas_use_single_thread() {
#if RECFORGE_OPENBLAS
  openblas_set_num_threads(1);
#endif
}
}  // namespace recforge
