// Row-wise argmax (first maximum wins, NaN never wins). CPU reference of cuda/argmax.cu.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlperf_trt::kernels {

// scores: rows x cols, rows `stride` elements apart; out: one index per row.
void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out);

}  // namespace mlperf_trt::kernels
