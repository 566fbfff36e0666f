// One bind_* function per csrc folder; module.cpp calls them (STYLE: one module entry).
#pragma once

#include <pybind11/pybind11.h>

namespace mlperf_trt::bindings {

void bind_common(pybind11::module_& m);
void bind_detection(pybind11::module_& m);
void bind_harness(pybind11::module_& m);
void bind_kernels(pybind11::module_& m);

}  // namespace mlperf_trt::bindings
