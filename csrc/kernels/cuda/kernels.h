// Launchers of the CUDA twins of kernels/cpu (same arguments, device pointers, a stream).
// Plain C++ header: no CUDA types leak to callers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/image.h"

namespace mlperf_trt::kernels::cuda {

using Stream = void*;  // cudaStream_t

void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out,
                     Stream stream);
void quantize_int8(const float* x, size_t n, float scale, int8_t* out, Stream stream);
void dequantize_int8(const int8_t* q, size_t n, float scale, float* out, Stream stream);
void crop_normalize_chw_f32(const uint8_t* img, const ImageWindow& w, const float mean[3],
                            const float divisor[3], float* out, Stream stream);
void crop_normalize_chw_i8(const uint8_t* img, const ImageWindow& w, const float mean[3],
                           const float divisor[3], float scale, int8_t* out, Stream stream);

}  // namespace mlperf_trt::kernels::cuda
