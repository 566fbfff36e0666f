// PinnedPool: a BufferPool (cpu/buffer_pool.h) over page-locked host memory from cudaHostAlloc,
// so that host -> device copies of batch buffers run asynchronously at full PCIe/NVLink speed.
// HostPool (cpu/host_pool.h) is its CPU twin with the same interface. Plain C++ header.
#pragma once

#include <cstddef>

#include "kernels/cpu/buffer_pool.h"

namespace mlperf_trt::kernels::cuda {

class PinnedPool : public BufferPool {
 public:
  static constexpr size_t kAlignment = 256;  // >= HostPool's 64; what cudaMalloc guarantees

  // One cudaHostAlloc block of count buffers (portable: pinned for every device); needs a driver
  // (kBackend error otherwise). Freed on destruction.
  PinnedPool(size_t buffer_bytes, size_t count);
  ~PinnedPool() override;
  const char* kind() const override { return "PinnedPool"; }

 private:
  void* block_ = nullptr;
};

}  // namespace mlperf_trt::kernels::cuda
