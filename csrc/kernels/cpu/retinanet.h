// RetinaNet post-processing of one image (SPEC §2.2): the raw head outputs to at most 300
// detections, as torchvision's RetinaNet.postprocess_detections with the MLPerf settings.
// CPU reference of cuda/retinanet.cu.
//
// Per FPN level (the anchors of the levels are consecutive rows of `anchors`):
//   1. score = sigmoid(logit) for every (anchor, class); keep score > 0.05 (float32 compare);
//   2. keep the best 1000 by score; ties go to the lower flat index anchor * C + class;
//   3. decode the kept candidates' boxes against their anchors (BoxCoder weights 1, 1, 1, 1, dw
//      and dh clamped at log(1000/16)) and clip them to [0, 800];
// then over the candidates of all levels, in descending score order (ties: lower level first,
// then the order of step 2 -- i.e. the lower flat index into [A, C]):
//   4. class-wise greedy NMS at IoU > 0.5 (torchvision's IoU, areas (x2-x1)*(y2-y1), no +1): a
//      candidate is dropped when its IoU with an already kept candidate of the same class exceeds
//      the threshold;
//   5. keep the first 300, in that order (descending score).
// The arithmetic is kernels/cpu/detection_math.h, shared with the CUDA twin (same bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/detection_math.h"

namespace mlperf_trt::kernels {

struct RetinaNetParams {
  float score_threshold = 0.05f;  // SPEC §2.2
  size_t topk_per_level = 1000;   // SPEC §2.2
  double iou_threshold = 0.5;     // SPEC §2.2
  size_t max_detections = 300;    // SPEC §2.2
  float image_size = 800.0f;      // boxes clipped to [0, image_size] (SPEC §2.2: 800x800 input)
};

struct Detection {
  float x1, y1, x2, y2;  // pixels of the image_size x image_size input
  float score;
  int32_t label;  // class id 0..C-1
};

// Reusable buffers of one call; one per worker (never shared between threads at once).
struct RetinaNetScratch {
  std::vector<uint64_t> keys;             // one level's candidate keys
  std::vector<detection::Box> boxes;      // decoded candidates of all levels, level order
  std::vector<float> scores;
  std::vector<int32_t> labels;
  std::vector<uint64_t> order;            // candidates sorted by (score, position)
  std::vector<std::vector<uint32_t>> kept_by_label;
};

// Checks the shapes (kKernel error): level sizes sum to `anchors`, every level's A_l * C fits
// 32 bits, at least one class.
void check_retinanet_shapes(size_t anchors, size_t classes, const std::vector<size_t>& level_sizes,
                            const RetinaNetParams& params);

// cls_logits [anchors, classes], bbox_regression [anchors, 4], anchor_boxes [anchors, 4]
// (x1, y1, x2, y2), all float32 row-major. Writes at most params.max_detections detections to
// `out` in descending score order and returns how many.
size_t retinanet_decode_nms(const float* cls_logits, const float* bbox_regression,
                            const float* anchor_boxes, size_t anchors, size_t classes,
                            const std::vector<size_t>& level_sizes, const RetinaNetParams& params,
                            RetinaNetScratch& scratch, Detection* out);

}  // namespace mlperf_trt::kernels
