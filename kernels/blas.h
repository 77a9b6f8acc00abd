// The CPU backend's dense matrix products go through a BLAS (OpenBLAS on Debian). The kernels call
// it single-threaded from inside their own OpenMP regions, so these wrappers also pin it to one
// thread. Overloaded on float and double so the float64 gradient check reuses the same code.
#pragma once

namespace recforge::cpu {

enum class Transpose { kNo, kYes };

// C[M,N] = alpha · op(A) · op(B) + beta · C, all row-major with leading dimensions lda, ldb, ldc.
void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, float alpha, const float* A,
          int lda, const float* B, int ldb, float beta, float* C, int ldc);
void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, double alpha, const double* A,
          int lda, const double* B, int ldb, double beta, double* C, int ldc);

}  // namespace recforge::cpu

namespace recforge {
// Tells the BLAS to run every call on the calling thread (OpenBLAS spawns its own pool otherwise).
void blas_use_single_thread();
}  // namespace recforge
