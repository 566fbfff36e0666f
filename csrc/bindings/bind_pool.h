// The Python face of a BufferPool (kernels/cpu/buffer_pool.h), shared by _C.kernels.HostPool and
// _cuda.PinnedPool so that both keep exactly one interface.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu/buffer_pool.h"

namespace mlperf_trt::bindings {

template <typename Pool>
void bind_pool(pybind11::module_& m, const char* name, const char* doc) {
  namespace py = pybind11;
  py::class_<Pool>(m, name, doc)
      .def(py::init<size_t, size_t>(), py::arg("buffer_bytes"), py::arg("count"))
      .def(
          "acquire",
          [](py::object self, double timeout_s) {
            auto& pool = self.cast<Pool&>();
            const auto timeout_us =
                timeout_s < 0 ? int64_t{-1} : static_cast<int64_t>(timeout_s * 1e6);
            kernels::BufferPool::Buffer buffer;
            {
              py::gil_scoped_release release;
              buffer = pool.acquire(timeout_us);
            }
            // The view's base is the pool object: the memory outlives every view of it.
            py::array view(py::dtype::of<uint8_t>(),
                           std::vector<py::ssize_t>{static_cast<py::ssize_t>(pool.buffer_bytes())},
                           std::vector<py::ssize_t>{1}, buffer.data, self);
            return py::make_tuple(buffer.id, view);
          },
          py::arg("timeout_s") = 0.0,
          "(id, uint8 view of buffer_bytes); waits up to timeout_s (< 0: for ever) when all are "
          "out, then raises KernelError.")
      .def(
          "release", [](Pool& pool, size_t id) { pool.release(id); }, py::arg("id"),
          "Return buffer `id`; its views stay valid memory but the buffer may be handed out again.")
      .def_property_readonly("buffer_bytes", [](const Pool& p) { return p.buffer_bytes(); })
      .def_property_readonly("capacity", [](const Pool& p) { return p.capacity(); })
      .def_property_readonly("available", [](const Pool& p) { return p.available(); })
      .def_property_readonly("alignment", [](const Pool& p) { return p.alignment(); })
      .def_property_readonly("stride", [](const Pool& p) { return p.stride(); });
}

}  // namespace mlperf_trt::bindings
