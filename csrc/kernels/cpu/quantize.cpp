#include "kernels/cpu/quantize.h"

#include <cmath>

#include "common/check.h"

namespace mlperf_trt::kernels {

void quantize_int8(const float* x, size_t n, float scale, int8_t* out) {
  MLPERF_CHECK_KERNEL(scale > 0.0f && std::isfinite(scale),
                      "quantisation scale must be finite and > 0, got " << scale);
  for (size_t i = 0; i < n; ++i) {
    // x / scale (not x * (1/scale)) as QuantizeLinear divides; nearbyint rounds half to even
    // under the default rounding mode. NaN maps to 0.
    float v = std::nearbyint(x[i] / scale);
    if (v != v) v = 0.0f;
    v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
    out[i] = static_cast<int8_t>(v);
  }
}

void dequantize_int8(const int8_t* q, size_t n, float scale, float* out) {
  MLPERF_CHECK_KERNEL(scale > 0.0f && std::isfinite(scale),
                      "quantisation scale must be finite and > 0, got " << scale);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(q[i]) * scale;
}

}  // namespace mlperf_trt::kernels
