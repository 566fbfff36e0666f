// Executor: one per worker, thread-confined (DESIGN §3). Runs a batch of host inputs and returns
// views of its outputs, valid until the next run() on the same executor or its destruction.
#pragma once

#include <vector>

#include "common/tensor.h"

namespace mlperf_trt {

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::vector<TensorView> run(const std::vector<TensorView>& inputs, size_t batch) = 0;
};

}  // namespace mlperf_trt
