// Host-array entry points of the CPU kernels (tests, benchmarks, and CPU post-processing).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/check.h"
#include "kernels/cpu/argmax.h"
#include "kernels/cpu/image.h"
#include "kernels/cpu/quantize.h"

namespace py = pybind11;

namespace mlperf_trt::bindings {

void bind_kernels(py::module_& m) {
  py::module_ k = m.def_submodule("kernels", "CPU kernels (references of the CUDA twins)");
  k.def(
      "argmax_rows",
      [](py::object scores_obj) {
        auto scores = require_array<float>(scores_obj, "scores");
        MLPERF_CHECK_KERNEL(scores.ndim() == 2, "argmax_rows expects float32 [rows, cols], got "
                                                    << scores.ndim() << " dims");
        const auto rows = static_cast<size_t>(scores.shape(0));
        const auto cols = static_cast<size_t>(scores.shape(1));
        py::array_t<int32_t> out(static_cast<py::ssize_t>(rows));
        const float* src = scores.data();
        int32_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::argmax_rows_f32(src, rows, cols, cols, dst);
        }
        return out;
      },
      py::arg("scores"), "Row-wise argmax of float32 [rows, cols] -> int32 [rows].");
  k.def(
      "quantize_int8",
      [](py::object x_obj, float scale) {
        auto x = require_array<float>(x_obj, "x");
        py::array_t<int8_t> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
        const float* src = x.data();
        int8_t* dst = out.mutable_data();
        const auto n = static_cast<size_t>(x.size());
        {
          py::gil_scoped_release release;
          kernels::quantize_int8(src, n, scale, dst);
        }
        return out;
      },
      py::arg("x"), py::arg("scale"), "clamp(round_half_even(x / scale), -128, 127) as int8.");
  k.def(
      "dequantize_int8",
      [](py::object q_obj, float scale) {
        auto q = require_array<int8_t>(q_obj, "q");
        py::array_t<float> out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
        const int8_t* src = q.data();
        float* dst = out.mutable_data();
        const auto n = static_cast<size_t>(q.size());
        {
          py::gil_scoped_release release;
          kernels::dequantize_int8(src, n, scale, dst);
        }
        return out;
      },
      py::arg("q"), py::arg("scale"), "q * scale as float32.");
  k.def(
      "crop_normalize",
      [](py::object img_obj, size_t top, size_t left, size_t out_h, size_t out_w,
         std::array<float, 3> mean, std::array<float, 3> divisor, bool bgr_to_rgb) {
        auto img = require_array<uint8_t>(img_obj, "image");
        const auto w = image_window(img, top, left, out_h, out_w, bgr_to_rgb);
        py::array_t<float> out({py::ssize_t{3}, static_cast<py::ssize_t>(out_h),
                                static_cast<py::ssize_t>(out_w)});
        const uint8_t* src = img.data();
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::crop_normalize_chw_f32(src, w, mean.data(), divisor.data(), dst);
        }
        return out;
      },
      py::arg("image"), py::arg("top"), py::arg("left"), py::arg("out_h"), py::arg("out_w"),
      py::arg("mean"), py::arg("divisor") = std::array<float, 3>{1.0f, 1.0f, 1.0f},
      py::arg("bgr_to_rgb") = false,
      "Crop an HWC uint8 image, (x - mean) / divisor per channel, CHW float32.");
  k.def(
      "crop_normalize_int8",
      [](py::object img_obj, size_t top, size_t left, size_t out_h, size_t out_w,
         std::array<float, 3> mean, std::array<float, 3> divisor, bool bgr_to_rgb, float scale) {
        auto img = require_array<uint8_t>(img_obj, "image");
        const auto w = image_window(img, top, left, out_h, out_w, bgr_to_rgb);
        py::array_t<int8_t> out({py::ssize_t{3}, static_cast<py::ssize_t>(out_h),
                                 static_cast<py::ssize_t>(out_w)});
        const uint8_t* src = img.data();
        int8_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          kernels::crop_normalize_chw_i8(src, w, mean.data(), divisor.data(), scale, dst);
        }
        return out;
      },
      py::arg("image"), py::arg("top"), py::arg("left"), py::arg("out_h"), py::arg("out_w"),
      py::arg("mean"), py::arg("divisor"), py::arg("bgr_to_rgb"), py::arg("scale"),
      "crop_normalize, then quantised to int8 with `scale` (an INT8 engine's input).");
}

}  // namespace mlperf_trt::bindings
