#include "kernels/cpu/host_pool.h"

#include <cstdlib>

#include "common/check.h"

namespace mlperf_trt::kernels {

HostPool::HostPool(size_t buffer_bytes, size_t count)
    : BufferPool(buffer_bytes, count, kAlignment) {
  // stride() is a multiple of kAlignment, as std::aligned_alloc requires of the size.
  block_ = std::aligned_alloc(kAlignment, stride() * capacity());
  MLPERF_CHECK_KERNEL(block_ != nullptr, "HostPool: could not allocate "
                                             << capacity() << " buffers of " << buffer_bytes
                                             << " bytes");
  adopt(static_cast<uint8_t*>(block_));
}

HostPool::~HostPool() { std::free(block_); }

}  // namespace mlperf_trt::kernels
