#include <pybind11/pybind11.h>

#include "bindings/bindings.h"
#include "build_config.h"

namespace py = pybind11;

namespace mlperf_trt::bindings {

void bind_common(py::module_& m) {
  m.def("build_info", [] {
    py::dict info;
    info["version"] = MLPERF_TRT_VERSION;
    info["compiler"] = MLPERF_TRT_CXX_COMPILER;
    info["build_type"] = MLPERF_TRT_BUILD_TYPE;
    info["cxx_standard"] = 17;
    info["cuda_requested"] = MLPERF_TRT_CUDA_MODE;
    info["cuda_built"] = static_cast<bool>(MLPERF_TRT_WITH_CUDA);
    info["cuda_architectures"] = MLPERF_TRT_CUDA_ARCHS;
    info["cuda_compiler_version"] = MLPERF_TRT_CUDA_COMPILER_VERSION;
    return info;
  });
}

}  // namespace mlperf_trt::bindings
