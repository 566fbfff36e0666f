#include "kernels/cuda/pinned_pool.h"

#include <cuda_runtime.h>

#include "common/check.h"

namespace mlperf_trt::kernels::cuda {

PinnedPool::PinnedPool(size_t buffer_bytes, size_t count)
    : BufferPool(buffer_bytes, count, kAlignment) {
  MLPERF_CUDA_CHECK(cudaHostAlloc(&block_, stride() * capacity(), cudaHostAllocPortable));
  adopt(static_cast<uint8_t*>(block_));
}

PinnedPool::~PinnedPool() {
  if (block_) cudaFreeHost(block_);
}

}  // namespace mlperf_trt::kernels::cuda
