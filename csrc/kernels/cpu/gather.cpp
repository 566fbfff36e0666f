#include "kernels/cpu/gather.h"

#include <cstring>

#include "common/check.h"

namespace mlperf_trt::kernels {

std::vector<RowRun> coalesce_rows(const int64_t* indices, size_t n, size_t src_rows) {
  std::vector<RowRun> runs;
  for (size_t i = 0; i < n; ++i) {
    const int64_t index = indices[i];
    MLPERF_CHECK_DATA(index >= 0 && static_cast<uint64_t>(index) < src_rows,
                      "gather: index " << index << " at position " << i
                                       << " is out of range for a source of " << src_rows
                                       << " rows; indices must be in [0, " << src_rows << ")");
    const auto row = static_cast<size_t>(index);
    if (!runs.empty() && runs.back().src_row + runs.back().count == row) {
      ++runs.back().count;
    } else {
      runs.push_back(RowRun{row, i, 1});
    }
  }
  return runs;
}

void gather_rows(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                 const int64_t* indices, size_t n, void* dst) {
  MLPERF_CHECK_KERNEL(src_stride >= row_bytes,
                      "gather: source row stride " << src_stride << " < row bytes " << row_bytes);
  const std::vector<RowRun> runs = coalesce_rows(indices, n, src_rows);
  if (row_bytes == 0) return;
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  for (const RowRun& run : runs) {
    uint8_t* to = out + run.dst_row * row_bytes;
    const uint8_t* from = in + run.src_row * src_stride;
    if (src_stride == row_bytes) {
      std::memcpy(to, from, run.count * row_bytes);  // packed source: one copy per run
    } else {
      for (size_t r = 0; r < run.count; ++r) {
        std::memcpy(to + r * row_bytes, from + r * src_stride, row_bytes);
      }
    }
  }
}

}  // namespace mlperf_trt::kernels
