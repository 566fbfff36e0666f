// mlperf_trt._C: the C++ core (harness + CPU kernels). Importing it never needs a GPU.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"
#include "bindings/errors.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "mlperf_trt C++ core: sample store, scheduler, worker pool, CPU kernels";
  mlperf_trt::bindings::register_error_translator();
  mlperf_trt::bindings::bind_common(m);
  mlperf_trt::bindings::bind_harness(m);
  mlperf_trt::bindings::bind_kernels(m);
  mlperf_trt::bindings::bind_detection(m);
}
