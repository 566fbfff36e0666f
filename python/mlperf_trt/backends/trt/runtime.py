"""Running TensorRT engines: TrtExecutor (one per worker and stream) and the INT8 calibrator.

An executor owns one execution context of a shared engine, one CUDA stream, and for every I/O
tensor a device buffer and a pinned host buffer sized for the largest shape of its profiles.
`run` copies host inputs in, executes with `execute_async_v3`, copies outputs out and waits;
`run_device` takes device pointers from the C++ core and returns device pointers, with no host
round trip. With `TrtOptions.cuda_graphs`, the execution of each (profile, input shapes) is
captured into a CUDA graph the second time that shape runs (the first run flushes TensorRT's
deferred shape updates, as its documentation asks before capture) and replayed from then on.

Every CUDA call goes through `_check`, which raises BackendError with the error's name. Executors
are thread-confined (DESIGN §3); `cudaSetDevice` is called on entry because the CUDA device is a
per-thread setting. TensorRT and cuda-python are imported when an executor is made, not before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.backends.trt import cudart, require_tensorrt
from mlperf_trt.backends.trt.recipe import TrtOptions, to_trt_calibration_cache
from mlperf_trt.errors import BackendError, closest

__all__ = ["LoadedEngine", "TrtExecutor", "deserialize_engine", "host_view", "make_calibrator"]

log = logging.getLogger(__name__)

Shape = tuple[int, ...]


def _check(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values): BackendError unless the error is cudaSuccess;
    returns the one value (or the tuple of values, or None)."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        try:
            text = cudart().cudaGetErrorString(err)[1].decode()
        except Exception:  # noqa: BLE001 - the name alone still says what failed
            text = ""
        raise BackendError(f"CUDA call {what} failed: {name}" + (f" ({text})" if text else ""))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def host_view(address: int, nbytes: int) -> np.ndarray:
    """A writable uint8 numpy view of `nbytes` of host memory at `address` (pinned buffers)."""
    if nbytes == 0:
        return np.empty(0, dtype=np.uint8)
    raw = (ctypes.c_uint8 * nbytes).from_address(address)
    view: np.ndarray = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)
    return view


@dataclass(frozen=True)
class LoadedEngine:
    """A deserialised ICudaEngine on one device (shared by that device's executors)."""

    path: Path
    device: int
    runtime: Any
    engine: Any


def deserialize_engine(path: Path, device: int, verbose: bool = False) -> LoadedEngine:
    """Read engine.plan into an ICudaEngine on `device` (cudaSetDevice first: the runtime and
    the engine belong to the current device)."""
    from mlperf_trt.backends.trt.builder import make_logger

    trt = require_tensorrt()
    _check(cudart().cudaSetDevice(device), f"cudaSetDevice({device})")
    runtime = trt.Runtime(make_logger(verbose))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise BackendError(
            f"TensorRT {trt.__version__} cannot deserialise {path} (built by another TensorRT"
            " version or for another GPU?); delete the engine folder and rebuild"
        )
    return LoadedEngine(Path(path), device, runtime, engine)


@dataclass
class _Buffer:
    """One tensor's device buffer and pinned host buffer (owned by the executor)."""

    dtype: np.dtype[Any]
    nbytes: int
    device: int
    host: int
    view: np.ndarray


class TrtExecutor:
    """One execution context on one CUDA stream; thread-confined (one per worker)."""

    def __init__(
        self,
        engine: LoadedEngine,
        device: int,
        stream_index: int = 0,
        streams: int = 1,
        options: TrtOptions = TrtOptions(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        trt = require_tensorrt()
        self._rt = cudart()
        self.device = device
        self.options = options
        self._engine = engine
        self._buffers: dict[str, _Buffer] = {}
        self._graphs: dict[Any, Any] = {}
        self._seen: set[Any] = set()
        self._uncapturable: set[Any] = set()
        self._stream: Any = None
        self._context: Any = None
        self._set_device()
        eng = engine.engine
        count = int(eng.num_optimization_profiles)
        if streams < 1 or count % streams or not 0 <= stream_index < streams:
            raise BackendError(
                f"{engine.path} has {count} optimisation profiles, which cannot be split into"
                f" {streams} streams for stream index {stream_index}; rebuild the engine"
            )
        per = count // streams
        self.profiles: tuple[int, ...] = tuple(range(stream_index * per, (stream_index + 1) * per))
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.input_names: tuple[str, ...] = tuple(inputs)
        self.output_names: tuple[str, ...] = tuple(n for n in names if n not in inputs)
        self.dtypes = {n: _numpy_dtype(trt, eng.get_tensor_dtype(n), n) for n in names}
        # (min, max) shape of every input in every profile of this executor
        self._ranges: dict[int, dict[str, tuple[Shape, Shape]]] = {}
        for p in self.profiles:
            self._ranges[p] = {}
            for n in self.input_names:
                lo, _, hi = eng.get_tensor_profile_shape(n, p)
                self._ranges[p][n] = (tuple(int(d) for d in lo), tuple(int(d) for d in hi))
        self._context = eng.create_execution_context()
        if self._context is None:
            raise BackendError(
                f"TensorRT could not create an execution context for {engine.path} (out of device"
                " memory?); run fewer workers per GPU"
            )
        self._stream = _check(
            self._rt.cudaStreamCreateWithFlags(self._rt.cudaStreamNonBlocking),
            "cudaStreamCreateWithFlags",
        )
        self._stream_handle = int(self._stream)
        self._active: int | None = None
        self._shapes: dict[str, Shape] = {}
        self._external_inputs = False
        self.output_shapes: dict[str, Shape] = {}
        sizes = {n: 0 for n in names}
        for p in self.profiles:
            biggest = {n: self._ranges[p][n][1] for n in self.input_names}
            self._prepare(p, biggest)
            for n, shape in biggest.items():
                sizes[n] = max(sizes[n], math.prod(shape) * self.dtypes[n].itemsize)
            for n in self.output_names:
                shape = tuple(int(d) for d in self._context.get_tensor_shape(n))
                if any(d < 0 for d in shape):
                    raise BackendError(
                        f"output {n!r} of {engine.path} has a data-dependent shape {shape}; the"
                        " trt backend needs outputs whose shape follows from the inputs"
                    )
                sizes[n] = max(sizes[n], math.prod(shape) * self.dtypes[n].itemsize)
        for n in names:
            self._buffers[n] = self._allocate(n, sizes[n])
            if not self._context.set_tensor_address(n, self._buffers[n].device):
                raise BackendError(f"TensorRT refused the device address of tensor {n!r}")

    # -- buffers and state ---------------------------------------------------------------------

    def _set_device(self) -> None:
        _check(self._rt.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")

    def _allocate(self, name: str, nbytes: int) -> _Buffer:
        size = max(nbytes, 1)
        device = int(_check(self._rt.cudaMalloc(size), f"cudaMalloc({size}) for {name!r}"))
        try:
            host = int(_check(self._rt.cudaMallocHost(size), f"cudaMallocHost({size})"))
        except BackendError:
            self._rt.cudaFree(device)
            raise
        return _Buffer(self.dtypes[name], nbytes, device, host, host_view(host, nbytes))

    def close(self) -> None:
        """Free the graphs, buffers and stream (also on garbage collection)."""
        rt = getattr(self, "_rt", None)
        if rt is None:
            return
        for graph in self._graphs.values():
            rt.cudaGraphExecDestroy(graph)
        self._graphs.clear()
        for buf in self._buffers.values():
            rt.cudaFree(buf.device)
            rt.cudaFreeHost(buf.host)
        self._buffers.clear()
        self._context = None
        if self._stream is not None:
            rt.cudaStreamDestroy(self._stream)
            self._stream = None

    def __enter__(self) -> TrtExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # nothing useful to do at interpreter exit
            self.close()

    def _choose_profile(self, shapes: Mapping[str, Shape]) -> int:
        for p in self.profiles:
            if all(_within(shapes[n], *self._ranges[p][n]) for n in self.input_names):
                return p
        allowed = {
            p: {n: {"min": r[0], "max": r[1]} for n, r in v.items()}
            for p, v in self._ranges.items()
        }
        raise BackendError(
            f"input shapes {dict(shapes)} fit none of this executor's optimisation profiles"
            f" {allowed}; rebuild the engine with a larger batch size or sequence bucket"
        )

    def _prepare(self, profile: int, shapes: Mapping[str, Shape]) -> None:
        """Select `profile` (only when it changes) and set the input shapes that changed."""
        if self._active != profile:
            if not self._context.set_optimization_profile_async(profile, self._stream_handle):
                raise BackendError(f"TensorRT refused optimisation profile {profile}")
            _check(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
            self._active = profile
            self._shapes = {}
        for name, shape in shapes.items():
            if self._shapes.get(name) != shape:
                if not self._context.set_input_shape(name, shape):
                    raise BackendError(f"TensorRT refused input shape {shape} for {name!r}")
                self._shapes[name] = shape

    def _bind_own_inputs(self) -> None:
        if self._external_inputs:
            for name in self.input_names:
                self._context.set_tensor_address(name, self._buffers[name].device)
            self._external_inputs = False

    def _read_output_shapes(self) -> dict[str, Shape]:
        self.output_shapes = {
            n: tuple(int(d) for d in self._context.get_tensor_shape(n)) for n in self.output_names
        }
        return self.output_shapes

    # -- execution -------------------------------------------------------------------------------

    def _enqueue(self, stream: int) -> None:
        if not self._context.execute_async_v3(stream):
            raise BackendError(
                f"TensorRT execute_async_v3 failed for {self._engine.path} with input shapes"
                f" {self._shapes}; see the TensorRT log"
            )

    def _execute(self, key: Any, stream: int) -> None:
        """Run the context once on `stream`: by its CUDA graph where one was captured."""
        if not self.options.cuda_graphs:
            self._enqueue(stream)
            return
        graph = self._graphs.get(key)
        if graph is not None:
            _check(self._rt.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")
            return
        self._enqueue(stream)
        if key in self._seen and key not in self._uncapturable:
            self._capture(key)
        self._seen.add(key)

    def _capture(self, key: Any) -> None:
        """Capture one execute_async_v3 into a CUDA graph (recorded, not run)."""
        rt = self._rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(rt.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        ok = False
        try:
            ok = bool(self._context.execute_async_v3(self._stream_handle))
        finally:
            err, graph = rt.cudaStreamEndCapture(self._stream)
        if not ok or int(err) != 0 or graph is None or int(graph) == 0:
            if graph is not None and int(graph) != 0:
                rt.cudaGraphDestroy(graph)
            self._uncapturable.add(key)
            log.warning("CUDA graph capture failed for %s (%s); running without", key, err)
            return
        try:
            self._graphs[key] = _check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            rt.cudaGraphDestroy(graph)

    def run(
        self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs keyed by name for host inputs (copied in; the arrays are not kept).

        The batch is the inputs' first dimension; `batch_size`, when given, must equal it.
        Returned arrays are the caller's own (copied out of the pinned buffers).
        """
        self._set_device()
        arrays: dict[str, np.ndarray] = {}
        for name in self.input_names:
            try:
                array = np.ascontiguousarray(inputs[name])
            except KeyError:
                raise BackendError(
                    f"missing input {name!r} for {self._engine.path}: expected inputs"
                    f" {list(self.input_names)}, got {sorted(inputs)}{closest(name, inputs)}"
                ) from None
            if array.dtype != self.dtypes[name]:
                raise BackendError(
                    f"input {name!r} is {array.dtype}, the engine expects {self.dtypes[name]};"
                    " convert it in preprocessing (no silent casts)"
                )
            arrays[name] = array
        batches = {a.shape[0] if a.ndim else None for a in arrays.values()}
        if len(batches) != 1 or (batch_size is not None and batches != {batch_size}):
            shapes = {n: a.shape for n, a in arrays.items()}
            raise BackendError(
                f"inputs {shapes} do not share one batch dimension"
                + (f" equal to batch_size {batch_size}" if batch_size is not None else "")
            )
        shapes = {n: tuple(int(d) for d in a.shape) for n, a in arrays.items()}
        profile = self._choose_profile(shapes)
        self._prepare(profile, shapes)
        self._bind_own_inputs()
        h2d = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, array in arrays.items():
            buf = self._buffers[name]
            buf.view[: array.nbytes].view(array.dtype).reshape(array.shape)[...] = array
            _check(
                self._rt.cudaMemcpyAsync(buf.device, buf.host, array.nbytes, h2d, self._stream),
                f"cudaMemcpyAsync host->device of {name!r}",
            )
        self._execute((profile, tuple(shapes.items())), self._stream_handle)
        d2h = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        out_shapes = self._read_output_shapes()
        for name, shape in out_shapes.items():
            buf = self._buffers[name]
            nbytes = math.prod(shape) * buf.dtype.itemsize
            _check(
                self._rt.cudaMemcpyAsync(buf.host, buf.device, nbytes, d2h, self._stream),
                f"cudaMemcpyAsync device->host of {name!r}",
            )
        _check(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        outputs: dict[str, np.ndarray] = {}
        for name, shape in out_shapes.items():
            buf = self._buffers[name]
            nbytes = math.prod(shape) * buf.dtype.itemsize
            outputs[name] = buf.view[:nbytes].view(buf.dtype).reshape(shape).copy()
        return outputs

    def run_device(
        self,
        input_ptrs: Mapping[str, int],
        batch_size: int,
        stream: int,
        shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> dict[str, int]:
        """Run on device inputs (pointers from the C++ core) on `stream`; no host round trip.

        Returns the device pointers of the outputs (this executor's buffers: valid until its next
        call; their shapes are in `output_shapes`). Work is enqueued on `stream` and not waited
        for: synchronise `stream` before reading the outputs. `shapes` gives full input shapes
        where a non-batch dimension is dynamic (sequence buckets); otherwise they are
        (batch_size, *the profile's fixed dimensions).
        """
        self._set_device()
        missing = [n for n in self.input_names if n not in input_ptrs]
        if missing:
            raise BackendError(
                f"run_device: missing input pointers {missing}; expected {list(self.input_names)}"
            )
        full = self._device_shapes(batch_size, shapes)
        profile = self._choose_profile(full)
        self._prepare(profile, full)
        key = (profile, tuple(full.items()))
        if self.options.cuda_graphs:
            # A graph replays the addresses it was captured with: copy into our own buffers.
            self._bind_own_inputs()
            d2d = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
            for name in self.input_names:
                nbytes = math.prod(full[name]) * self.dtypes[name].itemsize
                _check(
                    self._rt.cudaMemcpyAsync(
                        self._buffers[name].device, int(input_ptrs[name]), nbytes, d2d, stream
                    ),
                    f"cudaMemcpyAsync device->device of {name!r}",
                )
        else:
            for name in self.input_names:
                if not self._context.set_tensor_address(name, int(input_ptrs[name])):
                    raise BackendError(f"TensorRT refused the device address of input {name!r}")
            self._external_inputs = True
        self._execute(key, int(stream))
        self._read_output_shapes()
        return {n: self._buffers[n].device for n in self.output_names}

    def _device_shapes(
        self, batch_size: int, shapes: Mapping[str, Sequence[int]] | None
    ) -> dict[str, Shape]:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise BackendError(f"run_device: batch_size {batch_size!r}: expected an integer >= 1")
        if shapes is not None:
            full = {n: tuple(int(d) for d in shapes[n]) for n in self.input_names if n in shapes}
            if len(full) == len(self.input_names):
                return full
        for p in self.profiles:
            ranges = self._ranges[p]
            if all(lo[1:] == hi[1:] for lo, hi in ranges.values()):
                return {n: (batch_size, *hi[1:]) for n, (_, hi) in ranges.items()}
        raise BackendError(
            "run_device: the inputs have dynamic non-batch dimensions; pass shapes= with every"
            f" input's full shape ({list(self.input_names)})"
        )


def _numpy_dtype(trt: Any, dtype: Any, name: str) -> np.dtype[Any]:
    try:
        result: np.dtype[Any] = np.dtype(trt.nptype(dtype))
    except TypeError as err:
        raise BackendError(
            f"tensor {name!r} is {dtype}, which has no numpy type; the engine's inputs and outputs"
            " must be float32/float16/int8/int32/int64/bool"
        ) from err
    return result


def _within(shape: Shape, lo: Shape, hi: Shape) -> bool:
    return len(shape) == len(lo) and all(a <= s <= b for s, a, b in zip(shape, lo, hi, strict=True))


# --- implicit INT8 calibration ------------------------------------------------------------------


class FixedBatches:
    """Re-batches calibration feeds into batches of one size (TensorRT's calibrator has one
    batch size): the first feed's; samples left over at the end are dropped."""

    def __init__(
        self, source: Callable[[], Iterable[Mapping[str, np.ndarray]]], names: Sequence[str]
    ) -> None:
        self._names = tuple(names)
        self._feeds = iter(source())
        first = next(self._feeds, None)
        if first is None:
            raise BackendError("the calibration source yielded no batches; it needs at least one")
        self._carry = self._take(first)
        self.batch = int(len(self._carry[self._names[0]]))
        self.shapes: dict[str, Shape] = {n: tuple(a.shape) for n, a in self._carry.items()}
        self.dropped = 0

    def _take(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self._names if n not in feed]
        if missing:
            raise BackendError(
                f"calibration feed lacks inputs {missing}: expected {list(self._names)},"
                f" got {sorted(feed)}"
            )
        return {n: np.asarray(feed[n]) for n in self._names}

    def next(self) -> dict[str, np.ndarray] | None:
        first = self._names[0]
        while len(self._carry[first]) < self.batch:
            feed = next(self._feeds, None)
            if feed is None:
                self.dropped = int(len(self._carry[first]))
                return None
            more = self._take(feed)
            try:
                self._carry = {n: np.concatenate([self._carry[n], more[n]]) for n in self._names}
            except ValueError as err:
                raise BackendError(
                    f"calibration feeds change shape beyond the batch axis ({err}); pad them to"
                    " one shape"
                ) from err
        batch = {n: a[: self.batch] for n, a in self._carry.items()}
        self._carry = {n: a[self.batch :] for n, a in self._carry.items()}
        return batch


def make_calibrator(
    method: str,
    source: Callable[[], Iterable[Mapping[str, np.ndarray]]] | None,
    input_names: Iterable[str],
    header: str,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Any:
    """A tensorrt.IInt8EntropyCalibrator2 (method "entropy") or IInt8MinMaxCalibrator ("minmax")
    fed from `source`; with `ranges` it hands TensorRT their cache and calibrates nothing.

    The class is made here so that tensorrt is imported only when calibrating. TensorRT calls
    get_batch from C++, which cannot carry a Python exception: an error is kept and re-raised
    by `raise_error()` after the build.
    """
    trt = require_tensorrt()
    rt = cudart()
    bases = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}
    base = getattr(trt, bases[method], None)
    if base is None:
        raise BackendError(
            f"this TensorRT ({trt.__version__}) has no {bases[method]}: implicit INT8 calibration"
            " is gone; build with recipe extra quantization='explicit'"
        )
    names = tuple(input_names)

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # type: ignore[misc]
            self.written: bytes | None = None
            self.error: BaseException | None = None
            self.batches = 0
            self._cache = to_trt_calibration_cache(ranges, header) if ranges is not None else None
            self._feeds = (
                FixedBatches(source, names) if source is not None and ranges is None else None
            )
            self.shapes = self._feeds.shapes if self._feeds is not None else None
            self._device: dict[str, int] = {}

        def get_batch_size(self) -> int:
            return self._feeds.batch if self._feeds is not None else 1

        def get_batch(self, tensor_names: list[str], *_: Any) -> list[int] | None:
            try:
                batch = self._feeds.next() if self._feeds is not None else None
                if batch is None:
                    return None
                pointers = []
                for name in tensor_names:
                    array = np.ascontiguousarray(batch[name])
                    if name not in self._device:
                        self._device[name] = int(_check(rt.cudaMalloc(array.nbytes), "cudaMalloc"))
                    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
                    _check(
                        rt.cudaMemcpy(self._device[name], array.ctypes.data, array.nbytes, kind),
                        f"cudaMemcpy of calibration input {name!r}",
                    )
                    pointers.append(self._device[name])
                self.batches += 1
                return pointers
            except BaseException as err:  # noqa: BLE001 - re-raised by raise_error()
                self.error = err
                return None

        def read_calibration_cache(self) -> bytes | None:
            return self._cache

        def write_calibration_cache(self, cache: Any) -> None:
            self.written = bytes(memoryview(cache))

        def raise_error(self) -> None:
            if self.error is not None:
                raise self.error
            if self._feeds is not None and self._feeds.dropped:
                log.info(
                    "calibration dropped the last %d samples (partial batch)", self._feeds.dropped
                )

        def require_written(self) -> bytes:
            if self.written is None:
                raise BackendError("TensorRT finished the build without writing calibration scales")
            return self.written

        def close(self) -> None:
            for pointer in self._device.values():
                rt.cudaFree(pointer)
            self._device.clear()

    return _Calibrator()
