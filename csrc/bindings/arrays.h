// Host arrays cross the boundary with dtype and layout checked, never silently cast (STYLE).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "common/check.h"
#include "common/tensor.h"
#include "kernels/cpu/image.h"

namespace mlperf_trt::bindings {

template <typename T>
pybind11::array_t<T, pybind11::array::c_style> require_array(const pybind11::handle& obj,
                                                             const char* what) {
  MLPERF_CHECK_KERNEL(pybind11::isinstance<pybind11::array>(obj),
                      what << " must be a numpy array, got "
                           << std::string(pybind11::str(obj.get_type().attr("__name__"))));
  auto arr = pybind11::reinterpret_borrow<pybind11::array>(obj);
  MLPERF_CHECK_KERNEL(arr.dtype().is(pybind11::dtype::of<T>()),
                      what << " must have dtype " << std::string(pybind11::str(pybind11::dtype::of<T>()))
                           << ", got " << std::string(pybind11::str(arr.dtype()))
                           << "; convert it explicitly (numpy .astype)");
  MLPERF_CHECK_KERNEL(arr.flags() & pybind11::array::c_style,
                      what << " must be C-contiguous; use numpy.ascontiguousarray");
  return pybind11::reinterpret_borrow<pybind11::array_t<T, pybind11::array::c_style>>(arr);
}

// An HWC 3-channel uint8 image and the crop window asked of it (kernels/cpu/image.h).
inline kernels::ImageWindow image_window(const pybind11::array_t<uint8_t, pybind11::array::c_style>& img,
                                         size_t top, size_t left, size_t out_h, size_t out_w,
                                         bool bgr_to_rgb) {
  MLPERF_CHECK_KERNEL(img.ndim() == 3 && img.shape(2) == 3,
                      "image must be uint8 [height, width, 3] (HWC), got " << img.ndim()
                                                                          << " dims");
  kernels::ImageWindow w;
  w.height = static_cast<size_t>(img.shape(0));
  w.width = static_cast<size_t>(img.shape(1));
  w.top = top;
  w.left = left;
  w.out_h = out_h;
  w.out_w = out_w;
  w.bgr_to_rgb = bgr_to_rgb;
  kernels::check_window(w);
  return w;
}

inline DType dtype_of(const pybind11::array& arr) {
  return dtype_from_name(std::string(pybind11::str(arr.dtype())));
}

inline pybind11::dtype numpy_dtype(DType dtype) {
  return pybind11::dtype(std::string(dtype_name(dtype)));
}

}  // namespace mlperf_trt::bindings
