#include "kernels/cpu/retinanet.h"

#include <algorithm>
#include <functional>

#include "common/check.h"

namespace mlperf_trt::kernels {

namespace {

// sigmoid(x) > 0.05 needs x > log(0.05 / 0.95) = -2.944; -2.95 (sigmoid 0.0498) only skips the
// sigmoid where it cannot pass. NaN logits fail this test, as sigmoid(NaN) > 0.05 fails in torch.
constexpr float kLogitPrefilter = -2.95f;
constexpr size_t kScanBlock = 64;

}  // namespace

void check_retinanet_shapes(size_t anchors, size_t classes, const std::vector<size_t>& level_sizes,
                            const RetinaNetParams& params) {
  MLPERF_CHECK_KERNEL(classes > 0, "retinanet_decode_nms: cls_logits has no class column");
  MLPERF_CHECK_KERNEL(!level_sizes.empty(),
                      "retinanet_decode_nms: level_sizes is empty; pass the anchor count of each "
                      "FPN level (5 levels for RetinaNet, SPEC §2.2)");
  size_t total = 0;
  for (size_t l = 0; l < level_sizes.size(); ++l) {
    MLPERF_CHECK_KERNEL(level_sizes[l] * classes < (size_t{1} << 32),
                        "retinanet_decode_nms: level " << l << " has " << level_sizes[l]
                                                       << " anchors x " << classes
                                                       << " classes, more than 2^32 scores");
    total += level_sizes[l];
  }
  MLPERF_CHECK_KERNEL(total == anchors, "retinanet_decode_nms: level_sizes sum to "
                                            << total << " anchors, the outputs have " << anchors
                                            << " rows");
  MLPERF_CHECK_KERNEL(params.topk_per_level > 0 && params.max_detections > 0,
                      "retinanet_decode_nms: topk_per_level and max_detections must be > 0");
  MLPERF_CHECK_KERNEL(params.topk_per_level * level_sizes.size() < (size_t{1} << 31),
                      "retinanet_decode_nms: topk_per_level " << params.topk_per_level
                                                              << " is too large");
  MLPERF_CHECK_KERNEL(params.image_size > 0.0f, "retinanet_decode_nms: image_size must be > 0");
}

size_t retinanet_decode_nms(const float* cls_logits, const float* bbox_regression,
                            const float* anchor_boxes, size_t anchors, size_t classes,
                            const std::vector<size_t>& level_sizes, const RetinaNetParams& params,
                            RetinaNetScratch& s, Detection* out) {
  check_retinanet_shapes(anchors, classes, level_sizes, params);
  s.boxes.clear();
  s.scores.clear();
  s.labels.clear();
  size_t offset = 0;  // first anchor of the level
  for (size_t level_anchors : level_sizes) {
    // 1. sigmoid and threshold.
    s.keys.clear();
    const float* logits = cls_logits + offset * classes;
    const size_t n = level_anchors * classes;
    // Almost every score of a real image is far below the threshold: test blocks of logits
    // with a branch-free (vectorised) compare first, and look at a block's elements only when
    // one of them passes the prefilter.
    for (size_t block = 0; block < n; block += kScanBlock) {
      const size_t end = std::min(n, block + kScanBlock);
      int any = 0;
      for (size_t i = block; i < end; ++i) any |= logits[i] > kLogitPrefilter;
      if (!any) continue;
      for (size_t i = block; i < end; ++i) {
        const float x = logits[i];
        if (!(x > kLogitPrefilter)) continue;
        const float score = detection::sigmoid_score(x);
        if (score > params.score_threshold) {
          s.keys.push_back(detection::candidate_key(score, static_cast<uint32_t>(i)));
        }
      }
    }
    // 2. the best topk, best first (keys are unique: the index is part of them).
    const size_t keep = std::min(params.topk_per_level, s.keys.size());
    if (keep < s.keys.size()) {
      std::nth_element(s.keys.begin(), s.keys.begin() + keep, s.keys.end(),
                       std::greater<uint64_t>());
    }
    std::sort(s.keys.begin(), s.keys.begin() + keep, std::greater<uint64_t>());
    // 3. decode and clip.
    for (size_t k = 0; k < keep; ++k) {
      const uint32_t index = detection::key_index(s.keys[k]);
      const size_t anchor = offset + index / classes;
      s.boxes.push_back(detection::decode_box(anchor_boxes + anchor * 4,
                                              bbox_regression + anchor * 4, params.image_size));
      s.scores.push_back(detection::sigmoid_score(logits[index]));
      s.labels.push_back(static_cast<int32_t>(index % classes));
    }
    offset += level_anchors;
  }

  // Order of all candidates: score descending, then position (level order, then step 2's).
  const size_t total = s.scores.size();
  s.order.resize(total);
  for (size_t p = 0; p < total; ++p) {
    s.order[p] = detection::candidate_key(s.scores[p], static_cast<uint32_t>(p));
  }
  std::sort(s.order.begin(), s.order.end(), std::greater<uint64_t>());

  // 4-5. class-wise greedy NMS; a candidate is compared with the kept ones of its class only.
  if (s.kept_by_label.size() < classes) s.kept_by_label.resize(classes);
  for (size_t c = 0; c < classes; ++c) s.kept_by_label[c].clear();
  size_t kept = 0;
  for (size_t r = 0; r < total && kept < params.max_detections; ++r) {
    const uint32_t p = detection::key_index(s.order[r]);
    const detection::Box& box = s.boxes[p];
    std::vector<uint32_t>& same_class = s.kept_by_label[static_cast<size_t>(s.labels[p])];
    bool suppressed = false;
    for (uint32_t q : same_class) {
      if (detection::iou_above(s.boxes[q], box, params.iou_threshold)) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    same_class.push_back(p);
    out[kept++] = Detection{box.x1, box.y1, box.x2, box.y2, s.scores[p], s.labels[p]};
  }
  return kept;
}

}  // namespace mlperf_trt::kernels
