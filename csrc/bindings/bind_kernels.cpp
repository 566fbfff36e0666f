// Host-array entry points of the CPU kernels (tests, benchmarks, and CPU post-processing).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bind_pool.h"
#include "bindings/bindings.h"
#include "common/check.h"
#include "kernels/cpu/argmax.h"
#include "kernels/cpu/embedding_bag.h"
#include "kernels/cpu/gather.h"
#include "kernels/cpu/host_pool.h"
#include "kernels/cpu/image.h"
#include "kernels/cpu/quantize.h"

namespace py = pybind11;

namespace mlperf_trt::bindings {
namespace {

// A numpy array of rows: the elements of a row are packed, the rows may be `row_stride` elements
// apart (a column slice such as ids[:, 3:5] or out[:, t, :]). Never copied, never cast.
template <typename T>
struct RowView {
  py::array array;
  const T* data = nullptr;
  size_t rows = 0, cols = 0, row_stride = 0;  // row_stride in elements
};

template <typename T>
RowView<T> row_view(const py::handle& obj, const std::string& what, bool writeable) {
  MLPERF_CHECK_KERNEL(py::isinstance<py::array>(obj),
                      what << " must be a numpy array, got "
                           << std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  MLPERF_CHECK_KERNEL(arr.dtype().is(py::dtype::of<T>()),
                      what << " must have dtype " << std::string(py::str(py::dtype::of<T>()))
                           << ", got " << std::string(py::str(arr.dtype()))
                           << "; convert it explicitly (numpy .astype)");
  MLPERF_CHECK_KERNEL(arr.ndim() == 2, what << " must be 2-D, got " << arr.ndim() << " dims");
  RowView<T> v;
  v.rows = static_cast<size_t>(arr.shape(0));
  v.cols = static_cast<size_t>(arr.shape(1));
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  const bool empty = v.rows == 0 || v.cols == 0;  // numpy gives empty arrays any strides
  MLPERF_CHECK_KERNEL(v.cols <= 1 || empty || arr.strides(1) == item,
                      what << " must have packed rows (stride of the last axis " << item
                           << " bytes), got " << arr.strides(1) << "; use numpy.ascontiguousarray");
  const py::ssize_t s0 = arr.strides(0);
  if (v.rows <= 1 || empty) {
    v.row_stride = v.cols;
  } else {
    MLPERF_CHECK_KERNEL(s0 % item == 0 && s0 >= item * static_cast<py::ssize_t>(v.cols),
                        what << " has a row stride of " << s0 << " bytes; expected a multiple of "
                             << item << " and at least one row (" << item * v.cols
                             << " bytes); use numpy.ascontiguousarray");
    v.row_stride = static_cast<size_t>(s0 / item);
  }
  if (writeable) {
    MLPERF_CHECK_KERNEL(arr.writeable(), what << " is read-only; pass a writeable array");
  }
  v.data = static_cast<const T*>(arr.data());
  v.array = std::move(arr);
  return v;
}

// Bytes of one row of `arr` (its first axis) after checking the row is packed in memory.
size_t packed_row_bytes(const py::array& arr, const char* what) {
  MLPERF_CHECK_KERNEL(arr.ndim() >= 1, what << " must have at least one axis (the rows)");
  MLPERF_CHECK_KERNEL(!py::bool_(arr.dtype().attr("hasobject")),
                      what << " has dtype " << std::string(py::str(arr.dtype()))
                           << " (Python objects); only plain data can be gathered");
  auto expected = static_cast<py::ssize_t>(arr.itemsize());
  for (py::ssize_t k = arr.ndim() - 1; k >= 1; --k) {
    MLPERF_CHECK_KERNEL(arr.shape(k) == 1 || arr.size() == 0 || arr.strides(k) == expected,
                        what << " rows are not packed (axis " << k << " has stride "
                             << arr.strides(k) << ", expected " << expected
                             << "); use numpy.ascontiguousarray");
    expected *= arr.shape(k);
  }
  return static_cast<size_t>(expected);
}

py::array gather_rows(const py::handle& src_obj, const py::handle& indices_obj,
                      const py::object& out_obj) {
  MLPERF_CHECK_KERNEL(py::isinstance<py::array>(src_obj), "gather_rows: src must be a numpy array");
  auto src = py::reinterpret_borrow<py::array>(src_obj);
  const size_t row_bytes = packed_row_bytes(src, "gather_rows: src");
  const auto src_rows = static_cast<size_t>(src.shape(0));
  size_t src_stride = row_bytes;
  if (src_rows > 1 && src.size() > 0) {
    MLPERF_CHECK_KERNEL(src.strides(0) >= static_cast<py::ssize_t>(row_bytes),
                        "gather_rows: src row stride " << src.strides(0)
                                                       << " is below the row size " << row_bytes
                                                       << " (reversed or overlapping rows); use "
                                                          "numpy.ascontiguousarray");
    src_stride = static_cast<size_t>(src.strides(0));
  }
  auto indices = require_array<int64_t>(indices_obj, "gather_rows: indices");
  MLPERF_CHECK_KERNEL(indices.ndim() == 1, "gather_rows: indices must be 1-D int64");
  const auto n = static_cast<size_t>(indices.shape(0));
  std::vector<py::ssize_t> shape(src.shape(), src.shape() + src.ndim());
  shape[0] = static_cast<py::ssize_t>(n);
  py::array out;
  if (out_obj.is_none()) {
    out = py::array(src.dtype(), shape);
  } else {
    MLPERF_CHECK_KERNEL(py::isinstance<py::array>(out_obj),
                        "gather_rows: out must be a numpy array");
    out = py::reinterpret_borrow<py::array>(out_obj);
    MLPERF_CHECK_KERNEL(out.dtype().equal(src.dtype()), "gather_rows: out has dtype "
                                                            << std::string(py::str(out.dtype()))
                                                            << ", src has "
                                                            << std::string(py::str(src.dtype())));
    MLPERF_CHECK_KERNEL(std::vector<py::ssize_t>(out.shape(), out.shape() + out.ndim()) == shape,
                        "gather_rows: out must have shape (len(indices),) + src.shape[1:], got "
                            << std::string(py::str(py::tuple(py::cast(std::vector<py::ssize_t>(
                                   out.shape(), out.shape() + out.ndim()))))));
    MLPERF_CHECK_KERNEL(out.flags() & py::array::c_style, "gather_rows: out must be C-contiguous");
    MLPERF_CHECK_KERNEL(out.writeable(), "gather_rows: out is read-only");
  }
  const void* from = src.data();
  const int64_t* idx = indices.data();
  void* to = out.mutable_data();
  {
    py::gil_scoped_release release;
    kernels::gather_rows(from, src_rows, src_stride, row_bytes, idx, n, to);
  }
  return out;
}

// One EmbeddingBag per table, checked against the others (same pair count, same dim).
struct Bags {
  std::vector<py::array> keep;  // the arrays the raw pointers point into
  std::vector<kernels::EmbeddingBag> bags;
  size_t pairs = 0, dim = 0;
};

// Table names in messages count from index_base (a single-table call names its table_index).
Bags embedding_bags(const py::sequence& tables, const py::sequence& ids, size_t index_base = 0) {
  MLPERF_CHECK_KERNEL(tables.size() == ids.size(),
                      "embedding_bag_sum_tables: " << tables.size() << " tables but " << ids.size()
                                                   << " id arrays");
  Bags b;
  for (size_t t = 0; t < tables.size(); ++t) {
    const std::string table_name = "tables[" + std::to_string(index_base + t) + "]";
    // No forcecast: a memmap of a table far larger than RAM is read in place, never copied.
    auto table = require_array<float>(tables[t], table_name.c_str());
    MLPERF_CHECK_KERNEL(table.ndim() == 2, table_name << " must be float32 [rows, dim], got "
                                                      << table.ndim() << " dims");
    auto id = row_view<int32_t>(ids[t], "ids[" + std::to_string(index_base + t) + "]", false);
    const auto dim = static_cast<size_t>(table.shape(1));
    if (t == 0) {
      b.pairs = id.rows;
      b.dim = dim;
    }
    MLPERF_CHECK_KERNEL(id.rows == b.pairs,
                        "ids[" << t << "] has " << id.rows << " pairs, ids[0] has " << b.pairs);
    MLPERF_CHECK_KERNEL(dim == b.dim, table_name << " has dim " << dim << ", tables[0] has "
                                                 << b.dim << "; one output needs one dim");
    kernels::EmbeddingBag bag;
    bag.table = table.data();
    bag.rows = static_cast<size_t>(table.shape(0));
    bag.dim = dim;
    bag.ids = id.data;
    bag.hot = id.cols;
    bag.ids_stride = id.row_stride;
    bag.table_index = index_base + t;
    b.bags.push_back(bag);
    b.keep.push_back(table);
    b.keep.push_back(id.array);
  }
  return b;
}

}  // namespace

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
        py::array_t<float> out(
            {py::ssize_t{3}, static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w)});
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
        py::array_t<int8_t> out(
            {py::ssize_t{3}, static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w)});
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

  k.def("gather_rows", &gather_rows, py::arg("src"), py::arg("indices"),
        py::arg("out") = py::none(),
        "out[i] = src[indices[i]] for any dtype; src rows may be strided (src[::k]), out (same "
        "dtype, shape (n,) + src.shape[1:], C-contiguous) is written in place when given. "
        "Consecutive indices are copied as one run. DataError for an index out of range.");

  k.def(
      "embedding_bag_sum",
      [](py::object table, py::object ids, py::object out_obj, bool skip_padding,
         size_t table_index) {
        Bags b = embedding_bags(py::sequence(py::make_tuple(table)),
                                py::sequence(py::make_tuple(ids)), table_index);
        py::array out_array;
        if (out_obj.is_none()) {
          out_array = py::array_t<float>(
              {static_cast<py::ssize_t>(b.pairs), static_cast<py::ssize_t>(b.dim)});
        } else {
          out_array = py::reinterpret_borrow<py::array>(out_obj);
        }
        auto out = row_view<float>(out_array, "out", true);
        MLPERF_CHECK_KERNEL(out.rows == b.pairs && out.cols == b.dim,
                            "out must be float32 [pairs, dim] = [" << b.pairs << ", " << b.dim
                                                                   << "], got [" << out.rows << ", "
                                                                   << out.cols << "]");
        b.bags[0].out = static_cast<float*>(out_array.mutable_data());
        b.bags[0].out_stride = out.row_stride;
        {
          py::gil_scoped_release release;
          kernels::embedding_bag_sum(b.bags[0], 0, b.pairs, skip_padding);
        }
        return out_array;
      },
      py::arg("table"), py::arg("ids"), py::arg("out") = py::none(),
      py::arg("skip_padding") = false, py::arg("table_index") = 0,
      "out[p] = sum_h table[ids[p, h]] (float32 table [rows, dim], int32 ids [pairs, hot] with "
      "packed rows, any row stride). out: float32 [pairs, dim], any row stride (e.g. "
      "out3d[:, t, :]). skip_padding: id -1 adds nothing. DataError names table_index, the pair "
      "and the id for an id out of range.");
  k.def(
      "embedding_bag_sum_tables",
      [](py::sequence tables, py::sequence ids, py::object out_obj, bool skip_padding,
         size_t threads) {
        Bags b = embedding_bags(tables, ids);
        const auto n_tables = static_cast<py::ssize_t>(b.bags.size());
        py::array_t<float, py::array::c_style> out;
        const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(b.pairs), n_tables,
                                             static_cast<py::ssize_t>(b.dim)};
        if (out_obj.is_none()) {
          out = py::array_t<float, py::array::c_style>(shape);
        } else {
          out = require_array<float>(out_obj, "out");
          MLPERF_CHECK_KERNEL(
              std::vector<py::ssize_t>(out.shape(), out.shape() + out.ndim()) == shape,
              "out must be float32 [pairs, tables, dim] = [" << b.pairs << ", " << n_tables << ", "
                                                             << b.dim << "]");
          MLPERF_CHECK_KERNEL(out.writeable(), "out is read-only; pass a writeable array");
        }
        float* base = out.mutable_data();
        for (size_t t = 0; t < b.bags.size(); ++t) {
          b.bags[t].out = base + t * b.dim;  // table t at column offset t * dim
          b.bags[t].out_stride = b.bags.size() * b.dim;
        }
        {
          py::gil_scoped_release release;
          kernels::embedding_bag_sum_tables(b.bags, b.pairs, skip_padding, threads);
        }
        return out;
      },
      py::arg("tables"), py::arg("ids"), py::arg("out") = py::none(),
      py::arg("skip_padding") = false, py::arg("threads") = 0,
      "Every table at once into one float32 [pairs, tables, dim] output (DLRMv2: 26 tables, "
      "SPEC §2.8), split over `threads` C++ threads (0: all cores) without the GIL.");

  bind_pool<kernels::HostPool>(
      k, "HostPool",
      "`count` host buffers of `buffer_bytes`, 64-byte aligned (CPU twin of _cuda.PinnedPool).");
}

}  // namespace mlperf_trt::bindings
