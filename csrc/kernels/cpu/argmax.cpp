#include "kernels/cpu/argmax.h"

#include "common/check.h"

namespace mlperf_trt::kernels {

void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out) {
  MLPERF_CHECK_KERNEL(cols > 0, "argmax over zero columns");
  MLPERF_CHECK_KERNEL(stride >= cols, "argmax row stride " << stride << " < cols " << cols);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = scores + r * stride;
    size_t best = 0;
    float best_value = row[0];
    for (size_t c = 1; c < cols; ++c) {
      // `!(best_value >= v)` would let NaN win; a strict > keeps the first maximum.
      if (row[c] > best_value || (best_value != best_value && row[c] == row[c])) {
        best_value = row[c];
        best = c;
      }
    }
    out[r] = static_cast<int32_t>(best);
  }
}

}  // namespace mlperf_trt::kernels
