#include "harness/sample_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/check.h"

namespace mlperf_trt {

SampleStore::SampleStore(std::vector<TensorSpec> tensors, int64_t total_samples)
    : tensors_(std::move(tensors)),
      total_samples_(total_samples),
      slot_of_(static_cast<size_t>(total_samples > 0 ? total_samples : 0), -1),
      arenas_(tensors_.size()) {
  MLPERF_CHECK_CONFIG(total_samples > 0,
                      "SampleStore needs a positive total sample count, got " << total_samples);
}

size_t SampleStore::loaded_count() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  return static_cast<size_t>(slots_used_) - free_slots_.size();
}

bool SampleStore::is_loaded(int64_t index) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  return index >= 0 && index < total_samples_ && slot_of_[static_cast<size_t>(index)] >= 0;
}

void SampleStore::reserve(size_t count) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  for (size_t t = 0; t < tensors_.size(); ++t) {
    arenas_[t].reserve(count * tensors_[t].sample_bytes());
  }
}

void SampleStore::load(int64_t index, const std::vector<const void*>& data) {
  MLPERF_CHECK_DATA(index >= 0 && index < total_samples_,
                    "sample index " << index << " is outside [0, " << total_samples_ << ")");
  MLPERF_CHECK_DATA(data.size() == tensors_.size(),
                    "sample " << index << ": got " << data.size() << " tensors, the store holds "
                              << tensors_.size());
  std::unique_lock<std::shared_mutex> lock(mutex_);
  int64_t& slot = slot_of_[static_cast<size_t>(index)];
  if (slot < 0) {
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = slots_used_++;
      for (size_t t = 0; t < tensors_.size(); ++t) {
        arenas_[t].resize(static_cast<size_t>(slots_used_) * tensors_[t].sample_bytes());
      }
    }
  }
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const size_t bytes = tensors_[t].sample_bytes();
    std::memcpy(arenas_[t].data() + static_cast<size_t>(slot) * bytes, data[t], bytes);
  }
}

void SampleStore::unload(const std::vector<int64_t>& indices) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  for (int64_t index : indices) {
    if (index < 0 || index >= total_samples_) continue;
    int64_t& slot = slot_of_[static_cast<size_t>(index)];
    if (slot >= 0) {
      free_slots_.push_back(slot);
      slot = -1;
    }
  }
}

void SampleStore::unload_all() {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  std::fill(slot_of_.begin(), slot_of_.end(), -1);
  free_slots_.clear();
  slots_used_ = 0;
  for (auto& arena : arenas_) {
    arena.clear();
    arena.shrink_to_fit();
  }
}

void SampleStore::gather(const uint64_t* indices, size_t n, size_t tensor, void* out) const {
  MLPERF_CHECK_HARNESS(tensor < tensors_.size(),
                       "tensor " << tensor << " out of range (" << tensors_.size() << " tensors)");
  const size_t bytes = tensors_[tensor].sample_bytes();
  const uint8_t* arena = arenas_[tensor].data();
  auto* dst = static_cast<uint8_t*>(out);
  std::shared_lock<std::shared_mutex> lock(mutex_);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t index = indices[i];
    const int64_t slot =
        index < static_cast<uint64_t>(total_samples_) ? slot_of_[static_cast<size_t>(index)] : -1;
    MLPERF_CHECK_HARNESS(slot >= 0, "sample " << index
                                              << " was issued but is not loaded; LoadGen issues "
                                                 "only samples it loaded first");
    std::memcpy(dst + i * bytes, arena + static_cast<size_t>(slot) * bytes, bytes);
  }
}

}  // namespace mlperf_trt
