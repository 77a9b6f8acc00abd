// Dense layer on the GPU. Every product goes through cuBLASLt via one helper, `cuda::gemm` (also
// used by the classifier); the bias gradient is a deterministic two-stage column sum.
//
// cuBLASLt is column-major. A row-major matrix X[r, c] with row stride ld is, byte for byte, the
// column-major matrix Xᵀ[c, r] with leading dimension ld. So the row-major product
//   C[M, N] = op(A) · op(B)   is computed as the column-major product   Cᵀ[N, M] = op(B)ᵀ · op(A)ᵀ:
// cuBLASLt's first operand is B and its second is A, each keeping its own transpose flag, with
// m = N, n = M. A bias over C's columns is a bias over Cᵀ's rows, which is what
// CUBLASLT_EPILOGUE_BIAS adds.
//
// Types (bf16 mixed precision): A and B are both fp32 or both bf16 (CUDA_R_16BF); C and D are fp32
// or, with bf16 inputs, bf16. The compute type is always CUBLAS_COMPUTE_32F with fp32 alpha/beta
// (scale type CUDA_R_32F): fp32 inputs get strict fp32 (no TF32); bf16 products are exact in fp32
// and summed in fp32 (on the tensor cores when the operands are 16-byte aligned). C is read in its
// own type when beta ≠ 0 (the weight gradient: bf16 inputs, fp32 C = D, beta = 1). The bias has D's
// type (fp32 bias for an fp32 output, bf16 bias for a bf16 output) and is added in fp32 before D is
// rounded once.

#include "kernels/cuda_common.cuh"
#include "kernels/matmul.h"

namespace recforge::cuda {
namespace {

// The cuBLASLt descriptors of one call, destroyed on every exit path.
struct GemmDescriptors {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~GemmDescriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (out) cublasLtMatrixLayoutDestroy(out);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (operation) cublasLtMatmulDescDestroy(operation);
  }
};

cublasOperation_t to_cublas(Transpose transpose) {
  return transpose == Transpose::kYes ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// Column-major layout of an operand of element type `type` whose op() is rows × cols: stored as
// cols × rows when transposed. ld counts elements.
cublasLtMatrixLayout_t operand_layout(cudaDataType_t type, cublasOperation_t op, int rows, int cols,
                                      int ld) {
  cublasLtMatrixLayout_t layout = nullptr;
  bool transposed = op == CUBLAS_OP_T;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, transposed ? cols : rows,
                                          transposed ? rows : cols, ld));
  return layout;
}

uint32_t bytes_of(cudaDataType_t type) { return type == CUDA_R_16BF ? 2 : 4; }

// Largest power of two ≤ 256 dividing the address, at least the element size. The heuristic
// assumes 256-byte aligned operands unless told otherwise, and views into larger buffers may be
// less aligned: a bf16 view may start at any even address. The tensor-core kernels need 16 bytes
// (8 bf16); told less, the heuristic picks a slower kernel instead of faulting.
uint32_t alignment_of(const void* ptr, cudaDataType_t type) {
  auto address = reinterpret_cast<uintptr_t>(ptr);
  uint32_t alignment = 256;
  while (alignment > bytes_of(type) && address % alignment != 0) alignment /= 2;
  return alignment;
}

template <typename T>
void set_preference(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t key,
                    T value) {
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, key, &value, sizeof(value)));
}

template <typename T>
void set_attribute(cublasLtMatmulDesc_t operation, cublasLtMatmulDescAttributes_t key, T value) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(operation, key, &value, sizeof(value)));
}

// ---- Bias gradient: dbias[o] += Σ_n dout[n, o] ------------------------------------------------
// Stage 1 splits the rows into chunks of kRowsPerChunk; block (column tile, chunk) has
// kRowLanes × kColumnTile threads: lane x owns column o, lane y sums rows y, y + kRowLanes, ... of
// the chunk (a warp reads 32 consecutive elements of one row; bf16 is widened on load and summed in
// fp32), and the kRowLanes sums are folded in order. Stage 2 adds the per-chunk partials of each
// column in chunk order. No atomics: the result depends on N alone, never on scheduling.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr int kRowsPerChunk = 256;

template <typename In>
__global__ void column_partial_sums(float* partials, const In* dout, int N, int OC) {
  __shared__ float lane_sums[kRowLanes][kColumnTile];
  const int o = blockIdx.x * kColumnTile + threadIdx.x;
  const int row_begin = blockIdx.y * kRowsPerChunk;
  const int row_end = min(row_begin + kRowsPerChunk, N);
  float sum = 0.0f;
  if (o < OC) {
    for (int n = row_begin + threadIdx.y; n < row_end; n += kRowLanes) {
      sum += load_as_float(dout[static_cast<int64_t>(n) * OC + o]);
    }
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float total = 0.0f;
    for (int lane = 0; lane < kRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
    partials[static_cast<int64_t>(blockIdx.y) * OC + o] = total;
  }
}

__global__ void add_column_partials(float* dbias, const float* partials, int num_chunks, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float total = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    total += partials[static_cast<int64_t>(chunk) * OC + o];
  }
  dbias[o] += total;
}

template <typename In>
void bias_gradient(const Context& ctx, float* dbias, const In* dout, int N, int OC) {
  const int num_chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
  RECFORGE_CHECK(num_chunks <= 65535, "matmul_backward: N=", N, " rows exceed the bias grid");
  auto* partials =
      static_cast<float*>(scratch(ctx, static_cast<size_t>(num_chunks) * OC * sizeof(float)));
  cudaStream_t stream = stream_of(ctx);
  column_partial_sums<<<dim3(ceil_div(OC, kColumnTile), num_chunks), dim3(kColumnTile, kRowLanes),
                        0, stream>>>(partials, dout, N, OC);
  CUDA_CHECK_LAUNCH();
  add_column_partials<<<ceil_div(OC, 256), 256, 0, stream>>>(dbias, partials, num_chunks, OC);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void gemm(const Context& ctx, GemmTypes types, Transpose trans_a, Transpose trans_b, int M, int N,
          int K, float alpha, const void* A, int lda, const void* B, int ldb, float beta, void* C,
          int ldc, const void* bias) {
  CudaHandles* handles = ctx.handles();
  // Column-major: Cᵀ[N, M] = op(B)ᵀ[N, K] · op(A)ᵀ[K, M].
  const cublasOperation_t op_first = to_cublas(trans_b), op_second = to_cublas(trans_a);
  GemmDescriptors d;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_attribute(d.operation, CUBLASLT_MATMUL_DESC_TRANSA, op_first);
  set_attribute(d.operation, CUBLASLT_MATMUL_DESC_TRANSB, op_second);
  if (bias != nullptr) {
    set_attribute(d.operation, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    set_attribute(d.operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    set_attribute(d.operation, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                  static_cast<int32_t>(types.output));
  }
  d.first = operand_layout(types.inputs, op_first, N, K, ldb);
  d.second = operand_layout(types.inputs, op_second, K, M, lda);
  d.out = operand_layout(types.output, CUBLAS_OP_N, N, M, ldc);  // C and D: one layout, one type

  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.preference));
  set_preference(d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                 static_cast<uint64_t>(handles->cublaslt_workspace_bytes));
  set_preference(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                 alignment_of(B, types.inputs));
  set_preference(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                 alignment_of(A, types.inputs));
  set_preference(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                 alignment_of(C, types.output));
  set_preference(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                 alignment_of(C, types.output));

  // No algorithm for the problem comes back as CUBLAS_STATUS_NOT_SUPPORTED or as found = 0.
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handles->cublaslt, d.operation, d.first, d.second, d.out,
                                     d.out, d.preference, 1, &heuristic, &found);
  RECFORGE_CHECK(status == CUBLAS_STATUS_SUCCESS || status == CUBLAS_STATUS_NOT_SUPPORTED,
                 "cuBLAS error ", int(status), " in cublasLtMatmulAlgoGetHeuristic");
  RECFORGE_CHECK(status == CUBLAS_STATUS_SUCCESS && found > 0,
                 "cuBLASLt has no algorithm for the GEMM M=", M, " N=", N, " K=", K, " lda=", lda,
                 " ldb=", ldb, " ldc=", ldc, types.inputs == CUDA_R_16BF ? " with bf16 inputs" : "",
                 types.output == CUDA_R_16BF ? " and bf16 output" : "", bias ? " with bias" : "");
  CUBLAS_CHECK(cublasLtMatmul(handles->cublaslt, d.operation, &alpha, B, d.first, A, d.second,
                              &beta, C, d.out, C, d.out, &heuristic.algo,
                              handles->cublaslt_workspace, handles->cublaslt_workspace_bytes,
                              stream_of(ctx)));
}

namespace {

template <typename Out, typename In>
void dense_forward(const Context& ctx, Out* out, const In* inp, const In* weight, const Out* bias,
                   int N, int C, int OC) {
  if (N == 0) return;
  // out[N, OC] = inp[N, C] · weight[OC, C]ᵀ + bias
  gemm(ctx, Transpose::kNo, Transpose::kYes, N, OC, C, inp, C, weight, C, 0.0f, out, OC, bias);
}

template <typename Dinp, typename In>
void dense_backward(const Context& ctx, Dinp* dinp, float* dweight, float* dbias, const In* dout,
                    const In* inp, const In* weight, int N, int C, int OC) {
  if (N == 0) return;
  if (dinp) {  // dinp[N, C] = dout[N, OC] · weight[OC, C]
    gemm(ctx, Transpose::kNo, Transpose::kNo, N, C, OC, dout, OC, weight, C, 0.0f, dinp, C);
  }
  if (dweight) {  // dweight[OC, C] += dout[N, OC]ᵀ · inp[N, C], in fp32 whatever In is
    gemm(ctx, Transpose::kYes, Transpose::kNo, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
  }
  if (dbias) bias_gradient(ctx, dbias, dout, N, OC);
}

}  // namespace

void matmul_forward(const Context& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int N, int C, int OC) {
  dense_forward(ctx, out, inp, weight, bias, N, C, OC);
}
void matmul_forward(const Context& ctx, float* out, const bf16* inp, const bf16* weight,
                    const float* bias, int N, int C, int OC) {
  dense_forward(ctx, out, inp, weight, bias, N, C, OC);
}
void matmul_forward(const Context& ctx, bf16* out, const bf16* inp, const bf16* weight,
                    const bf16* bias, int N, int C, int OC) {
  dense_forward(ctx, out, inp, weight, bias, N, C, OC);
}

void matmul_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int N, int C,
                     int OC) {
  dense_backward(ctx, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}
void matmul_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                     const bf16* dout, const bf16* inp, const bf16* weight, int N, int C, int OC) {
  dense_backward(ctx, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}
void matmul_backward(const Context& ctx, bf16* dinp, float* dweight, float* dbias, const bf16* dout,
                     const bf16* inp, const bf16* weight, int N, int C, int OC) {
  dense_backward(ctx, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

}  // namespace recforge::cuda
