// CUDA twin of kernels/cpu/argmax.cpp: one warp per row, first maximum wins, NaN never wins.
#include <cuda_runtime.h>

#include "common/check.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

// True when (v, i) should replace (best, bi): larger value, or equal value at a lower index;
// a NaN best is replaced by any number.
__device__ __forceinline__ bool better(float v, int i, float best, int bi) {
  if (v != v) return false;
  if (best != best) return true;
  return v > best || (v == best && i < bi);
}

__global__ void argmax_rows_kernel(const float* __restrict__ scores, size_t rows, size_t cols,
                                   size_t stride, int32_t* __restrict__ out) {
  const size_t row = static_cast<size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const float* r = scores + row * stride;
  float best = r[0];
  int bi = 0;
  for (size_t c = lane; c < cols; c += kWarp) {
    const float v = r[c];
    if (better(v, static_cast<int>(c), best, bi)) {
      best = v;
      bi = static_cast<int>(c);
    }
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float v = __shfl_down_sync(0xffffffffu, best, offset);
    const int i = __shfl_down_sync(0xffffffffu, bi, offset);
    if (better(v, i, best, bi)) {
      best = v;
      bi = i;
    }
  }
  if (lane == 0) out[row] = bi;
}

}  // namespace

void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out,
                     Stream stream) {
  MLPERF_CHECK_KERNEL(cols > 0, "argmax over zero columns");
  MLPERF_CHECK_KERNEL(stride >= cols, "argmax row stride " << stride << " < cols " << cols);
  if (rows == 0) return;
  const unsigned blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  argmax_rows_kernel<<<blocks, kWarp * kWarpsPerBlock, 0, static_cast<cudaStream_t>(stream)>>>(
      scores, rows, cols, stride, out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlperf_trt::kernels::cuda
