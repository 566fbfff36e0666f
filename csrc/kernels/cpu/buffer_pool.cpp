#include "kernels/cpu/buffer_pool.h"

#include <chrono>

#include "common/check.h"

namespace mlperf_trt::kernels {

BufferPool::BufferPool(size_t buffer_bytes, size_t count, size_t alignment)
    : buffer_bytes_(buffer_bytes), alignment_(alignment), in_use_(count, false) {
  MLPERF_CHECK_KERNEL(buffer_bytes > 0, "buffer pool: buffer_bytes must be > 0");
  MLPERF_CHECK_KERNEL(count > 0, "buffer pool: the number of buffers must be > 0");
  MLPERF_CHECK_KERNEL(alignment > 0 && (alignment & (alignment - 1)) == 0,
                      "buffer pool: alignment " << alignment << " is not a power of two");
  stride_ = (buffer_bytes + alignment - 1) / alignment * alignment;
  MLPERF_CHECK_KERNEL(stride_ <= SIZE_MAX / count, "buffer pool: " << count << " buffers of "
                                                                   << buffer_bytes
                                                                   << " bytes overflow size_t");
  free_.reserve(count);
  for (size_t i = count; i-- > 0;) free_.push_back(i);  // id 0 goes out first
}

void BufferPool::adopt(uint8_t* block) { block_ = block; }

BufferPool::Buffer BufferPool::acquire(int64_t timeout_us) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto has_free = [this] { return !free_.empty(); };
  if (timeout_us < 0) {
    released_.wait(lock, has_free);
  } else if (!has_free()) {
    released_.wait_for(lock, std::chrono::microseconds(timeout_us), has_free);
  }
  MLPERF_CHECK_KERNEL(has_free(), kind() << " exhausted: all " << capacity() << " buffers of "
                                         << buffer_bytes_ << " bytes are in use after waiting "
                                         << timeout_us
                                         << " us; release buffers sooner, wait longer, or make "
                                            "the pool larger");
  const size_t id = free_.back();
  free_.pop_back();
  in_use_[id] = true;
  return Buffer{id, block_ + id * stride_};
}

void BufferPool::release(size_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    MLPERF_CHECK_KERNEL(id < in_use_.size(), kind() << ": release of buffer id " << id
                                                    << ", but the pool has " << in_use_.size()
                                                    << " buffers (ids 0.." << in_use_.size() - 1
                                                    << ")");
    MLPERF_CHECK_KERNEL(in_use_[id], kind() << ": buffer id " << id
                                            << " released but it is not acquired (released "
                                               "twice?)");
    in_use_[id] = false;
    free_.push_back(id);
  }
  released_.notify_one();
}

void* BufferPool::data(size_t id) const {
  MLPERF_CHECK_KERNEL(id < in_use_.size(), kind() << ": no buffer id " << id);
  return block_ + id * stride_;
}

size_t BufferPool::available() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return free_.size();
}

}  // namespace mlperf_trt::kernels
