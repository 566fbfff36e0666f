// Bindings of csrc/harness, plus the two adapters that need Python: PyExecutor (a Python
// executor behind the C++ Executor interface) and LoadGenSink (completion through LoadGen's
// Python module, once per batch). DESIGN §4.1: the GIL is released wherever C++ waits or copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/check.h"
#include "harness/completion.h"
#include "harness/executor.h"
#include "harness/postprocessor.h"
#include "harness/sample_store.h"
#include "harness/scheduler.h"
#include "harness/worker_pool.h"

namespace py = pybind11;

namespace mlperf_trt::bindings {
namespace {

// A Python executor (`run(inputs: dict[str, ndarray]) -> Mapping[str, ndarray]`) as a C++
// Executor. Inputs are passed as zero-copy views of the worker's pooled buffers, valid only during
// run(); outputs are held until the next run() so the post-processor can read them without the GIL.
class PyExecutor : public Executor {
 public:
  PyExecutor(py::object executor, std::vector<std::string> input_names,
             std::vector<std::string> output_names)
      : executor_(std::move(executor)),
        input_names_(std::move(input_names)),
        output_names_(std::move(output_names)) {
    MLPERF_CHECK_CONFIG(py::hasattr(executor_, "run"),
                        "executor objects need a run(inputs) method");
    run_ = executor_.attr("run");
    ascontiguous_ = py::module_::import("numpy").attr("ascontiguousarray");
  }

  ~PyExecutor() override {
    py::gil_scoped_acquire gil;
    held_.clear();
    run_ = py::object();
    ascontiguous_ = py::object();
    executor_ = py::object();
  }

  std::vector<TensorView> run(const std::vector<TensorView>& inputs, size_t batch) override {
    MLPERF_CHECK_HARNESS(inputs.size() == input_names_.size(),
                         "executor got " << inputs.size() << " inputs, expects "
                                         << input_names_.size());
    py::gil_scoped_acquire gil;
    held_.clear();
    py::dict feed;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const TensorView& t = inputs[i];
      std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
      // A non-null base makes numpy reference the buffer instead of copying it.
      feed[py::str(input_names_[i])] = py::array(numpy_dtype(t.dtype), shape, t.data, py::none());
    }
    py::object result = run_(feed, py::arg("batch_size") = batch);
    std::vector<TensorView> outputs;
    outputs.reserve(output_names_.size());
    for (const auto& name : output_names_) {
      py::object value;
      try {
        value = result[py::str(name)];
      } catch (py::error_already_set&) {
        MLPERF_CHECK_BACKEND(false, "the executor returned no output named '" << name << "'");
      }
      auto arr = py::reinterpret_borrow<py::array>(ascontiguous_(value));
      TensorView view;
      view.data = const_cast<void*>(arr.data());
      view.dtype = dtype_of(arr);
      view.shape.assign(arr.shape(), arr.shape() + arr.ndim());
      outputs.push_back(view);
      held_.push_back(std::move(arr));
    }
    return outputs;
  }

 private:
  py::object executor_;
  py::object run_;
  py::object ascontiguous_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::vector<py::object> held_;
};

// Completes a batch through LoadGen's Python API: one QuerySamplesComplete per batch (and one
// FirstTokenComplete before it for token payloads outside Offline, SPEC §3.5).
class LoadGenSink : public ResponseSink {
 public:
  explicit LoadGenSink(py::object loadgen) {
    complete_ = loadgen.attr("QuerySamplesComplete");
    first_token_ = loadgen.attr("FirstTokenComplete");
    response_cls_ = loadgen.attr("QuerySampleResponse");
  }

  ~LoadGenSink() override {
    py::gil_scoped_acquire gil;
    complete_ = py::object();
    first_token_ = py::object();
    response_cls_ = py::object();
  }

  void complete(const Batch& batch, const Responses& responses) override {
    const size_t n = batch.size();
    MLPERF_CHECK_HARNESS(responses.size() == n,
                         responses.size() << " responses for a batch of " << n);
    const auto base = reinterpret_cast<uintptr_t>(responses.payload.data());
    py::gil_scoped_acquire gil;
    if (responses.first_token) {
      py::list first(n);
      for (size_t i = 0; i < n; ++i) {
        const size_t size = responses.sizes[i];
        first[i] = make_response(batch.ids[i], base + responses.offsets[i], size >= 4 ? 4 : 0, -1);
      }
      first_token_(first);
    }
    py::list list(n);
    const bool tokens = !responses.n_tokens.empty();
    for (size_t i = 0; i < n; ++i) {
      list[i] = make_response(batch.ids[i], base + responses.offsets[i], responses.sizes[i],
                              tokens ? responses.n_tokens[i] : -1);
    }
    complete_(list);
  }

 private:
  py::object make_response(uint64_t id, uintptr_t data, size_t size, int64_t n_tokens) {
    PyObject* args[5] = {nullptr, PyLong_FromUnsignedLongLong(id),
                         PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(data)),
                         PyLong_FromSize_t(size),
                         n_tokens >= 0 ? PyLong_FromLongLong(n_tokens) : nullptr};
    const size_t nargs = n_tokens >= 0 ? 4 : 3;
    PyObject* obj = PyObject_Vectorcall(response_cls_.ptr(), args + 1,
                                        nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
    for (size_t i = 1; i <= nargs; ++i) Py_DECREF(args[i]);
    if (!obj) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(obj);
  }

  py::object complete_;
  py::object first_token_;
  py::object response_cls_;
};

std::vector<const void*> sample_pointers(const SampleStore& store, const py::sequence& arrays,
                                         std::vector<py::array>& keep, int64_t index) {
  const auto& specs = store.tensors();
  MLPERF_CHECK_DATA(static_cast<size_t>(py::len(arrays)) == specs.size(),
                    "sample " << index << ": got " << py::len(arrays) << " arrays, the store holds "
                              << specs.size() << " tensors");
  std::vector<const void*> ptrs;
  for (size_t t = 0; t < specs.size(); ++t) {
    py::object obj = arrays[t];
    MLPERF_CHECK_DATA(py::isinstance<py::array>(obj),
                      "sample " << index << " tensor '" << specs[t].name << "' is not an array");
    auto arr = py::reinterpret_borrow<py::array>(obj);
    MLPERF_CHECK_DATA(std::string(py::str(arr.dtype())) == dtype_name(specs[t].dtype),
                      "sample " << index << " tensor '" << specs[t].name << "' has dtype "
                                << std::string(py::str(arr.dtype())) << ", the store expects "
                                << dtype_name(specs[t].dtype));
    MLPERF_CHECK_DATA(static_cast<size_t>(arr.nbytes()) == specs[t].sample_bytes(),
                      "sample " << index << " tensor '" << specs[t].name << "' has "
                                << arr.nbytes() << " bytes, the store expects "
                                << specs[t].sample_bytes());
    MLPERF_CHECK_DATA(arr.flags() & py::array::c_style,
                      "sample " << index << " tensor '" << specs[t].name
                                << "' must be C-contiguous");
    ptrs.push_back(arr.data());
    keep.push_back(arr);
  }
  return ptrs;
}

}  // namespace

void bind_harness(py::module_& m) {
  py::module_ h = m.def_submodule("harness", "harness core: sample store, scheduler, workers");

  py::class_<TensorSpec>(h, "TensorSpec")
      .def(py::init([](std::string name, const std::string& dtype, std::vector<int64_t> shape) {
             TensorSpec s;
             s.name = std::move(name);
             s.dtype = dtype_from_name(dtype);
             s.sample_shape = std::move(shape);
             return s;
           }),
           py::arg("name"), py::arg("dtype"), py::arg("sample_shape"))
      .def_readonly("name", &TensorSpec::name)
      .def_property_readonly("dtype", [](const TensorSpec& s) { return dtype_name(s.dtype); })
      .def_readonly("sample_shape", &TensorSpec::sample_shape)
      .def_property_readonly("sample_bytes", &TensorSpec::sample_bytes);

  py::class_<SampleStore, std::shared_ptr<SampleStore>>(h, "SampleStore")
      .def(py::init<std::vector<TensorSpec>, int64_t>(), py::arg("tensors"),
           py::arg("total_samples"))
      .def_property_readonly("tensors", &SampleStore::tensors)
      .def_property_readonly("total_samples", &SampleStore::total_samples)
      .def_property_readonly("loaded_count", &SampleStore::loaded_count)
      .def("is_loaded", &SampleStore::is_loaded, py::arg("index"))
      .def("reserve", &SampleStore::reserve, py::arg("count"),
           py::call_guard<py::gil_scoped_release>())
      .def(
          "load",
          [](SampleStore& store, int64_t index, const py::sequence& arrays) {
            std::vector<py::array> keep;
            auto ptrs = sample_pointers(store, arrays, keep, index);
            py::gil_scoped_release release;
            store.load(index, ptrs);
          },
          py::arg("index"), py::arg("arrays"),
          "Copies one sample (one array per tensor, in tensor order) into the store.")
      .def("unload", &SampleStore::unload, py::arg("indices"),
           py::call_guard<py::gil_scoped_release>())
      .def("unload_all", &SampleStore::unload_all, py::call_guard<py::gil_scoped_release>())
      .def(
          "gather",
          [](const SampleStore& store, const std::vector<uint64_t>& indices, size_t tensor) {
            MLPERF_CHECK_HARNESS(tensor < store.tensors().size(), "no tensor " << tensor);
            const TensorSpec& spec = store.tensors()[tensor];
            std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(indices.size())};
            shape.insert(shape.end(), spec.sample_shape.begin(), spec.sample_shape.end());
            py::array out(numpy_dtype(spec.dtype), shape);
            void* dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              store.gather(indices.data(), indices.size(), tensor, dst);
            }
            return out;
          },
          py::arg("indices"), py::arg("tensor"), "Copies samples of one tensor into a new array.");

  py::class_<BatchPolicy>(h, "BatchPolicy")
      .def(py::init([](size_t max_batch, int64_t timeout_us, uint64_t max_cost,
                       std::vector<uint32_t> bucket_bounds) {
             return BatchPolicy{max_batch, timeout_us, max_cost, std::move(bucket_bounds)};
           }),
           py::arg("max_batch"), py::arg("timeout_us") = 0, py::arg("max_cost") = 0,
           py::arg("bucket_bounds") = std::vector<uint32_t>{})
      .def_readonly("max_batch", &BatchPolicy::max_batch)
      .def_readonly("timeout_us", &BatchPolicy::timeout_us)
      .def_readonly("max_cost", &BatchPolicy::max_cost)
      .def_readonly("bucket_bounds", &BatchPolicy::bucket_bounds);

  py::class_<Scheduler, std::shared_ptr<Scheduler>>(h, "Scheduler")
      .def(py::init([](BatchPolicy policy, std::optional<py::array_t<uint32_t, py::array::c_style>> costs) {
             std::vector<uint32_t> c;
             if (costs) {
               MLPERF_CHECK_CONFIG(costs->ndim() == 1, "costs must be one-dimensional (one per QSL sample), got "
                                                           << costs->ndim() << " dimensions");
               c.assign(costs->data(), costs->data() + costs->size());
             }
             return std::make_shared<Scheduler>(std::move(policy), std::move(c));
           }),
           py::arg("policy"), py::arg("costs") = py::none(),
           "costs[i]: the cost of QSL sample i (sequence length, pairs); None: 1 each.")
      .def_property_readonly("buckets", &Scheduler::buckets)
      .def_property_readonly("policy", &Scheduler::policy)
      // The LoadGen FastSUT issue callback: (response ids, sample indices). Returns at once.
      .def(
          "issue",
          [](Scheduler& s, const std::vector<uint64_t>& ids, const std::vector<uint64_t>& indices) {
            MLPERF_CHECK_HARNESS(ids.size() == indices.size(),
                                 "issue got " << ids.size() << " ids and " << indices.size()
                                              << " indices");
            s.push(ids.data(), indices.data(), ids.size());
          },
          py::arg("ids"), py::arg("indices"))
      .def("flush", &Scheduler::flush)
      .def("stop", &Scheduler::stop)
      .def(
          "next_batch",
          [](Scheduler& s) -> py::object {
            Batch b;
            bool ok;
            {
              py::gil_scoped_release release;
              ok = s.next_batch(b);
            }
            if (!ok) return py::none();
            return py::make_tuple(py::cast(b.ids), py::cast(b.indices), b.cost, b.max_item_cost);
          },
          "Blocks (without the GIL) for the next batch: (ids, indices, cost, max item cost), or"
          " None once stopped.")
      .def_property_readonly("pushed", &Scheduler::pushed)
      .def_property_readonly("handed_out", &Scheduler::handed_out)
      .def_property_readonly("queued", &Scheduler::queued);

  py::class_<Postprocessor, std::shared_ptr<Postprocessor>>(h, "Postprocessor")
      .def(
          "process",
          [](Postprocessor& post, const std::vector<uint64_t>& indices, const py::list& outputs,
             std::optional<std::vector<uint32_t>> costs) {
            Batch batch;
            batch.indices = indices;
            batch.ids = indices;
            batch.costs = costs ? *costs : std::vector<uint32_t>(indices.size(), 1);
            MLPERF_CHECK_CONFIG(batch.costs.size() == indices.size(),
                                indices.size() << " indices but " << batch.costs.size()
                                               << " costs");
            for (uint32_t c : batch.costs) batch.cost += c;
            std::vector<py::array> keep;
            std::vector<TensorView> views;
            for (const auto& obj : outputs) {
              auto arr = py::reinterpret_borrow<py::array>(obj);
              MLPERF_CHECK_CONFIG(arr.flags() & py::array::c_style,
                                  "outputs must be C-contiguous numpy arrays");
              TensorView v;
              v.dtype = dtype_of(arr);
              v.data = const_cast<void*>(arr.data());
              for (py::ssize_t d = 0; d < arr.ndim(); ++d) v.shape.push_back(arr.shape(d));
              views.push_back(v);
              keep.push_back(arr);
            }
            Responses out;
            post.process(batch, views, out);
            py::list result;
            for (size_t i = 0; i < out.size(); ++i) {
              result.append(py::bytes(
                  reinterpret_cast<const char*>(out.payload.data() + out.offsets[i]),
                  out.sizes[i]));
            }
            return result;
          },
          py::arg("indices"), py::arg("outputs"), py::arg("costs") = py::none(),
          "Post-processes one batch outside a run (tests, tools): one payload (bytes) per sample.");
  py::class_<ZerosPostprocessor, Postprocessor, std::shared_ptr<ZerosPostprocessor>>(
      h, "ZerosPostprocessor")
      .def(py::init<size_t, int64_t, bool>(), py::arg("payload_bytes"), py::arg("tokens") = 0,
           py::arg("first_token") = false);
  py::class_<ClassIndexPostprocessor, Postprocessor, std::shared_ptr<ClassIndexPostprocessor>>(
      h, "ClassIndexPostprocessor")
      .def(py::init<size_t, int64_t>(), py::arg("output"), py::arg("offset") = 0);
  py::class_<InterleavePostprocessor, Postprocessor, std::shared_ptr<InterleavePostprocessor>>(
      h, "InterleavePostprocessor")
      .def(py::init<std::vector<size_t>, size_t, float>(), py::arg("outputs"),
           py::arg("positions"), py::arg("fill"));
  py::class_<RowsPostprocessor, Postprocessor, std::shared_ptr<RowsPostprocessor>>(
      h, "RowsPostprocessor")
      .def(py::init<size_t>(), py::arg("output"));
  py::class_<BytesPostprocessor, Postprocessor, std::shared_ptr<BytesPostprocessor>>(
      h, "BytesPostprocessor")
      .def(py::init<size_t>(), py::arg("output"));

  py::class_<ResponseSink, std::shared_ptr<ResponseSink>>(h, "ResponseSink");
  py::class_<LoadGenSink, ResponseSink, std::shared_ptr<LoadGenSink>>(h, "LoadGenSink")
      .def(py::init<py::object>(), py::arg("loadgen"),
           "Completes batches through the given mlperf_loadgen module.");

  py::class_<Executor, std::shared_ptr<Executor>>(h, "Executor");
  py::class_<PyExecutor, Executor, std::shared_ptr<PyExecutor>>(h, "PyExecutor")
      .def(py::init<py::object, std::vector<std::string>, std::vector<std::string>>(),
           py::arg("executor"), py::arg("input_names"), py::arg("output_names"));

  py::class_<WorkerPool, std::shared_ptr<WorkerPool>>(h, "WorkerPool")
      .def(py::init([](std::shared_ptr<Scheduler> scheduler,
                       std::shared_ptr<SampleStore> store,
                       std::vector<std::shared_ptr<Executor>> executors,
                       std::vector<int> groups, std::shared_ptr<Postprocessor> post,
                       std::shared_ptr<ResponseSink> sink) {
             MLPERF_CHECK_CONFIG(groups.size() == executors.size(),
                                 executors.size() << " executors but " << groups.size()
                                                  << " group ids");
             std::vector<WorkerSpec> workers;
             for (size_t i = 0; i < executors.size(); ++i) {
               workers.push_back(WorkerSpec{executors[i], groups[i]});
             }
             return std::make_shared<WorkerPool>(std::move(scheduler), std::move(store),
                                                 std::move(workers), std::move(post),
                                                 std::move(sink));
           }),
           py::arg("scheduler"), py::arg("store"), py::arg("executors"), py::arg("groups"),
           py::arg("postprocessor"), py::arg("sink"))
      .def("start", &WorkerPool::start)
      .def("stop", &WorkerPool::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("failed", &WorkerPool::failed)
      .def("rethrow", [](const WorkerPool& p) {
            if (auto e = p.error()) std::rethrow_exception(e);
          }, "Raises the first worker error, if any.")
      .def_property_readonly("completed_samples", &WorkerPool::completed_samples)
      .def_property_readonly("batches", &WorkerPool::batches)
      .def_property_readonly("batches_per_group", &WorkerPool::batches_per_group);
}

}  // namespace mlperf_trt::bindings
