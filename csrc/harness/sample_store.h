// SampleStore: the loaded samples (LoadSamplesToRam / UnloadSamplesFromRam) in contiguous host
// memory, one arena per input tensor, with an offset per loaded sample (DESIGN §4.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/tensor.h"

namespace mlperf_trt {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> sample_shape;  // shape of one sample, without the batch dimension

  size_t sample_bytes() const {
    size_t n = dtype_size(dtype);
    for (int64_t d : sample_shape) n *= static_cast<size_t>(d);
    return n;
  }
};

class SampleStore {
 public:
  SampleStore(std::vector<TensorSpec> tensors, int64_t total_samples);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int64_t total_samples() const { return total_samples_; }
  size_t loaded_count() const;
  bool is_loaded(int64_t index) const;

  // Reserves room for `count` samples so that loading does not reallocate.
  void reserve(size_t count);
  // Copies one sample's bytes for every tensor (data[t] holds tensors()[t].sample_bytes()).
  void load(int64_t index, const std::vector<const void*>& data);
  void unload(const std::vector<int64_t>& indices);
  void unload_all();

  // Copies the samples `indices` of tensor `tensor` into `out` (n rows of sample_bytes).
  void gather(const uint64_t* indices, size_t n, size_t tensor, void* out) const;

 private:
  std::vector<TensorSpec> tensors_;
  int64_t total_samples_;
  std::vector<int64_t> slot_of_;  // sample index -> slot in the arenas, -1 when not loaded
  std::vector<std::vector<uint8_t>> arenas_;  // per tensor, slot-major
  std::vector<int64_t> free_slots_;
  int64_t slots_used_ = 0;
  mutable std::shared_mutex mutex_;  // load/unload exclusive; gathers share it
};

}  // namespace mlperf_trt
