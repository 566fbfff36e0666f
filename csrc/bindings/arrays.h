// Host arrays cross the boundary with dtype and layout checked, never silently cast (STYLE).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "common/check.h"
#include "common/tensor.h"

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

inline DType dtype_of(const pybind11::array& arr) {
  return dtype_from_name(std::string(pybind11::str(arr.dtype())));
}

inline pybind11::dtype numpy_dtype(DType dtype) {
  return pybind11::dtype(std::string(dtype_name(dtype)));
}

}  // namespace mlperf_trt::bindings
