// BufferPool: a fixed number of fixed-size buffers carved from one allocation, handed out and
// taken back by id (DESIGN §4.1: "store.gather(batch) into a pooled, pinned buffer"). The
// bookkeeping is shared; HostPool (cpu/host_pool.h) and PinnedPool (cuda/pinned_pool.h) own the
// memory, so the harness takes buffers from either through this interface.
//
// Thread-safe. Exhaustion: acquire() waits up to `timeout_us` for a release (0: does not wait,
// < 0: waits for ever) and then throws a kKernel error naming the pool's size. Releasing an id
// that is not out (twice, or never acquired) throws. Buffers keep their bytes between uses.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace mlperf_trt::kernels {

class BufferPool {
 public:
  struct Buffer {
    size_t id = 0;
    void* data = nullptr;
  };

  virtual ~BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Buffer acquire(int64_t timeout_us = 0);
  void release(size_t id);

  void* data(size_t id) const;
  size_t buffer_bytes() const { return buffer_bytes_; }
  size_t capacity() const { return in_use_.size(); }
  size_t available() const;
  size_t alignment() const { return alignment_; }
  // Bytes between the starts of two buffers: buffer_bytes rounded up to the alignment.
  size_t stride() const { return stride_; }
  virtual const char* kind() const = 0;

 protected:
  // Validates the sizes; the derived class then allocates capacity * stride() bytes aligned to
  // `alignment` and hands the block to adopt().
  BufferPool(size_t buffer_bytes, size_t count, size_t alignment);
  void adopt(uint8_t* block);

 private:
  size_t buffer_bytes_;
  size_t alignment_;
  size_t stride_;
  uint8_t* block_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable released_;
  std::vector<bool> in_use_;
  std::vector<size_t> free_;  // LIFO: the buffer released last (warm in cache) goes out first
};

}  // namespace mlperf_trt::kernels
