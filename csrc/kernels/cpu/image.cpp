#include "kernels/cpu/image.h"

#include <cmath>

#include "common/check.h"

namespace mlperf_trt::kernels {

void check_window(const ImageWindow& w) {
  MLPERF_CHECK_KERNEL(w.out_h > 0 && w.out_w > 0, "empty crop " << w.out_h << "x" << w.out_w);
  MLPERF_CHECK_KERNEL(w.top + w.out_h <= w.height && w.left + w.out_w <= w.width,
                      "crop " << w.out_h << "x" << w.out_w << " at (" << w.top << ", " << w.left
                              << ") does not fit a " << w.height << "x" << w.width << " image");
}

namespace {

template <typename Store>
void crop_normalize(const uint8_t* img, const ImageWindow& w, const float mean[3],
                    const float divisor[3], Store store) {
  check_window(w);
  const size_t plane = w.out_h * w.out_w;
  for (size_t y = 0; y < w.out_h; ++y) {
    const uint8_t* row = img + ((w.top + y) * w.width + w.left) * 3;
    for (size_t x = 0; x < w.out_w; ++x) {
      const uint8_t* px = row + x * 3;
      for (size_t c = 0; c < 3; ++c) {
        const size_t src = w.bgr_to_rgb ? 2 - c : c;
        const float v = (static_cast<float>(px[src]) - mean[c]) / divisor[c];
        store(c * plane + y * w.out_w + x, v);
      }
    }
  }
}

}  // namespace

void crop_normalize_chw_f32(const uint8_t* img, const ImageWindow& w, const float mean[3],
                            const float divisor[3], float* out) {
  crop_normalize(img, w, mean, divisor, [out](size_t i, float v) { out[i] = v; });
}

void crop_normalize_chw_i8(const uint8_t* img, const ImageWindow& w, const float mean[3],
                           const float divisor[3], float scale, int8_t* out) {
  MLPERF_CHECK_KERNEL(scale > 0.0f && std::isfinite(scale),
                      "quantisation scale must be finite and > 0, got " << scale);
  crop_normalize(img, w, mean, divisor, [out, scale](size_t i, float v) {
    float q = std::nearbyint(v / scale);
    q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
    out[i] = static_cast<int8_t>(q);
  });
}

}  // namespace mlperf_trt::kernels
