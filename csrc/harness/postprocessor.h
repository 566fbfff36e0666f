// Postprocessor: engine outputs of a batch -> one payload per sample in the byte layout of
// SPEC §1.2. Hot ones live here in C++ and run without the GIL.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/tensor.h"
#include "harness/completion.h"

namespace mlperf_trt {

class Postprocessor {
 public:
  virtual ~Postprocessor() = default;
  virtual void process(const Batch& batch, const std::vector<TensorView>& outputs,
                       Responses& out) = 0;
};

// Zero-filled payloads of a fixed size: the null backend's responses for any benchmark.
// With tokens > 0 every response carries n_tokens = tokens (LLM payloads, SPEC §3.5).
class ZerosPostprocessor : public Postprocessor {
 public:
  ZerosPostprocessor(size_t payload_bytes, int64_t tokens, bool first_token);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  size_t payload_bytes_;
  int64_t tokens_;
  bool first_token_;
};

// One float32 class index per sample (ResNet50, SPEC §2.1): from an integer output [N] (the
// model's ArgMax) or from float32 scores [N, C] (argmax kernel), plus `offset` (-1 drops the
// background class of the 1001-class model).
class ClassIndexPostprocessor : public Postprocessor {
 public:
  ClassIndexPostprocessor(size_t output, int64_t offset);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  size_t output_;
  int64_t offset_;
  std::vector<int32_t> scratch_;
};

}  // namespace mlperf_trt
