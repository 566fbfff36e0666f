#include "harness/detection_postprocessor.h"

#include <cstring>
#include <utility>

#include "common/check.h"

namespace mlperf_trt {

namespace {

const TensorView& output_at(const std::vector<TensorView>& outputs, size_t index,
                            const char* who) {
  MLPERF_CHECK_BACKEND(index < outputs.size(), "the engine returned " << outputs.size()
                                                   << " outputs; the " << who
                                                   << " post-processor reads output " << index);
  return outputs[index];
}

std::string shape_text(const TensorView& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

}  // namespace

void append_detection_payload(uint64_t qsl_index, const kernels::Detection* detections,
                              size_t count, float image_size, Responses& out) {
  uint8_t* dst = out.append(count * 7 * sizeof(float));
  const auto index = static_cast<float>(qsl_index);
  for (size_t d = 0; d < count; ++d) {
    const kernels::Detection& det = detections[d];
    // A float32 division, as the reference's `box[1] / self.height` on float32 values.
    const float record[7] = {index,
                             det.y1 / image_size,
                             det.x1 / image_size,
                             det.y2 / image_size,
                             det.x2 / image_size,
                             det.score,
                             static_cast<float>(det.label)};
    std::memcpy(dst + d * sizeof record, record, sizeof record);
  }
}

RetinaNetPostprocessor::RetinaNetPostprocessor(size_t cls_output, size_t box_output,
                                               std::vector<float> anchors,
                                               std::vector<size_t> level_sizes, float image_size)
    : cls_output_(cls_output),
      box_output_(box_output),
      anchors_(std::move(anchors)),
      level_sizes_(std::move(level_sizes)) {
  MLPERF_CHECK_CONFIG(anchors_.size() % 4 == 0 && !anchors_.empty(),
                      "RetinaNetPostprocessor: anchors must be float32 [A, 4], got "
                          << anchors_.size() << " values");
  MLPERF_CHECK_CONFIG(image_size > 0.0f,
                      "RetinaNetPostprocessor: image_size must be > 0, got " << image_size);
  params_.image_size = image_size;
  size_t total = 0;
  for (size_t s : level_sizes_) total += s;
  MLPERF_CHECK_CONFIG(total == anchors_.size() / 4,
                      "RetinaNetPostprocessor: level_sizes sum to "
                          << total << " anchors, the anchors array has " << anchors_.size() / 4
                          << " rows");
}

std::unique_ptr<RetinaNetPostprocessor::Scratch> RetinaNetPostprocessor::take_scratch() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.empty()) return std::make_unique<Scratch>();
  std::unique_ptr<Scratch> s = std::move(free_.back());
  free_.pop_back();
  return s;
}

void RetinaNetPostprocessor::give_back(std::unique_ptr<Scratch> scratch) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(scratch));
}

void RetinaNetPostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                     Responses& out) {
  const size_t n = batch.size();
  const size_t a = anchors();
  const TensorView& cls = output_at(outputs, cls_output_, "RetinaNet");
  const TensorView& box = output_at(outputs, box_output_, "RetinaNet");
  MLPERF_CHECK_BACKEND(cls.dtype == DType::kFloat32 && cls.shape.size() == 3 &&
                           static_cast<size_t>(cls.shape[0]) == n &&
                           static_cast<size_t>(cls.shape[1]) == a && cls.shape[2] > 0,
                       "RetinaNet post-processor: class output " << cls_output_ << " is "
                           << dtype_name(cls.dtype) << " " << shape_text(cls)
                           << "; expected float32 [" << n << ", " << a << ", C]");
  MLPERF_CHECK_BACKEND(box.dtype == DType::kFloat32 && box.shape.size() == 3 &&
                           static_cast<size_t>(box.shape[0]) == n &&
                           static_cast<size_t>(box.shape[1]) == a && box.shape[2] == 4,
                       "RetinaNet post-processor: box output " << box_output_ << " is "
                           << dtype_name(box.dtype) << " " << shape_text(box)
                           << "; expected float32 [" << n << ", " << a << ", 4]");
  const auto classes = static_cast<size_t>(cls.shape[2]);
  const auto* cls_data = static_cast<const float*>(cls.data);
  const auto* box_data = static_cast<const float*>(box.data);

  std::unique_ptr<Scratch> scratch = take_scratch();
  struct Return {
    RetinaNetPostprocessor* self;
    std::unique_ptr<Scratch>& scratch;
    ~Return() { self->give_back(std::move(scratch)); }
  } give_back_on_exit{this, scratch};

  scratch->detections.resize(params_.max_detections);
  out.reset(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t count = kernels::retinanet_decode_nms(
        cls_data + i * a * classes, box_data + i * a * 4, anchors_.data(), a, classes,
        level_sizes_, params_, scratch->kernel, scratch->detections.data());
    append_detection_payload(batch.indices[i], scratch->detections.data(), count,
                             params_.image_size, out);
  }
}

DetectionsPostprocessor::DetectionsPostprocessor(size_t boxes_output, size_t labels_output,
                                                 size_t scores_output, float image_size)
    : boxes_output_(boxes_output),
      labels_output_(labels_output),
      scores_output_(scores_output),
      image_size_(image_size) {
  MLPERF_CHECK_CONFIG(image_size > 0.0f,
                      "DetectionsPostprocessor: image_size must be > 0, got " << image_size);
}

void DetectionsPostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                      Responses& out) {
  const size_t n = batch.size();
  MLPERF_CHECK_BACKEND(n == 1, "detections post-processor: the official RetinaNet ONNX runs "
                               "batch 1 (SPEC §2.2), got a batch of "
                                   << n << "; set the batch size to 1");
  const TensorView& boxes = output_at(outputs, boxes_output_, "detections");
  const TensorView& labels = output_at(outputs, labels_output_, "detections");
  const TensorView& scores = output_at(outputs, scores_output_, "detections");
  // Drop a leading batch axis of 1.
  const auto rank = [](const TensorView& t) {
    return t.shape.size() - (!t.shape.empty() && t.shape[0] == 1 ? 1 : 0);
  };
  const size_t k = scores.numel();
  MLPERF_CHECK_BACKEND(scores.dtype == DType::kFloat32 && rank(scores) <= 1,
                       "detections post-processor: scores output " << scores_output_ << " is "
                           << dtype_name(scores.dtype) << " " << shape_text(scores)
                           << "; expected float32 [K]");
  MLPERF_CHECK_BACKEND(boxes.dtype == DType::kFloat32 && boxes.numel() == 4 * k &&
                           !boxes.shape.empty() && boxes.shape.back() == 4,
                       "detections post-processor: boxes output " << boxes_output_ << " is "
                           << dtype_name(boxes.dtype) << " " << shape_text(boxes)
                           << "; expected float32 [" << k << ", 4]");
  MLPERF_CHECK_BACKEND((labels.dtype == DType::kInt64 || labels.dtype == DType::kInt32) &&
                           labels.numel() == k,
                       "detections post-processor: labels output " << labels_output_ << " is "
                           << dtype_name(labels.dtype) << " " << shape_text(labels)
                           << "; expected int64 [" << k << "]");
  const auto* s = static_cast<const float*>(scores.data);
  const auto* b = static_cast<const float*>(boxes.data);
  std::vector<kernels::Detection> detections;
  detections.reserve(k);
  for (size_t d = 0; d < k; ++d) {
    if (s[d] < 0.05f) break;  // SPEC §2.2: stop at the first score below 0.05
    const int64_t label = labels.dtype == DType::kInt64
                              ? static_cast<const int64_t*>(labels.data)[d]
                              : static_cast<const int32_t*>(labels.data)[d];
    detections.push_back(kernels::Detection{b[d * 4], b[d * 4 + 1], b[d * 4 + 2], b[d * 4 + 3],
                                            s[d], static_cast<int32_t>(label)});
  }
  out.reset(n);
  append_detection_payload(batch.indices[0], detections.data(), detections.size(), image_size_,
                           out);
}

}  // namespace mlperf_trt
