// mlperf_trt._cuda: the CUDA twins of kernels/cpu, linked with the static CUDA runtime so that
// importing this module never needs a GPU or a driver; calls that need one raise BackendError.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bind_pool.h"
#include "bindings/errors.h"
#include "build_config.h"
#include "common/check.h"
#include "kernels/cpu/embedding_bag.h"
#include "kernels/cpu/gather.h"
#include "kernels/cpu/retinanet.h"
#include "kernels/cpu/sliding_window.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/pinned_pool.h"

namespace py = pybind11;
using namespace mlperf_trt;

namespace {

// Device buffer owned for the duration of one host-array call.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_) MLPERF_CUDA_CHECK(cudaMalloc(&ptr_, n_ * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return static_cast<T*>(ptr_); }
  void upload(const T* src) {
    if (n_) MLPERF_CUDA_CHECK(cudaMemcpy(ptr_, src, n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* dst) const {
    if (n_) MLPERF_CUDA_CHECK(cudaMemcpy(dst, ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  void* ptr_ = nullptr;
  size_t n_;
};

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" status
    return 0;
  }
  return n;
}

// Copies `in` to the device, runs launch(d_in, d_out) on the default stream, copies `out` back;
// without the GIL. The host-array entry points below are all this shape.
template <typename In, typename Out, typename Launch>
void on_device(const py::array_t<In, py::array::c_style>& in, py::array_t<Out>& out,
               Launch launch) {
  const In* src = in.data();
  Out* dst = out.mutable_data();
  const auto in_n = static_cast<size_t>(in.size());
  const auto out_n = static_cast<size_t>(out.size());
  py::gil_scoped_release release;
  DeviceBuffer<In> d_in(in_n);
  DeviceBuffer<Out> d_out(out_n);
  d_in.upload(src);
  launch(d_in.get(), d_out.get());
  d_out.download(dst);
}

std::vector<py::ssize_t> chw_shape(size_t out_h, size_t out_w) {
  return {3, static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w)};
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// Device memory owned by a Python object: tests and benchmarks hand its address to the *_ptr
// entry points, as the TensorRT executor hands its bindings.
class DeviceMemory {
 public:
  explicit DeviceMemory(size_t nbytes) : nbytes_(nbytes) {
    if (nbytes_) MLPERF_CUDA_CHECK(cudaMalloc(&ptr_, nbytes_));
  }
  ~DeviceMemory() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  uintptr_t ptr() const { return reinterpret_cast<uintptr_t>(ptr_); }
  size_t nbytes() const { return nbytes_; }
  uint8_t* at(size_t offset, size_t bytes, const char* what) const {
    MLPERF_CHECK_KERNEL(offset <= nbytes_ && bytes <= nbytes_ - offset,
                        what << " of " << bytes << " bytes at offset " << offset
                             << " does not fit a device buffer of " << nbytes_ << " bytes");
    return static_cast<uint8_t*>(ptr_) + offset;
  }

 private:
  void* ptr_ = nullptr;
  size_t nbytes_;
};

py::array c_array(const py::handle& obj, const char* what, bool writeable) {
  MLPERF_CHECK_KERNEL(py::isinstance<py::array>(obj), what << " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  MLPERF_CHECK_KERNEL(arr.flags() & py::array::c_style,
                      what << " must be C-contiguous; use numpy.ascontiguousarray");
  MLPERF_CHECK_KERNEL(!writeable || arr.writeable(), what << " is read-only");
  return arr;
}

// Bytes of one packed row of `arr` and the bytes between rows (as in _C.kernels.gather_rows).
std::pair<size_t, size_t> row_layout(const py::array& arr, const char* what) {
  MLPERF_CHECK_KERNEL(arr.ndim() >= 1, what << " must have at least one axis (the rows)");
  MLPERF_CHECK_KERNEL(!py::bool_(arr.dtype().attr("hasobject")),
                      what << " holds Python objects; only plain data can be gathered");
  auto expected = static_cast<py::ssize_t>(arr.itemsize());
  for (py::ssize_t k = arr.ndim() - 1; k >= 1; --k) {
    MLPERF_CHECK_KERNEL(arr.shape(k) == 1 || arr.size() == 0 || arr.strides(k) == expected,
                        what << " rows are not packed; use numpy.ascontiguousarray");
    expected *= arr.shape(k);
  }
  const auto row_bytes = static_cast<size_t>(expected);
  if (arr.shape(0) <= 1 || arr.size() == 0) return {row_bytes, row_bytes};
  MLPERF_CHECK_KERNEL(arr.strides(0) >= expected, what << " row stride " << arr.strides(0)
                                                       << " is below the row size " << row_bytes
                                                       << "; use numpy.ascontiguousarray");
  return {row_bytes, static_cast<size_t>(arr.strides(0))};
}

// Bytes spanned by `rows` rows of `row_bytes`, `stride` bytes apart.
size_t span_bytes(size_t rows, size_t stride, size_t row_bytes) {
  return rows ? (rows - 1) * stride + row_bytes : 0;
}

// A host gather call: src (any dtype, strided rows allowed), checked int64 indices, the output
// array of shape (n,) + src.shape[1:].
struct GatherCall {
  py::array src;
  py::array_t<int64_t, py::array::c_style> indices;
  size_t src_rows, row_bytes, src_stride, n;
  py::array out;
};

GatherCall gather_call(const py::handle& src_obj, const py::handle& indices_obj) {
  MLPERF_CHECK_KERNEL(py::isinstance<py::array>(src_obj), "gather_rows: src must be a numpy array");
  GatherCall c;
  c.src = py::reinterpret_borrow<py::array>(src_obj);
  std::tie(c.row_bytes, c.src_stride) = row_layout(c.src, "gather_rows: src");
  c.src_rows = static_cast<size_t>(c.src.shape(0));
  c.indices = bindings::require_array<int64_t>(indices_obj, "gather_rows: indices");
  MLPERF_CHECK_KERNEL(c.indices.ndim() == 1, "gather_rows: indices must be 1-D int64");
  c.n = static_cast<size_t>(c.indices.shape(0));
  kernels::coalesce_rows(c.indices.data(), c.n, c.src_rows);  // the host checks the indices
  auto shape = shape_of(c.src);
  shape[0] = static_cast<py::ssize_t>(c.n);
  c.out = py::array(c.src.dtype(), shape);
  return c;
}

// --- RetinaNet and sliding-window helpers (SPEC §2.2, §2.3) ---------------------------------
kernels::RetinaNetParams retinanet_params(float score_threshold, size_t topk_per_level,
                                          double iou_threshold, size_t max_detections,
                                          float image_size) {
  kernels::RetinaNetParams p;
  p.score_threshold = score_threshold;
  p.topk_per_level = topk_per_level;
  p.iou_threshold = iou_threshold;
  p.max_detections = max_detections;
  p.image_size = image_size;
  return p;
}

py::tuple detections_tuple(const std::vector<kernels::Detection>& dets, size_t count) {
  const auto n = static_cast<py::ssize_t>(count);
  py::array_t<float> boxes({n, py::ssize_t{4}});
  py::array_t<float> scores(n);
  py::array_t<int64_t> labels(n);
  for (size_t d = 0; d < count; ++d) {
    const kernels::Detection& det = dets[d];
    const float box[4] = {det.x1, det.y1, det.x2, det.y2};
    std::copy(box, box + 4, boxes.mutable_data() + d * 4);
    scores.mutable_data()[d] = det.score;
    labels.mutable_data()[d] = det.label;
  }
  return py::make_tuple(boxes, scores, labels);
}

py::array_t<int64_t, py::array::c_style> origins_array(const py::handle& obj) {
  auto origins = bindings::require_array<int64_t>(obj, "origins");
  MLPERF_CHECK_KERNEL(origins.ndim() == 2 && origins.shape(1) == 3,
                      "origins must be int64 [k, 3] (z, y, x)");
  return origins;
}

// [1, D, H, W] or [D, H, W].
kernels::VolumeShape volume_shape(const py::array& arr, const char* what) {
  const bool four = arr.ndim() == 4 && arr.shape(0) == 1;
  MLPERF_CHECK_KERNEL(arr.ndim() == 3 || four, what << " must be [1, D, H, W] or [D, H, W]");
  const py::ssize_t o = four ? 1 : 0;
  return kernels::VolumeShape{static_cast<size_t>(arr.shape(o)),
                              static_cast<size_t>(arr.shape(o + 1)),
                              static_cast<size_t>(arr.shape(o + 2))};
}

void bind_detection(py::module_& m) {
  m.def(
      "retinanet_workspace_bytes",
      [](size_t anchors, size_t classes, std::vector<size_t> level_sizes, size_t topk_per_level,
         size_t max_detections) {
        return kernels::cuda::retinanet_workspace_bytes(
            anchors, classes, level_sizes,
            retinanet_params(0.05f, topk_per_level, 0.5, max_detections, 800.0f));
      },
      py::arg("anchors"), py::arg("classes"), py::arg("level_sizes"),
      py::arg("topk_per_level") = size_t{1000}, py::arg("max_detections") = size_t{300},
      "Device workspace bytes of retinanet_decode_nms_ptr for these shapes.");
  m.def(
      "retinanet_decode_nms",
      [](py::object cls_obj, py::object box_obj, py::object anchors_obj,
         std::vector<size_t> level_sizes, float score_threshold, size_t topk_per_level,
         double iou_threshold, size_t max_detections, float image_size) {
        auto cls = bindings::require_array<float>(cls_obj, "cls_logits");
        auto box = bindings::require_array<float>(box_obj, "bbox_regression");
        auto anchors = bindings::require_array<float>(anchors_obj, "anchors");
        MLPERF_CHECK_KERNEL(cls.ndim() == 2, "cls_logits must be float32 [A, C]");
        const auto a = static_cast<size_t>(cls.shape(0));
        const auto classes = static_cast<size_t>(cls.shape(1));
        MLPERF_CHECK_KERNEL(box.ndim() == 2 && static_cast<size_t>(box.shape(0)) == a &&
                                box.shape(1) == 4 && anchors.ndim() == 2 &&
                                static_cast<size_t>(anchors.shape(0)) == a &&
                                anchors.shape(1) == 4,
                            "bbox_regression and anchors must be float32 [" << a << ", 4]");
        const auto params = retinanet_params(score_threshold, topk_per_level, iou_threshold,
                                             max_detections, image_size);
        const float* c = cls.data();
        const float* b = box.data();
        const float* an = anchors.data();
        std::vector<kernels::Detection> dets(max_detections);
        size_t count;
        {
          py::gil_scoped_release release;
          const size_t ws_bytes =
              kernels::cuda::retinanet_workspace_bytes(a, classes, level_sizes, params);
          DeviceBuffer<float> d_cls(a * classes), d_box(a * 4), d_anchors(a * 4);
          DeviceBuffer<uint8_t> ws(ws_bytes);
          d_cls.upload(c);
          d_box.upload(b);
          d_anchors.upload(an);
          count = kernels::cuda::retinanet_decode_nms(d_cls.get(), d_box.get(), d_anchors.get(),
                                                      a, classes, level_sizes, params, ws.get(),
                                                      ws_bytes, dets.data(), nullptr);
        }
        return detections_tuple(dets, count);
      },
      py::arg("cls_logits"), py::arg("bbox_regression"), py::arg("anchors"),
      py::arg("level_sizes"), py::arg("score_threshold") = 0.05f,
      py::arg("topk_per_level") = size_t{1000}, py::arg("iou_threshold") = 0.5,
      py::arg("max_detections") = size_t{300}, py::arg("image_size") = 800.0f,
      "Twin of _C.kernels.retinanet_decode_nms on host arrays (copied to the device).");
  m.def(
      "retinanet_decode_nms_ptr",
      [](uintptr_t cls, uintptr_t box, uintptr_t anchors, size_t num_anchors, size_t classes,
         std::vector<size_t> level_sizes, uintptr_t workspace, size_t workspace_bytes,
         float score_threshold, size_t topk_per_level, double iou_threshold,
         size_t max_detections, float image_size, uintptr_t stream) {
        const auto params = retinanet_params(score_threshold, topk_per_level, iou_threshold,
                                             max_detections, image_size);
        std::vector<kernels::Detection> dets(max_detections);
        size_t count;
        {
          py::gil_scoped_release release;
          count = kernels::cuda::retinanet_decode_nms(
              reinterpret_cast<const float*>(cls), reinterpret_cast<const float*>(box),
              reinterpret_cast<const float*>(anchors), num_anchors, classes, level_sizes, params,
              reinterpret_cast<void*>(workspace), workspace_bytes, dets.data(),
              reinterpret_cast<void*>(stream));
        }
        return detections_tuple(dets, count);
      },
      py::arg("cls_logits"), py::arg("bbox_regression"), py::arg("anchors"),
      py::arg("num_anchors"), py::arg("classes"), py::arg("level_sizes"), py::arg("workspace"),
      py::arg("workspace_bytes"), py::arg("score_threshold") = 0.05f,
      py::arg("topk_per_level") = size_t{1000}, py::arg("iou_threshold") = 0.5,
      py::arg("max_detections") = size_t{300}, py::arg("image_size") = 800.0f,
      py::arg("stream") = 0,
      "One image's device outputs (cls [A, C], box [A, 4], anchors [A, 4]) -> host (boxes, "
      "scores, labels); synchronises `stream`.");

  m.def(
      "extract_windows_ptr",
      [](uintptr_t volume, size_t depth, size_t height, size_t width, py::object origins_obj,
         uintptr_t windows, size_t roi, uintptr_t stream) {
        auto origins = origins_array(origins_obj);
        const int64_t* o = origins.data();
        const auto k = static_cast<size_t>(origins.shape(0));
        py::gil_scoped_release release;
        kernels::cuda::extract_windows(reinterpret_cast<const float*>(volume),
                                       kernels::VolumeShape{depth, height, width}, o, k, roi,
                                       reinterpret_cast<float*>(windows),
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("volume"), py::arg("depth"), py::arg("height"), py::arg("width"),
      py::arg("origins"), py::arg("windows"), py::arg("roi") = size_t{128},
      py::arg("stream") = 0,
      "Device volume -> device windows [k, roi^3]; origins a host int64 [k, 3] array (checked).");
  m.def(
      "accumulate_windows_ptr",
      [](uintptr_t logits, size_t channels, py::object origins_obj, uintptr_t patch,
         uintptr_t result, uintptr_t norm, size_t depth, size_t height, size_t width, size_t roi,
         uintptr_t stream) {
        auto origins = origins_array(origins_obj);
        const int64_t* o = origins.data();
        const auto k = static_cast<size_t>(origins.shape(0));
        py::gil_scoped_release release;
        kernels::cuda::accumulate_windows(
            reinterpret_cast<const float*>(logits), channels, o, k, roi,
            reinterpret_cast<const float*>(patch), kernels::VolumeShape{depth, height, width},
            reinterpret_cast<float*>(result), reinterpret_cast<float*>(norm),
            reinterpret_cast<void*>(stream));
      },
      py::arg("logits"), py::arg("channels"), py::arg("origins"), py::arg("patch"),
      py::arg("result"), py::arg("norm"), py::arg("depth"), py::arg("height"), py::arg("width"),
      py::arg("roi") = size_t{128}, py::arg("stream") = 0,
      "result[:, win] += logits[w] * patch, norm[win] += patch on device memory, one launch per "
      "window in order (bit-identical to the CPU kernel).");
  m.def(
      "finalize_argmax_ptr",
      [](uintptr_t result, uintptr_t norm, size_t channels, size_t depth, size_t height,
         size_t width, uintptr_t out, uintptr_t stream) {
        py::gil_scoped_release release;
        kernels::cuda::finalize_argmax(reinterpret_cast<const float*>(result),
                                       reinterpret_cast<const float*>(norm), channels,
                                       kernels::VolumeShape{depth, height, width},
                                       reinterpret_cast<uint8_t*>(out),
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("result"), py::arg("norm"), py::arg("channels"), py::arg("depth"),
      py::arg("height"), py::arg("width"), py::arg("out"), py::arg("stream") = 0);

  // Host-array twins of _C.kernels (copied in and out; tests).
  m.def(
      "extract_windows",
      [](py::object volume_obj, py::object origins_obj, size_t roi) {
        auto volume = bindings::require_array<float>(volume_obj, "volume");
        const auto shape = volume_shape(volume, "volume");
        auto origins = origins_array(origins_obj);
        const auto k = static_cast<size_t>(origins.shape(0));
        const auto r = static_cast<py::ssize_t>(roi);
        py::array_t<float> out({static_cast<py::ssize_t>(k), py::ssize_t{1}, r, r, r});
        const int64_t* o = origins.data();
        on_device(volume, out, [&](const float* d_in, float* d_out) {
          kernels::cuda::extract_windows(d_in, shape, o, k, roi, d_out, nullptr);
        });
        return out;
      },
      py::arg("volume"), py::arg("origins"), py::arg("roi") = size_t{128});
  m.def(
      "accumulate_windows",
      [](py::object logits_obj, py::object origins_obj, py::object patch_obj,
         py::object result_obj, py::object norm_obj) {
        auto logits = bindings::require_array<float>(logits_obj, "logits");
        auto origins = origins_array(origins_obj);
        auto patch = bindings::require_array<float>(patch_obj, "patch");
        auto result = bindings::require_array<float>(result_obj, "result");
        auto norm = bindings::require_array<float>(norm_obj, "norm");
        MLPERF_CHECK_KERNEL(result.writeable() && norm.writeable(),
                            "result and norm are updated in place: pass writeable arrays");
        const auto shape = volume_shape(norm, "norm");
        MLPERF_CHECK_KERNEL(logits.ndim() == 5 && logits.shape(0) == origins.shape(0) &&
                                logits.shape(2) == logits.shape(3) &&
                                logits.shape(3) == logits.shape(4),
                            "logits must be float32 [k, channels, roi, roi, roi]");
        const auto channels = static_cast<size_t>(logits.shape(1));
        const auto roi = static_cast<size_t>(logits.shape(2));
        MLPERF_CHECK_KERNEL(static_cast<size_t>(patch.size()) == roi * roi * roi,
                            "patch must hold roi^3 float32");
        MLPERF_CHECK_KERNEL(static_cast<size_t>(result.size()) == channels * shape.voxels(),
                            "result must be float32 [channels, D, H, W]");
        const auto k = static_cast<size_t>(origins.shape(0));
        kernels::check_origins(origins.data(), k, shape, roi);
        const float* l = logits.data();
        const float* p = patch.data();
        const int64_t* o = origins.data();
        float* res = result.mutable_data();
        float* nrm = norm.mutable_data();
        py::gil_scoped_release release;
        DeviceBuffer<float> d_logits(static_cast<size_t>(logits.size()));
        DeviceBuffer<float> d_patch(roi * roi * roi);
        DeviceBuffer<float> d_result(channels * shape.voxels()), d_norm(shape.voxels());
        d_logits.upload(l);
        d_patch.upload(p);
        d_result.upload(res);
        d_norm.upload(nrm);
        kernels::cuda::accumulate_windows(d_logits.get(), channels, o, k, roi, d_patch.get(),
                                          shape, d_result.get(), d_norm.get(), nullptr);
        d_result.download(res);
        d_norm.download(nrm);
      },
      py::arg("logits"), py::arg("origins"), py::arg("patch"), py::arg("result"),
      py::arg("norm"), "In place on host arrays (copied to the device and back).");
  m.def(
      "finalize_argmax",
      [](py::object result_obj, py::object norm_obj) {
        auto result = bindings::require_array<float>(result_obj, "result");
        auto norm = bindings::require_array<float>(norm_obj, "norm");
        const auto shape = volume_shape(norm, "norm");
        MLPERF_CHECK_KERNEL(result.ndim() == 4 &&
                                static_cast<size_t>(result.size()) ==
                                    static_cast<size_t>(result.shape(0)) * shape.voxels(),
                            "result must be float32 [C, D, H, W]");
        const auto channels = static_cast<size_t>(result.shape(0));
        py::array_t<uint8_t> out({static_cast<py::ssize_t>(shape.depth),
                                  static_cast<py::ssize_t>(shape.height),
                                  static_cast<py::ssize_t>(shape.width)});
        const float* res = result.data();
        const float* nrm = norm.data();
        uint8_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          DeviceBuffer<float> d_result(static_cast<size_t>(channels * shape.voxels()));
          DeviceBuffer<float> d_norm(shape.voxels());
          DeviceBuffer<uint8_t> d_out(shape.voxels());
          d_result.upload(res);
          d_norm.upload(nrm);
          kernels::cuda::finalize_argmax(d_result.get(), d_norm.get(), channels, shape,
                                         d_out.get(), nullptr);
          d_out.download(dst);
        }
        return out;
      },
      py::arg("result"), py::arg("norm"));
}
}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "mlperf_trt CUDA kernels (twins of mlperf_trt._C.kernels)";
  bindings::register_error_translator();

  m.def("build_info", [] {
    py::dict info;
    info["cuda_runtime_version"] = CUDART_VERSION;
    info["cuda_architectures"] = MLPERF_TRT_CUDA_ARCHS;
    info["cuda_compiler_version"] = MLPERF_TRT_CUDA_COMPILER_VERSION;
    info["static_runtime"] = true;
    return info;
  });
  m.def("device_count", &device_count, "Number of usable CUDA devices (0 without a driver).");
  m.def("synchronize", [] {
    py::gil_scoped_release release;
    MLPERF_CUDA_CHECK(cudaDeviceSynchronize());
  });

  // Host-array entry points: copy in, launch on the default stream, copy out (tests, benchmarks).
  m.def(
      "argmax_rows",
      [](py::object scores_obj) {
        auto scores = bindings::require_array<float>(scores_obj, "scores");
        MLPERF_CHECK_KERNEL(scores.ndim() == 2, "argmax_rows expects float32 [rows, cols]");
        const auto rows = static_cast<size_t>(scores.shape(0));
        const auto cols = static_cast<size_t>(scores.shape(1));
        py::array_t<int32_t> out(static_cast<py::ssize_t>(rows));
        on_device(scores, out, [&](const float* d_in, int32_t* d_out) {
          kernels::cuda::argmax_rows_f32(d_in, rows, cols, cols, d_out, nullptr);
        });
        return out;
      },
      py::arg("scores"));
  m.def(
      "quantize_int8",
      [](py::object x_obj, float scale) {
        auto x = bindings::require_array<float>(x_obj, "x");
        py::array_t<int8_t> out(shape_of(x));
        const auto n = static_cast<size_t>(x.size());
        on_device(x, out, [&](const float* d_in, int8_t* d_out) {
          kernels::cuda::quantize_int8(d_in, n, scale, d_out, nullptr);
        });
        return out;
      },
      py::arg("x"), py::arg("scale"));
  m.def(
      "dequantize_int8",
      [](py::object q_obj, float scale) {
        auto q = bindings::require_array<int8_t>(q_obj, "q");
        py::array_t<float> out(shape_of(q));
        const auto n = static_cast<size_t>(q.size());
        on_device(q, out, [&](const int8_t* d_in, float* d_out) {
          kernels::cuda::dequantize_int8(d_in, n, scale, d_out, nullptr);
        });
        return out;
      },
      py::arg("q"), py::arg("scale"));

  m.def(
      "crop_normalize",
      [](py::object img_obj, size_t top, size_t left, size_t out_h, size_t out_w,
         std::array<float, 3> mean, std::array<float, 3> divisor, bool bgr_to_rgb) {
        auto img = bindings::require_array<uint8_t>(img_obj, "image");
        const auto w = bindings::image_window(img, top, left, out_h, out_w, bgr_to_rgb);
        py::array_t<float> out(chw_shape(out_h, out_w));
        on_device(img, out, [&](const uint8_t* d_in, float* d_out) {
          kernels::cuda::crop_normalize_chw_f32(d_in, w, mean.data(), divisor.data(), d_out,
                                                nullptr);
        });
        return out;
      },
      py::arg("image"), py::arg("top"), py::arg("left"), py::arg("out_h"), py::arg("out_w"),
      py::arg("mean"), py::arg("divisor") = std::array<float, 3>{1.0f, 1.0f, 1.0f},
      py::arg("bgr_to_rgb") = false);
  m.def(
      "crop_normalize_int8",
      [](py::object img_obj, size_t top, size_t left, size_t out_h, size_t out_w,
         std::array<float, 3> mean, std::array<float, 3> divisor, bool bgr_to_rgb, float scale) {
        auto img = bindings::require_array<uint8_t>(img_obj, "image");
        const auto w = bindings::image_window(img, top, left, out_h, out_w, bgr_to_rgb);
        py::array_t<int8_t> out(chw_shape(out_h, out_w));
        on_device(img, out, [&](const uint8_t* d_in, int8_t* d_out) {
          kernels::cuda::crop_normalize_chw_i8(d_in, w, mean.data(), divisor.data(), scale, d_out,
                                               nullptr);
        });
        return out;
      },
      py::arg("image"), py::arg("top"), py::arg("left"), py::arg("out_h"), py::arg("out_w"),
      py::arg("mean"), py::arg("divisor"), py::arg("bgr_to_rgb"), py::arg("scale"));

  // Device-pointer entry points for the C++ core and the TensorRT executor (no host round trip).
  m.def(
      "argmax_rows_ptr",
      [](uintptr_t scores, size_t rows, size_t cols, size_t stride, uintptr_t out,
         uintptr_t stream) {
        kernels::cuda::argmax_rows_f32(reinterpret_cast<const float*>(scores), rows, cols, stride,
                                       reinterpret_cast<int32_t*>(out),
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("scores"), py::arg("rows"), py::arg("cols"), py::arg("stride"), py::arg("out"),
      py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
  m.def(
      "quantize_int8_ptr",
      [](uintptr_t x, size_t n, float scale, uintptr_t out, uintptr_t stream) {
        kernels::cuda::quantize_int8(reinterpret_cast<const float*>(x), n, scale,
                                     reinterpret_cast<int8_t*>(out),
                                     reinterpret_cast<void*>(stream));
      },
      py::arg("x"), py::arg("n"), py::arg("scale"), py::arg("out"), py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>());

  // --- row gather, embedding-bag, pinned pool, device buffers -------------------------------
  py::class_<DeviceMemory>(m, "DeviceBuffer", "cudaMalloc'd bytes, freed with the object.")
      .def(py::init<size_t>(), py::arg("nbytes"))
      .def_property_readonly("ptr", &DeviceMemory::ptr)
      .def_property_readonly("nbytes", &DeviceMemory::nbytes)
      .def(
          "upload",
          [](const DeviceMemory& mem, py::object arr_obj, size_t offset) {
            py::array arr = c_array(arr_obj, "upload: array", false);
            const auto bytes = static_cast<size_t>(arr.nbytes());
            uint8_t* to = mem.at(offset, bytes, "upload");
            const void* from = arr.data();
            py::gil_scoped_release release;
            if (bytes) MLPERF_CUDA_CHECK(cudaMemcpy(to, from, bytes, cudaMemcpyHostToDevice));
          },
          py::arg("array"), py::arg("offset") = 0)
      .def(
          "download",
          [](const DeviceMemory& mem, py::object arr_obj, size_t offset) {
            py::array arr = c_array(arr_obj, "download: out", true);
            const auto bytes = static_cast<size_t>(arr.nbytes());
            const uint8_t* from = mem.at(offset, bytes, "download");
            void* to = arr.mutable_data();
            {
              py::gil_scoped_release release;
              if (bytes) MLPERF_CUDA_CHECK(cudaMemcpy(to, from, bytes, cudaMemcpyDeviceToHost));
            }
            return arr;
          },
          py::arg("out"), py::arg("offset") = 0);
  m.def(
      "memcpy_async",
      [](uintptr_t dst, uintptr_t src, size_t nbytes, uintptr_t stream) {
        MLPERF_CUDA_CHECK(
            cudaMemcpyAsync(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src),
                            nbytes, cudaMemcpyDefault, reinterpret_cast<cudaStream_t>(stream)));
      },
      py::arg("dst"), py::arg("src"), py::arg("nbytes"), py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>(),
      "cudaMemcpyAsync with the direction taken from the addresses (unified addressing).");
  bindings::bind_pool<kernels::cuda::PinnedPool>(
      m, "PinnedPool",
      "`count` page-locked host buffers of `buffer_bytes` (cudaHostAlloc), 256-byte aligned; "
      "the same interface as _C.kernels.HostPool.");

  m.def(
      "gather_rows",
      [](py::object src_obj, py::object indices_obj) {
        GatherCall c = gather_call(src_obj, indices_obj);
        const auto* src = static_cast<const uint8_t*>(c.src.data());
        const int64_t* idx = c.indices.data();
        void* out = c.out.mutable_data();
        {
          py::gil_scoped_release release;
          DeviceBuffer<uint8_t> d_src(span_bytes(c.src_rows, c.src_stride, c.row_bytes));
          DeviceBuffer<int64_t> d_idx(c.n);
          DeviceBuffer<uint8_t> d_out(c.n * c.row_bytes);
          d_src.upload(src);
          d_idx.upload(idx);
          kernels::cuda::gather_rows(d_src.get(), c.src_rows, c.src_stride, c.row_bytes,
                                     d_idx.get(), c.n, d_out.get(), nullptr);
          d_out.download(static_cast<uint8_t*>(out));
        }
        return c.out;
      },
      py::arg("src"), py::arg("indices"),
      "Device -> device gather kernel on host arrays (copied in and out): the twin of "
      "_C.kernels.gather_rows.");
  m.def(
      "gather_rows_h2d",
      [](py::object src_obj, py::object indices_obj) {
        GatherCall c = gather_call(src_obj, indices_obj);
        const void* src = c.src.data();
        const int64_t* idx = c.indices.data();
        void* out = c.out.mutable_data();
        {
          py::gil_scoped_release release;
          DeviceBuffer<uint8_t> d_out(c.n * c.row_bytes);
          kernels::cuda::gather_rows_h2d(src, c.src_rows, c.src_stride, c.row_bytes, idx, c.n,
                                         d_out.get(), nullptr);
          MLPERF_CUDA_CHECK(cudaStreamSynchronize(nullptr));
          d_out.download(static_cast<uint8_t*>(out));
        }
        return c.out;
      },
      py::arg("src"), py::arg("indices"),
      "Host -> device gather (one async copy per run of consecutive indices), then copied back.");
  m.def(
      "gather_rows_ptr",
      [](uintptr_t src, size_t src_rows, size_t src_stride, size_t row_bytes, uintptr_t indices,
         size_t n, uintptr_t dst, uintptr_t stream) {
        kernels::cuda::gather_rows(reinterpret_cast<const void*>(src), src_rows, src_stride,
                                   row_bytes, reinterpret_cast<const int64_t*>(indices), n,
                                   reinterpret_cast<void*>(dst), reinterpret_cast<void*>(stream));
      },
      py::arg("src"), py::arg("src_rows"), py::arg("src_stride"), py::arg("row_bytes"),
      py::arg("indices"), py::arg("n"), py::arg("dst"), py::arg("stream") = 0,
      py::call_guard<py::gil_scoped_release>(),
      "Device -> device gather; src, indices (int64) and dst are device addresses. The indices "
      "must be checked by the caller: a row with an index out of range is written as zeros.");
  m.def(
      "gather_rows_h2d_ptr",
      [](uintptr_t src, size_t src_rows, size_t src_stride, size_t row_bytes,
         py::object indices_obj, uintptr_t dst, uintptr_t stream) {
        auto indices = bindings::require_array<int64_t>(indices_obj, "indices");
        MLPERF_CHECK_KERNEL(indices.ndim() == 1, "gather_rows_h2d_ptr: indices must be 1-D");
        const int64_t* idx = indices.data();
        const auto n = static_cast<size_t>(indices.shape(0));
        py::gil_scoped_release release;
        kernels::cuda::gather_rows_h2d(reinterpret_cast<const void*>(src), src_rows, src_stride,
                                       row_bytes, idx, n, reinterpret_cast<void*>(dst),
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("src"), py::arg("src_rows"), py::arg("src_stride"), py::arg("row_bytes"),
      py::arg("indices"), py::arg("dst"), py::arg("stream") = 0,
      "Host (pinned) -> device gather: src a host address, indices a host int64 array (checked, "
      "DataError), dst a device address; queued on `stream`, not waited for.");

  m.def(
      "embedding_bag_sum_tables",
      [](py::sequence tables, py::sequence ids, bool skip_padding) {
        MLPERF_CHECK_KERNEL(tables.size() == ids.size(),
                            tables.size() << " tables but " << ids.size() << " id arrays");
        std::vector<py::array> keep;
        std::vector<kernels::EmbeddingBag> host;
        size_t pairs = 0, dim = 0;
        for (size_t t = 0; t < tables.size(); ++t) {
          const std::string name = "tables[" + std::to_string(t) + "]";
          auto table = bindings::require_array<float>(tables[t], name.c_str());
          auto id = bindings::require_array<int32_t>(ids[t], "ids");
          MLPERF_CHECK_KERNEL(
              table.ndim() == 2 && id.ndim() == 2,
              name << " must be float32 [rows, dim] and its ids int32 [pairs, hot]");
          if (t == 0) {
            pairs = static_cast<size_t>(id.shape(0));
            dim = static_cast<size_t>(table.shape(1));
          }
          MLPERF_CHECK_KERNEL(static_cast<size_t>(id.shape(0)) == pairs &&
                                  static_cast<size_t>(table.shape(1)) == dim,
                              name << " or its ids disagree with table 0 on pairs or dim");
          kernels::EmbeddingBag bag;
          bag.table = table.data();
          bag.rows = static_cast<size_t>(table.shape(0));
          bag.dim = dim;
          bag.ids = id.data();
          bag.hot = static_cast<size_t>(id.shape(1));
          bag.ids_stride = bag.hot;
          bag.table_index = t;
          host.push_back(bag);
          keep.push_back(table);
          keep.push_back(id);
        }
        py::array_t<float> out(std::vector<py::ssize_t>{static_cast<py::ssize_t>(pairs),
                                                        static_cast<py::ssize_t>(host.size()),
                                                        static_cast<py::ssize_t>(dim)});
        float* out_host = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (const auto& bag : host) kernels::check_embedding_ids(bag, 0, pairs, skip_padding);
          std::vector<std::unique_ptr<DeviceBuffer<float>>> d_tables;
          std::vector<std::unique_ptr<DeviceBuffer<int32_t>>> d_ids;
          DeviceBuffer<float> d_out(pairs * host.size() * dim);
          std::vector<kernels::EmbeddingBag> dev = host;
          for (size_t t = 0; t < host.size(); ++t) {
            d_tables.push_back(std::make_unique<DeviceBuffer<float>>(host[t].rows * dim));
            d_tables.back()->upload(host[t].table);
            d_ids.push_back(std::make_unique<DeviceBuffer<int32_t>>(pairs * host[t].hot));
            d_ids.back()->upload(host[t].ids);
            dev[t].table = d_tables.back()->get();
            dev[t].ids = d_ids.back()->get();
            dev[t].out = d_out.get() + t * dim;
            dev[t].out_stride = host.size() * dim;
          }
          kernels::cuda::embedding_bag_sum_tables(dev, pairs, nullptr);
          d_out.download(out_host);
        }
        return out;
      },
      py::arg("tables"), py::arg("ids"), py::arg("skip_padding") = false,
      "Twin of _C.kernels.embedding_bag_sum_tables on host arrays (tables copied to the device, "
      "ids checked on the host first).");
  m.def(
      "embedding_bag_sum_ptr",
      [](const std::vector<std::tuple<uintptr_t, size_t, uintptr_t, size_t, size_t>>& bags,
         size_t pairs, size_t dim, uintptr_t out, size_t out_stride, uintptr_t stream) {
        std::vector<kernels::EmbeddingBag> dev;
        for (size_t t = 0; t < bags.size(); ++t) {
          kernels::EmbeddingBag bag;
          bag.table = reinterpret_cast<const float*>(std::get<0>(bags[t]));
          bag.rows = std::get<1>(bags[t]);
          bag.ids = reinterpret_cast<const int32_t*>(std::get<2>(bags[t]));
          bag.hot = std::get<3>(bags[t]);
          bag.ids_stride = std::get<4>(bags[t]);
          bag.dim = dim;
          bag.out = reinterpret_cast<float*>(out) + t * dim;
          bag.out_stride = out_stride;
          bag.table_index = t;
          dev.push_back(bag);
        }
        py::gil_scoped_release release;
        kernels::cuda::embedding_bag_sum_tables(dev, pairs, reinterpret_cast<void*>(stream));
      },
      py::arg("bags"), py::arg("pairs"), py::arg("dim"), py::arg("out"), py::arg("out_stride"),
      py::arg("stream") = 0,
      "bags: one (table, rows, ids, hot, ids_stride) per table, device addresses, strides in "
      "elements; table t writes out + t * dim floats, rows out_stride floats apart. Ids are not "
      "checked (the caller does); one out of range adds nothing.");

  bind_detection(m);
}
