// Post-processors of the RetinaNet benchmark (SPEC §2.2): engine outputs -> per sample the
// payload of SPEC §1.2, 7 float32 per detection
//   [qsl_idx, y1 / size, x1 / size, y2 / size, x2 / size, score, label]
// in descending score order (note the y, x order), an empty payload when nothing is detected.
// Both run without the GIL and may be called by several workers at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "harness/postprocessor.h"
#include "kernels/cpu/retinanet.h"

namespace mlperf_trt {

// Our built model: raw head outputs cls_logits float32 [N, A, C] and bbox_regression float32
// [N, A, 4]; decode + top-k + class-wise NMS in C++ (kernels/cpu/retinanet.h). Each concurrent
// call takes its own scratch buffers from a free list (one per worker in steady state).
class RetinaNetPostprocessor : public Postprocessor {
 public:
  RetinaNetPostprocessor(size_t cls_output, size_t box_output, std::vector<float> anchors,
                         std::vector<size_t> level_sizes, float image_size);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;
  size_t anchors() const { return anchors_.size() / 4; }
  const std::vector<size_t>& level_sizes() const { return level_sizes_; }

 private:
  struct Scratch {
    kernels::RetinaNetScratch kernel;
    std::vector<kernels::Detection> detections;
  };
  std::unique_ptr<Scratch> take_scratch();
  void give_back(std::unique_ptr<Scratch> scratch);

  size_t cls_output_, box_output_;
  std::vector<float> anchors_;  // [A, 4] x1, y1, x2, y2
  std::vector<size_t> level_sizes_;
  kernels::RetinaNetParams params_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Scratch>> free_;
};

// The official ONNX (NMS inside the model, batch 1): boxes float32 [K, 4] (x1, y1, x2, y2
// pixels), labels int64 (or int32) [K], scores float32 [K], sorted by descending score; a leading
// batch axis of 1 is accepted. The payload walks the detections and stops at the first score
// below 0.05 (SPEC §2.2).
class DetectionsPostprocessor : public Postprocessor {
 public:
  DetectionsPostprocessor(size_t boxes_output, size_t labels_output, size_t scores_output,
                          float image_size);
  void process(const Batch& batch, const std::vector<TensorView>& outputs,
               Responses& out) override;

 private:
  size_t boxes_output_, labels_output_, scores_output_;
  float image_size_;
};

// Appends one sample's payload (SPEC §2.2 layout above) for `count` detections.
void append_detection_payload(uint64_t qsl_index, const kernels::Detection* detections,
                              size_t count, float image_size, Responses& out);

}  // namespace mlperf_trt
