// Bindings of the RetinaNet and 3D-UNet data path (SPEC §2.2, §2.3): the decode/NMS and
// sliding-window kernels on `_C.kernels` (numpy in and out, GIL released while they compute) and
// the detection post-processors on `_C.harness`.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/check.h"
#include "harness/detection_postprocessor.h"
#include "kernels/cpu/retinanet.h"
#include "kernels/cpu/sliding_window.h"

namespace py = pybind11;

namespace mlperf_trt::bindings {
namespace {

py::tuple detections_tuple(const kernels::Detection* dets, size_t count) {
  const auto n = static_cast<py::ssize_t>(count);
  py::array_t<float> boxes({n, py::ssize_t{4}});
  py::array_t<float> scores(n);
  py::array_t<int64_t> labels(n);
  float* b = boxes.mutable_data();
  float* s = scores.mutable_data();
  int64_t* l = labels.mutable_data();
  for (size_t d = 0; d < count; ++d) {
    b[d * 4] = dets[d].x1;
    b[d * 4 + 1] = dets[d].y1;
    b[d * 4 + 2] = dets[d].x2;
    b[d * 4 + 3] = dets[d].y2;
    s[d] = dets[d].score;
    l[d] = dets[d].label;
  }
  return py::make_tuple(boxes, scores, labels);
}

// --- RetinaNet post-processing and the 3D-UNet sliding window (SPEC §2.2, §2.3) --------------

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  return std::string(py::str(py::tuple(py::cast(shape))));
}

// A float32 C-contiguous array of exactly `shape`.
template <typename T>
py::array_t<T, py::array::c_style> exact_array(const py::handle& obj, const char* what,
                                               const std::vector<py::ssize_t>& shape,
                                               bool writeable) {
  auto arr = require_array<T>(obj, what);
  MLPERF_CHECK_KERNEL(shape_of(arr) == shape, what << " must have shape " << shape_text(shape)
                                                   << ", got " << shape_text(shape_of(arr)));
  MLPERF_CHECK_KERNEL(!writeable || arr.writeable(), what << " is read-only");
  return arr;
}

// The output array: `out` checked when given, else a new one.
template <typename T>
py::array_t<T, py::array::c_style> output_array(const py::object& out, const char* what,
                                                const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) return py::array_t<T, py::array::c_style>(shape);
  return exact_array<T>(out, what, shape, true);
}

// A volume as [1, D, H, W] (the preprocessed KiTS19 layout) or [D, H, W].
kernels::VolumeShape volume_shape(const py::array& arr, const char* what) {
  const bool four = arr.ndim() == 4 && arr.shape(0) == 1;
  MLPERF_CHECK_KERNEL(arr.ndim() == 3 || four, what << " must be [1, D, H, W] or [D, H, W], got "
                                                    << shape_text(shape_of(arr)));
  const py::ssize_t o = four ? 1 : 0;
  return kernels::VolumeShape{static_cast<size_t>(arr.shape(o)),
                              static_cast<size_t>(arr.shape(o + 1)),
                              static_cast<size_t>(arr.shape(o + 2))};
}

py::array_t<int64_t, py::array::c_style> origins_array(const py::handle& obj) {
  auto origins = require_array<int64_t>(obj, "origins");
  MLPERF_CHECK_KERNEL(origins.ndim() == 2 && origins.shape(1) == 3,
                      "origins must be int64 [k, 3] (z, y, x), got "
                          << shape_text(shape_of(origins)));
  return origins;
}

void bind_detection_kernels(py::module_& k) {
  k.def(
      "retinanet_decode_nms",
      [](py::object cls_obj, py::object box_obj, py::object anchors_obj,
         std::vector<size_t> level_sizes, float score_threshold, size_t topk_per_level,
         double iou_threshold, size_t max_detections, float image_size) {
        auto cls = require_array<float>(cls_obj, "cls_logits");
        MLPERF_CHECK_KERNEL(cls.ndim() == 2, "cls_logits must be float32 [A, C], got "
                                                 << shape_text(shape_of(cls)));
        const auto a = static_cast<py::ssize_t>(cls.shape(0));
        auto box = exact_array<float>(box_obj, "bbox_regression", {a, 4}, false);
        auto anchors = exact_array<float>(anchors_obj, "anchors", {a, 4}, false);
        kernels::RetinaNetParams params;
        params.score_threshold = score_threshold;
        params.topk_per_level = topk_per_level;
        params.iou_threshold = iou_threshold;
        params.max_detections = max_detections;
        params.image_size = image_size;
        const float* c = cls.data();
        const float* b = box.data();
        const float* an = anchors.data();
        const auto classes = static_cast<size_t>(cls.shape(1));
        std::vector<kernels::Detection> dets(max_detections);
        size_t count;
        {
          py::gil_scoped_release release;
          kernels::RetinaNetScratch scratch;
          count = kernels::retinanet_decode_nms(c, b, an, static_cast<size_t>(a), classes,
                                                level_sizes, params, scratch, dets.data());
        }
        return detections_tuple(dets.data(), count);
      },
      py::arg("cls_logits"), py::arg("bbox_regression"), py::arg("anchors"),
      py::arg("level_sizes"), py::arg("score_threshold") = 0.05f,
      py::arg("topk_per_level") = size_t{1000}, py::arg("iou_threshold") = 0.5,
      py::arg("max_detections") = size_t{300}, py::arg("image_size") = 800.0f,
      "RetinaNet post-processing of one image (SPEC §2.2): cls_logits float32 [A, C], "
      "bbox_regression and anchors float32 [A, 4], level_sizes the anchors per FPN level -> "
      "(boxes float32 [K, 4] x1 y1 x2 y2 pixels, scores float32 [K], labels int64 [K]) in "
      "descending score order, K <= max_detections.");

  k.def(
      "gaussian_importance",
      [](size_t roi, double sigma_scale, size_t threads) {
        std::vector<float> patch;
        {
          py::gil_scoped_release release;
          patch = kernels::gaussian_importance(roi, sigma_scale, threads);
        }
        const auto r = static_cast<py::ssize_t>(roi);
        py::array_t<float> out({r, r, r});
        std::copy(patch.begin(), patch.end(), out.mutable_data());
        return out;
      },
      py::arg("roi") = size_t{128}, py::arg("sigma_scale") = 0.125, py::arg("threads") = 0,
      "The sliding window's importance patch (SPEC §2.3): float32 [roi, roi, roi], the cube "
      "root of a 3-D gaussian (std = sigma_scale * roi), maximum 1.");
  k.def(
      "window_origins",
      [](size_t depth, size_t height, size_t width, size_t roi, size_t stride) {
        const auto o = kernels::window_origins(kernels::VolumeShape{depth, height, width}, roi,
                                               stride);
        py::array_t<int64_t> out({static_cast<py::ssize_t>(o.size() / 3), py::ssize_t{3}});
        std::copy(o.begin(), o.end(), out.mutable_data());
        return out;
      },
      py::arg("depth"), py::arg("height"), py::arg("width"), py::arg("roi") = size_t{128},
      py::arg("stride") = size_t{64},
      "Window origins int64 [k, 3] (z, y, x), z outermost: 0, stride, ..., stride * ((dim - "
      "roi) // stride) per axis (SPEC §2.3). DataError for a dimension below roi.");
  k.def(
      "extract_windows",
      [](py::object volume_obj, py::object origins_obj, py::object out_obj, size_t roi,
         size_t threads) {
        auto volume = require_array<float>(volume_obj, "volume");
        const auto shape = volume_shape(volume, "volume");
        auto origins = origins_array(origins_obj);
        const auto k = static_cast<size_t>(origins.shape(0));
        const auto r = static_cast<py::ssize_t>(roi);
        auto out = output_array<float>(out_obj, "out",
                                       {static_cast<py::ssize_t>(k), py::ssize_t{1}, r, r, r});
        const float* src = volume.data();
        const int64_t* o = origins.data();
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::extract_windows(src, shape, o, k, roi, dst, threads);
        }
        return out;
      },
      py::arg("volume"), py::arg("origins"), py::arg("out") = py::none(),
      py::arg("roi") = size_t{128}, py::arg("threads") = 0,
      "Windows of a float32 volume [1, D, H, W] (or [D, H, W]) at origins int64 [k, 3] -> "
      "float32 [k, 1, roi, roi, roi], written into `out` when given (a pooled batch buffer). "
      "DataError for a window outside the volume.");
  k.def(
      "accumulate_windows",
      [](py::object logits_obj, py::object origins_obj, py::object patch_obj,
         py::object result_obj, py::object norm_obj, size_t threads) {
        auto logits = require_array<float>(logits_obj, "logits");
        auto origins = origins_array(origins_obj);
        MLPERF_CHECK_KERNEL(logits.ndim() == 5 && logits.shape(0) == origins.shape(0) &&
                                logits.shape(2) == logits.shape(3) &&
                                logits.shape(3) == logits.shape(4),
                            "logits must be float32 [k, channels, roi, roi, roi] with k = "
                                << origins.shape(0) << " windows, got "
                                << shape_text(shape_of(logits)));
        const auto k = static_cast<size_t>(origins.shape(0));
        const auto channels = logits.shape(1);
        const auto r = logits.shape(2);
        auto patch = require_array<float>(patch_obj, "patch");
        MLPERF_CHECK_KERNEL(patch.size() == r * r * r,
                            "patch must hold roi^3 = " << r * r * r << " float32, got "
                                                       << patch.size());
        auto norm = require_array<float>(norm_obj, "norm");
        MLPERF_CHECK_KERNEL(norm.writeable(), "norm is read-only");
        const auto shape = volume_shape(norm, "norm");
        const std::vector<py::ssize_t> result_shape{
            channels, static_cast<py::ssize_t>(shape.depth),
            static_cast<py::ssize_t>(shape.height), static_cast<py::ssize_t>(shape.width)};
        auto result = exact_array<float>(result_obj, "result", result_shape, true);
        const float* l = logits.data();
        const int64_t* o = origins.data();
        const float* p = patch.data();
        float* res = result.mutable_data();
        float* nrm = norm.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::accumulate_windows(l, static_cast<size_t>(channels), o, k,
                                      static_cast<size_t>(r), p, shape, res, nrm, threads);
        }
      },
      py::arg("logits"), py::arg("origins"), py::arg("patch"), py::arg("result"),
      py::arg("norm"), py::arg("threads") = 0,
      "In place, windows in order: result[:, win] += logits[w] * patch; norm[win] += patch "
      "(SPEC §2.3). result float32 [C, D, H, W], norm float32 [D, H, W] (or [1, D, H, W]).");
  k.def(
      "finalize_argmax",
      [](py::object result_obj, py::object norm_obj, py::object out_obj, size_t threads) {
        auto norm = require_array<float>(norm_obj, "norm");
        const auto shape = volume_shape(norm, "norm");
        auto result = require_array<float>(result_obj, "result");
        const std::vector<py::ssize_t> vol{static_cast<py::ssize_t>(shape.depth),
                                           static_cast<py::ssize_t>(shape.height),
                                           static_cast<py::ssize_t>(shape.width)};
        MLPERF_CHECK_KERNEL(result.ndim() == 4 && std::vector<py::ssize_t>(
                                                      result.shape() + 1, result.shape() + 4) == vol,
                            "result must be float32 [C, " << shape.depth << ", " << shape.height
                                                         << ", " << shape.width << "], got "
                                                         << shape_text(shape_of(result)));
        const auto channels = static_cast<size_t>(result.shape(0));
        auto out = output_array<uint8_t>(out_obj, "out", vol);
        const float* res = result.data();
        const float* nrm = norm.data();
        uint8_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::finalize_argmax(res, nrm, channels, shape, dst, threads);
        }
        return out;
      },
      py::arg("result"), py::arg("norm"), py::arg("out") = py::none(), py::arg("threads") = 0,
      "argmax over channels of result / norm as uint8 [D, H, W] (first maximum wins).");
}

void bind_detection_postprocessors(py::module_& h) {
  py::class_<RetinaNetPostprocessor, Postprocessor, std::shared_ptr<RetinaNetPostprocessor>>(
      h, "RetinaNetPostprocessor",
      "Raw RetinaNet head outputs [N, A, C] and [N, A, 4] -> per sample 7 float32 per detection "
      "[qsl_idx, y1/size, x1/size, y2/size, x2/size, score, label] (SPEC §2.2).")
      .def(py::init([](py::object anchors_obj, std::vector<size_t> level_sizes, size_t cls_output,
                       size_t box_output, float image_size) {
             auto anchors = require_array<float>(anchors_obj, "anchors");
             MLPERF_CHECK_CONFIG(anchors.ndim() == 2 && anchors.shape(1) == 4,
                                 "RetinaNetPostprocessor: anchors must be float32 [A, 4], got "
                                     << shape_text(shape_of(anchors)));
             std::vector<float> a(anchors.data(), anchors.data() + anchors.size());
             return std::make_shared<RetinaNetPostprocessor>(cls_output, box_output, std::move(a),
                                                             std::move(level_sizes), image_size);
           }),
           py::kw_only(), py::arg("anchors"), py::arg("level_sizes"), py::arg("cls_output") = 0,
           py::arg("box_output") = 1, py::arg("image_size") = 800.0f)
      .def_property_readonly("anchors", &RetinaNetPostprocessor::anchors)
      .def_property_readonly("level_sizes", &RetinaNetPostprocessor::level_sizes);
  py::class_<DetectionsPostprocessor, Postprocessor, std::shared_ptr<DetectionsPostprocessor>>(
      h, "DetectionsPostprocessor",
      "The official ONNX's boxes [K, 4], labels int64 [K], scores [K] (NMS inside, batch 1) -> "
      "the same payload, stopping at the first score below 0.05 (SPEC §2.2).")
      .def(py::init<size_t, size_t, size_t, float>(), py::kw_only(), py::arg("boxes") = 0,
           py::arg("labels") = 1, py::arg("scores") = 2, py::arg("image_size") = 800.0f);
}

}  // namespace

void bind_detection(py::module_& m) {
  // bind_kernels and bind_harness (called first, module.cpp) made the two submodules and the
  // Postprocessor base class.
  auto k = m.attr("kernels").cast<py::module_>();
  bind_detection_kernels(k);
  auto h = m.attr("harness").cast<py::module_>();
  bind_detection_postprocessors(h);
}

}  // namespace mlperf_trt::bindings
