// Maps mlperf_trt::Error domains onto the classes of mlperf_trt.errors (both modules use it).
#pragma once

#include <pybind11/pybind11.h>

#include "common/check.h"

namespace mlperf_trt::bindings {

inline const char* python_error_class(ErrorDomain domain) {
  switch (domain) {
    case ErrorDomain::kConfig: return "ConfigError";
    case ErrorDomain::kData: return "DataError";
    case ErrorDomain::kHarness: return "HarnessError";
    case ErrorDomain::kKernel: return "KernelError";
    case ErrorDomain::kBackend: return "BackendError";
  }
  return "MlperfTrtError";
}

inline void register_error_translator() {
  pybind11::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      pybind11::object errors = pybind11::module_::import("mlperf_trt.errors");
      pybind11::object cls = errors.attr(python_error_class(e.domain()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}

}  // namespace mlperf_trt::bindings
