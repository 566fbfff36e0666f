// CUDA twin of kernels/cpu/sliding_window.cpp: one launch per window, in window order, so each
// voxel's float sums happen in the CPU twin's order (bit-identical results).
#include <cuda_runtime.h>

#include "common/check.h"
#include "kernels/cpu/detection_math.h"
#include "kernels/cpu/sliding_window.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

constexpr unsigned kThreads = 256;

unsigned grid_for(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

struct Window {
  size_t oz, oy, ox;
};

Window window_at(const int64_t* origins, size_t w) {
  return Window{static_cast<size_t>(origins[w * 3]), static_cast<size_t>(origins[w * 3 + 1]),
                static_cast<size_t>(origins[w * 3 + 2])};
}

__global__ void extract_kernel(const float* __restrict__ volume, size_t height, size_t width,
                               Window o, size_t roi, float* __restrict__ out) {
  const size_t n = roi * roi * roi;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t z = i / (roi * roi), y = (i / roi) % roi, x = i % roi;
    out[i] = volume[((o.oz + z) * height + o.oy + y) * width + o.ox + x];
  }
}

__global__ void accumulate_kernel(const float* __restrict__ logits, size_t channels,
                                  const float* __restrict__ patch, VolumeShape shape, Window o,
                                  size_t roi, float* __restrict__ result,
                                  float* __restrict__ norm) {
  const size_t n = roi * roi * roi;
  const size_t voxels = shape.depth * shape.height * shape.width;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t z = i / (roi * roi), y = (i / roi) % roi, x = i % roi;
    const size_t v = ((o.oz + z) * shape.height + o.oy + y) * shape.width + o.ox + x;
    const float p = patch[i];
    for (size_t c = 0; c < channels; ++c) {
      result[c * voxels + v] = detection::accumulate(result[c * voxels + v], logits[c * n + i], p);
    }
    norm[v] = detection::fadd(norm[v], p);
  }
}

__global__ void finalize_kernel(const float* __restrict__ result, const float* __restrict__ norm,
                                size_t channels, size_t voxels, uint8_t* __restrict__ out) {
  for (size_t v = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; v < voxels;
       v += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float n = norm[v];
    size_t best = 0;
    float best_value = detection::fdiv(result[v], n);
    for (size_t c = 1; c < channels; ++c) {
      const float value = detection::fdiv(result[c * voxels + v], n);
      if (value > best_value || (best_value != best_value && value == value)) {
        best_value = value;
        best = c;
      }
    }
    out[v] = static_cast<uint8_t>(best);
  }
}

}  // namespace

void extract_windows(const float* volume, const VolumeShape& shape, const int64_t* origins,
                     size_t k, size_t roi, float* windows, Stream stream) {
  check_origins(origins, k, shape, roi);
  const size_t n = roi * roi * roi;
  for (size_t w = 0; w < k; ++w) {
    extract_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        volume, shape.height, shape.width, window_at(origins, w), roi, windows + w * n);
    MLPERF_CUDA_CHECK(cudaGetLastError());
  }
}

void accumulate_windows(const float* logits, size_t channels, const int64_t* origins, size_t k,
                        size_t roi, const float* patch, const VolumeShape& shape, float* result,
                        float* norm, Stream stream) {
  MLPERF_CHECK_KERNEL(channels > 0, "accumulate_windows: zero channels");
  check_origins(origins, k, shape, roi);
  const size_t n = roi * roi * roi;
  for (size_t w = 0; w < k; ++w) {
    accumulate_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        logits + w * channels * n, channels, patch, shape, window_at(origins, w), roi, result,
        norm);
    MLPERF_CUDA_CHECK(cudaGetLastError());
  }
}

void finalize_argmax(const float* result, const float* norm, size_t channels,
                     const VolumeShape& shape, uint8_t* out, Stream stream) {
  MLPERF_CHECK_KERNEL(channels > 0 && channels <= 256,
                      "finalize_argmax: channels must be in [1, 256], got " << channels);
  const size_t voxels = shape.voxels();
  if (voxels == 0) return;
  finalize_kernel<<<grid_for(voxels), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      result, norm, channels, voxels, out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlperf_trt::kernels::cuda
