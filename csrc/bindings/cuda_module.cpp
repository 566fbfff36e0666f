// mlperf_trt._cuda: the CUDA twins of kernels/cpu, linked with the static CUDA runtime so that
// importing this module never needs a GPU or a driver; calls that need one raise BackendError.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include <cstdint>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/errors.h"
#include "build_config.h"
#include "common/check.h"
#include "kernels/cuda/kernels.h"

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
}
