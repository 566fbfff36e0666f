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
};

// Per-position outputs interleaved into one payload per sample (BERT, SPEC §1.2 and §2.4): k
// float32 outputs [N, L] become float32 [positions][k] per sample, position-major. The engine may
// run a shorter padded length L < positions (length buckets); the positions past L get `fill`,
// which is what the reference's accuracy script pads short payloads with (-10000).
class InterleavePostprocessor : public Postprocessor {
 public:
  InterleavePostprocessor(std::vector<size_t> outputs, size_t positions, float fill);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  std::vector<size_t> outputs_;
  size_t positions_;
  float fill_;
};

// Rows of one float32 output [sum of the batch's costs, k] split by sample (DLRMv2, SPEC §1.2,
// §2.8): sample i of the batch gets its costs[i] consecutive rows (one per user-item pair) as its
// payload, in batch order.
class RowsPostprocessor : public Postprocessor {
 public:
  explicit RowsPostprocessor(size_t output);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  size_t output_;
};

// The raw bytes of one output, row i to sample i (3D-UNet's uint8 label volume, SPEC §1.2, §2.3):
// output [N, ...] of any dtype; every sample's payload is its row, whatever the row's size.
class BytesPostprocessor : public Postprocessor {
 public:
  explicit BytesPostprocessor(size_t output);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  size_t output_;
};

}  // namespace mlperf_trt
