// Image layout kernels: crop a window of an HWC uint8 image, optionally swap BGR->RGB, normalise
// per channel, write CHW (SPEC §2.1 steps 3-5, §2.2). CPU reference of cuda/image.cu.
//   out[c][y][x] = (float(img[top+y][left+x][c']) - mean[c]) / divisor[c]
// with c' = 2-c when bgr_to_rgb. Subtraction and division are single float32 operations, so with
// divisor 1 the result is bit-identical to numpy's `img.astype(float32) - mean` of the reference.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlperf_trt::kernels {

struct ImageWindow {
  size_t height = 0, width = 0;  // source image (3 channels, HWC, row-major)
  size_t top = 0, left = 0;      // crop origin
  size_t out_h = 0, out_w = 0;   // crop size
  bool bgr_to_rgb = false;
};

void check_window(const ImageWindow& w);

void crop_normalize_chw_f32(const uint8_t* img, const ImageWindow& w, const float mean[3],
                            const float divisor[3], float* out);

// The same, quantised for an INT8 engine input: clamp(rint(value / scale), -128, 127).
void crop_normalize_chw_i8(const uint8_t* img, const ImageWindow& w, const float mean[3],
                           const float divisor[3], float scale, int8_t* out);

}  // namespace mlperf_trt::kernels
