// CUDA twin of kernels/cpu/image.cpp: one thread per output element, CHW order.
#include <cuda_runtime.h>

#include "common/check.h"
#include "kernels/cpu/image.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

struct Params {
  const uint8_t* img;
  size_t width, top, left, out_h, out_w;
  bool bgr_to_rgb;
  float mean[3], divisor[3];
};

__device__ __forceinline__ float value_at(const Params& p, size_t i) {
  const size_t plane = p.out_h * p.out_w;
  const size_t c = i / plane;
  const size_t y = (i % plane) / p.out_w;
  const size_t x = i % p.out_w;
  const size_t src = p.bgr_to_rgb ? 2 - c : c;
  const uint8_t v = p.img[((p.top + y) * p.width + p.left + x) * 3 + src];
  return __fdiv_rn(__fsub_rn(static_cast<float>(v), p.mean[c]), p.divisor[c]);
}

__global__ void crop_normalize_f32_kernel(Params p, float* __restrict__ out) {
  const size_t n = 3 * p.out_h * p.out_w;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = value_at(p, i);
  }
}

__global__ void crop_normalize_i8_kernel(Params p, float scale, int8_t* __restrict__ out) {
  const size_t n = 3 * p.out_h * p.out_w;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float q = fminf(fmaxf(rintf(__fdiv_rn(value_at(p, i), scale)), -128.0f), 127.0f);
    out[i] = static_cast<int8_t>(q);
  }
}

Params make_params(const uint8_t* img, const ImageWindow& w, const float mean[3],
                   const float divisor[3]) {
  check_window(w);
  Params p{img, w.width, w.top, w.left, w.out_h, w.out_w, w.bgr_to_rgb, {}, {}};
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = mean[c];
    p.divisor[c] = divisor[c];
  }
  return p;
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

}  // namespace

void crop_normalize_chw_f32(const uint8_t* img, const ImageWindow& w, const float mean[3],
                            const float divisor[3], float* out, Stream stream) {
  const Params p = make_params(img, w, mean, divisor);
  crop_normalize_f32_kernel<<<grid_for(3 * w.out_h * w.out_w), 256, 0,
                              static_cast<cudaStream_t>(stream)>>>(p, out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

void crop_normalize_chw_i8(const uint8_t* img, const ImageWindow& w, const float mean[3],
                           const float divisor[3], float scale, int8_t* out, Stream stream) {
  MLPERF_CHECK_KERNEL(scale > 0.0f, "quantisation scale must be > 0, got " << scale);
  const Params p = make_params(img, w, mean, divisor);
  crop_normalize_i8_kernel<<<grid_for(3 * w.out_h * w.out_w), 256, 0,
                             static_cast<cudaStream_t>(stream)>>>(p, scale, out);
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlperf_trt::kernels::cuda
