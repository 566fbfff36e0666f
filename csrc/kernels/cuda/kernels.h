// Launchers of the CUDA twins of kernels/cpu (same arguments, device pointers, a stream).
// Plain C++ header: no CUDA types leak to callers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlperf_trt::kernels::cuda {

using Stream = void*;  // cudaStream_t

void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out,
                     Stream stream);
void quantize_int8(const float* x, size_t n, float scale, int8_t* out, Stream stream);
void dequantize_int8(const int8_t* q, size_t n, float scale, float* out, Stream stream);

}  // namespace mlperf_trt::kernels::cuda
