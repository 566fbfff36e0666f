// CUDA twin of kernels/cpu/gather.cpp: device -> device row gather (one thread per vector word of
// the output, grid-stride), and the host -> device gather as one async copy per run.
#include <cuda_runtime.h>

#include "common/check.h"
#include "kernels/cpu/gather.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Word>
__global__ void gather_rows_kernel(const uint8_t* __restrict__ src, size_t src_rows,
                                   size_t src_stride, size_t row_bytes,
                                   const int64_t* __restrict__ indices, size_t n,
                                   uint8_t* __restrict__ dst) {
  const size_t words = row_bytes / sizeof(Word);
  const size_t total = n * words;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / words;
    const size_t word = i - row * words;
    const int64_t index = indices[row];
    Word v{};  // zeros for an unchecked out-of-range index: never read outside src
    if (index >= 0 && static_cast<uint64_t>(index) < src_rows) {
      v = reinterpret_cast<const Word*>(src + static_cast<size_t>(index) * src_stride)[word];
    }
    reinterpret_cast<Word*>(dst + row * row_bytes)[word] = v;
  }
}

template <typename Word>
void launch(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
            const int64_t* indices, size_t n, void* dst, cudaStream_t stream) {
  const size_t total = n * (row_bytes / sizeof(Word));
  const size_t blocks = (total + kThreads - 1) / kThreads;
  const auto grid = static_cast<unsigned>(blocks < 65535 ? blocks : 65535);
  gather_rows_kernel<Word><<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(src),
                                                          src_rows, src_stride, row_bytes, indices,
                                                          n, static_cast<uint8_t*>(dst));
  MLPERF_CUDA_CHECK(cudaGetLastError());
}

// The widest word (16, 8, 4 or 1 bytes) that divides every address and size involved.
bool aligned_to(size_t align, const void* src, const void* dst, size_t row_bytes,
                size_t src_stride) {
  return reinterpret_cast<uintptr_t>(src) % align == 0 &&
         reinterpret_cast<uintptr_t>(dst) % align == 0 && row_bytes % align == 0 &&
         src_stride % align == 0;
}

}  // namespace

void gather_rows(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                 const int64_t* indices, size_t n, void* dst, Stream stream) {
  MLPERF_CHECK_KERNEL(src_stride >= row_bytes,
                      "gather: source row stride " << src_stride << " < row bytes " << row_bytes);
  if (n == 0 || row_bytes == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (aligned_to(16, src, dst, row_bytes, src_stride)) {
    launch<uint4>(src, src_rows, src_stride, row_bytes, indices, n, dst, s);
  } else if (aligned_to(8, src, dst, row_bytes, src_stride)) {
    launch<uint2>(src, src_rows, src_stride, row_bytes, indices, n, dst, s);
  } else if (aligned_to(4, src, dst, row_bytes, src_stride)) {
    launch<uint32_t>(src, src_rows, src_stride, row_bytes, indices, n, dst, s);
  } else {
    launch<uint8_t>(src, src_rows, src_stride, row_bytes, indices, n, dst, s);
  }
}

void gather_rows_h2d(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                     const int64_t* indices, size_t n, void* dst, Stream stream) {
  MLPERF_CHECK_KERNEL(src_stride >= row_bytes,
                      "gather: source row stride " << src_stride << " < row bytes " << row_bytes);
  const std::vector<RowRun> runs = coalesce_rows(indices, n, src_rows);
  if (row_bytes == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  for (const RowRun& run : runs) {
    uint8_t* to = out + run.dst_row * row_bytes;
    const uint8_t* from = in + run.src_row * src_stride;
    if (src_stride == row_bytes || run.count == 1) {
      MLPERF_CUDA_CHECK(
          cudaMemcpyAsync(to, from, run.count * row_bytes, cudaMemcpyHostToDevice, s));
    } else {
      MLPERF_CUDA_CHECK(cudaMemcpy2DAsync(to, row_bytes, from, src_stride, row_bytes, run.count,
                                          cudaMemcpyHostToDevice, s));
    }
  }
}

}  // namespace mlperf_trt::kernels::cuda
