// Row gather for the SampleStore (DESIGN §4.1): dst row i = src row indices[i]. CPU reference of
// cuda/gather.cu. Rows are opaque bytes (any dtype, any row size); src rows may sit `src_stride`
// bytes apart (a strided view), dst rows are packed (`row_bytes` apart) as a batch buffer wants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlperf_trt::kernels {

// A run of consecutive source rows copied to consecutive destination rows.
struct RowRun {
  size_t src_row = 0;
  size_t dst_row = 0;
  size_t count = 0;
};

// Checks every index against [0, src_rows) (kData error naming the position, the index and the
// row count) and merges consecutive indices into runs: a SampleStore batch of neighbouring
// samples becomes one memcpy (CPU) or one cudaMemcpyAsync (cuda/gather.cu) instead of n.
std::vector<RowRun> coalesce_rows(const int64_t* indices, size_t n, size_t src_rows);

// dst[i] = src[indices[i]] for i < n; src has src_rows rows of row_bytes, src_stride bytes apart
// (src_stride >= row_bytes). Indices are checked as in coalesce_rows before anything is written.
void gather_rows(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                 const int64_t* indices, size_t n, void* dst);

}  // namespace mlperf_trt::kernels
