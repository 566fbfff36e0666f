// CUDA twin of kernels/cpu/quantize.cpp: q = clamp(rint(x / scale), -128, 127), NaN -> 0.
#include <cuda_runtime.h>

#include <cmath>

#include "common/check.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void quantize_kernel(const float* __restrict__ x, size_t n, float scale,
                                int8_t* __restrict__ out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float v = rintf(__fdiv_rn(x[i], scale));  // IEEE division and round-half-even, as on the CPU
    if (v != v) v = 0.0f;
    v = fminf(fmaxf(v, -128.0f), 127.0f);
    out[i] = static_cast<int8_t>(v);
  }
}

__global__ void dequantize_kernel(const int8_t* __restrict__ q, size_t n, float scale,
                                  float* __restrict__ out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = static_cast<float>(q[i]) * scale;
  }
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

}  // namespace

void quantize_int8(const float* x, size_t n, float scale, int8_t* out, Stream stream) {
  MLPERF_CHECK_KERNEL(scale > 0.0f && std::isfinite(scale),
                      "quantisation scale must be finite and > 0, got " << scale);
  if (n == 0) return;
  quantize_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, scale,
                                                                                   out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

void dequantize_int8(const int8_t* q, size_t n, float scale, float* out, Stream stream) {
  MLPERF_CHECK_KERNEL(scale > 0.0f && std::isfinite(scale),
                      "quantisation scale must be finite and > 0, got " << scale);
  if (n == 0) return;
  dequantize_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(q, n, scale,
                                                                                     out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlperf_trt::kernels::cuda
