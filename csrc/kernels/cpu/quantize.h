// Symmetric per-tensor INT8 quantisation as TensorRT and ONNX QuantizeLinear define it:
// q = clamp(round_half_to_even(x / scale), -128, 127) (zero point 0). CPU reference of
// cuda/quantize.cu; the INT8 input of a TensorRT engine (e.g. resnet50) is made this way.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlperf_trt::kernels {

void quantize_int8(const float* x, size_t n, float scale, int8_t* out);
void dequantize_int8(const int8_t* q, size_t n, float scale, float* out);

}  // namespace mlperf_trt::kernels
