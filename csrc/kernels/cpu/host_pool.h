// HostPool: the CPU twin of cuda/pinned_pool.h, a BufferPool over ordinary host memory with
// 64-byte (cache line, AVX-512) aligned buffers. Used on CPU-only systems and as the reference of
// PinnedPool in tests.
#pragma once

#include <cstddef>

#include "kernels/cpu/buffer_pool.h"

namespace mlperf_trt::kernels {

class HostPool : public BufferPool {
 public:
  static constexpr size_t kAlignment = 64;

  HostPool(size_t buffer_bytes, size_t count);
  ~HostPool() override;
  const char* kind() const override { return "HostPool"; }

 private:
  void* block_ = nullptr;
};

}  // namespace mlperf_trt::kernels
