"""The TensorRT backend: its pure parts everywhere, engines and executors where TensorRT runs.

Unmarked tests need neither TensorRT nor a GPU: availability messages, the recipe -> flags and
profiles rules, --gpus parsing, calib.cache <-> TensorRT cache conversion, the builder's
TensorRT calls against a recording stand-in of the `tensorrt` module, and cuda-python error
checking. `trt` tests build and run real engines (skipped where TensorRT or a GPU is missing).
"""

from __future__ import annotations

import ctypes
import json
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlperf_trt import backends
from mlperf_trt.backends.base import EngineRecipe
from mlperf_trt.backends.calibration import read_calibration_cache, write_calibration_cache
from mlperf_trt.backends.trt import INSTALL_HINT, availability, devices_from_flag
from mlperf_trt.backends.trt.recipe import (
    TrtOptions,
    calibration_method,
    engine_dir_name,
    from_trt_calibration_cache,
    precision_flags,
    profiles_for,
    quantization_mode,
    seq_buckets,
    timing_cache_path,
    to_trt_calibration_cache,
    trt_cache_header,
    trt_version_code,
)
from mlperf_trt.errors import BackendError

RESNET_INPUT = ("input_tensor:0", ("N", 3, 224, 224))
BERT_INPUTS = [(n, ("N", 384)) for n in ("input_ids", "input_mask", "segment_ids")]


@pytest.fixture(scope="module")
def resnet_tiny() -> Any:
    from mlperf_trt.models import build_model

    return build_model("resnet50", size="tiny")


def recipe(
    precision: str = "fp32", batch_sizes: tuple[int, ...] = (8,), **extra: Any
) -> EngineRecipe:
    return EngineRecipe("trt", "resnet50", precision, batch_sizes, model_hash="m", extra=extra)


# --- availability ---------------------------------------------------------------------------


def _fake_module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def test_availability_names_tensorrt_and_the_install_command_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    ok, why = availability()
    assert not ok
    assert "tensorrt" in why and "pip install 'mlperf-trt[trt]'" in why
    assert "NVIDIA GPU" in why
    # the registry gives the same answer, and `auto` falls back past trt
    assert backends.availability("trt") == (False, why)
    name, reason = backends.choose_backend("auto")
    assert name != "trt" and "trt unusable" in reason


def test_availability_here_says_what_is_missing() -> None:
    ok, why = availability()
    if ok:  # a machine with TensorRT and a GPU
        assert why.startswith("tensorrt ") and "CUDA device" in why
    else:
        assert "pip install 'mlperf-trt[trt]'" in why or "CUDA device" in why


def test_availability_names_cuda_python_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_module("tensorrt", __version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "cuda.cudart", None)
    ok, why = availability()
    assert not ok and "cuda-python" in why and INSTALL_HINT in why


def test_availability_rejects_tensorrt_8_and_reports_a_missing_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_module("tensorrt", __version__="8.6.1"))
    ok, why = availability()
    assert not ok and "8.6.1" in why and "too old" in why

    class NoDriver(int):
        name = "cudaErrorInsufficientDriver"

    runtime = _fake_module("cuda.bindings.runtime", cudaGetDeviceCount=lambda: (NoDriver(35), 0))
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_module("tensorrt", __version__="10.3.0"))
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    ok, why = availability()
    assert not ok and "cudaErrorInsufficientDriver" in why and "NVIDIA GPU" in why


def test_importing_the_backend_does_not_import_tensorrt() -> None:
    code = (
        "import sys, mlperf_trt.backends.trt as t, mlperf_trt.backends.trt.builder,"
        " mlperf_trt.backends.trt.runtime; t.TrtOptions; t.TrtBackend; t.TrtExecutor;"
        " print('tensorrt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- recipe: flags, profiles, names ---------------------------------------------------------


def test_precision_flags() -> None:
    assert precision_flags("fp32").set == () and precision_flags("fp32").clear == ("TF32",)
    assert precision_flags("fp16").set == ("FP16",)
    assert precision_flags("bf16").set == ("BF16",)
    assert precision_flags("int8").set == ("INT8", "FP16")
    assert precision_flags("fp8").set == ("FP8", "FP16")
    with pytest.raises(BackendError, match="'fp16'"):
        precision_flags("fp61")


def test_profiles_follow_the_batch_sizes_and_streams() -> None:
    profiles = profiles_for([RESNET_INPUT], (1, 8, 32), streams=2)
    assert [(p.stream, p.seq_len) for p in profiles] == [(0, None), (1, None)]
    for p in profiles:
        (shape,) = p.shapes
        assert shape.name == "input_tensor:0"
        assert shape.min == (1, 3, 224, 224)
        assert shape.opt == shape.max == (32, 3, 224, 224)
    (single,) = profiles_for([RESNET_INPUT], (4,))
    assert single.shapes[0].max == (4, 3, 224, 224)
    assert json.loads(json.dumps(single.to_json()))["shapes"]["input_tensor:0"]["opt"] == [
        4,
        3,
        224,
        224,
    ]


def test_seq_buckets_give_one_profile_per_bucket_and_stream() -> None:
    profiles = profiles_for(BERT_INPUTS, (16,), streams=2, buckets=(128, 256, 384))
    assert [(p.stream, p.seq_len) for p in profiles] == [
        (s, b) for s in (0, 1) for b in (128, 256, 384)
    ]
    ranges = [(p.shapes[0].min, p.shapes[0].opt, p.shapes[0].max) for p in profiles[:3]]
    assert ranges == [
        ((1, 1), (16, 128), (16, 128)),
        ((1, 129), (16, 256), (16, 256)),
        ((1, 257), (16, 384), (16, 384)),
    ]
    assert {s.name for s in profiles[0].shapes} == {n for n, _ in BERT_INPUTS}
    # a named dynamic axis takes the buckets too, and needs a size without them
    llm = [("input_ids", ("N", "seq"))]
    assert profiles_for(llm, (4,), buckets=(64,))[0].shapes[0].max == (4, 64)
    assert profiles_for(llm, (4,), dims={"seq": 2048})[0].shapes[0].min == (1, 1)
    with pytest.raises(BackendError, match="'seq'.*dims"):
        profiles_for(llm, (4,))
    with pytest.raises(BackendError, match="fixed sequence length 384"):
        profiles_for(BERT_INPUTS, (4,), buckets=(256, 512))
    with pytest.raises(BackendError, match="fixed batch dimension 1"):
        profiles_for([("x", (1, 3, 8, 8))], (8,))
    assert profiles_for([("x", (8, 3))], (8,))[0].shapes[0].min == (8, 3)


def test_recipe_extras_are_checked() -> None:
    assert seq_buckets(recipe(seq_buckets=[128, 384])) == (128, 384)
    assert seq_buckets(recipe()) == ()
    for bad in ([384, 128], [0], "128", []):
        with pytest.raises(BackendError, match="seq_buckets"):
            seq_buckets(recipe(seq_buckets=bad))
    with pytest.raises(BackendError, match="batch size"):
        profiles_for([RESNET_INPUT], (0,))


def test_quantization_mode_and_calibration_method() -> None:
    assert quantization_mode(recipe("fp16"), True) is None
    assert quantization_mode(recipe("int8"), True) == "implicit"
    assert quantization_mode(recipe("int8"), False) == "explicit"  # TensorRT without IInt8*
    assert quantization_mode(recipe("fp8"), True) == "explicit"
    with pytest.raises(BackendError, match="explicit"):
        quantization_mode(recipe("int8", quantization="implicit"), False)
    with pytest.raises(BackendError, match="FP8"):
        quantization_mode(recipe("fp8", quantization="implicit"), True)
    with pytest.raises(BackendError, match="only\\s+applies"):
        quantization_mode(recipe("fp16", quantization="explicit"), True)
    assert calibration_method(recipe("int8"), "implicit") == "entropy"
    assert calibration_method(recipe("int8", calibration_method="minmax"), "implicit") == "minmax"
    assert calibration_method(recipe("int8", calibration_method="percentile"), "explicit") == (
        "percentile"
    )
    with pytest.raises(BackendError, match="percentile needs"):
        calibration_method(recipe("int8", calibration_method="percentile"), "implicit")


def test_engine_folder_and_timing_cache_paths(tmp_path: Path) -> None:
    r = recipe("int8", (1, 16))
    assert engine_dir_name(r) == f"trt-int8-b16-{r.digest()[:10]}"
    assert timing_cache_path(tmp_path, "1xH100") == tmp_path / "1xH100" / "timing.cache"
    with pytest.raises(BackendError, match="0-5"):
        TrtOptions(builder_optimization_level=7)
    with pytest.raises(BackendError, match="MiB"):
        TrtOptions(workspace_mib=0)


def test_devices_from_flag() -> None:
    assert devices_from_flag(None, 2) == (0, 1)
    assert devices_from_flag("all", 3) == (0, 1, 2)
    assert devices_from_flag(" 1, 0", 2) == (1, 0)
    with pytest.raises(BackendError, match="device 2 does not exist"):
        devices_from_flag("0,2", 2)
    with pytest.raises(BackendError, match="listed twice"):
        devices_from_flag("1,1", 2)
    with pytest.raises(BackendError, match="'x' is not a device index"):
        devices_from_flag("0,x", 2)
    with pytest.raises(BackendError, match="no CUDA device"):
        devices_from_flag(None, 0)


# --- calib.cache <-> TensorRT's calibration cache -------------------------------------------


def test_trt_cache_header_version_codes() -> None:
    assert trt_version_code("10.3.0.26") == 100300
    assert trt_version_code("8.6.1") == 8601
    assert trt_cache_header("10.14.1", "entropy") == "TRT-101401-EntropyCalibration2"
    assert trt_cache_header("10.0.1", "minmax") == "TRT-100001-MinMaxCalibration"


def test_trt_cache_encodes_scales_as_big_endian_float_bits() -> None:
    data = to_trt_calibration_cache({"x": (-127.0, 3.0), "y": (0.0, 0.0)}, "TRT-100300-X")
    assert data == b"TRT-100300-X\nx: 3f800000\ny: 00000000\n"  # 127/127 = 1.0f
    # a line as TensorRT writes it (0x3c008912 is 0.0078442...; range = 127 * scale)
    header, ranges = from_trt_calibration_cache(b"TRT-8601-EntropyCalibration2\ndata: 3c008912\n")
    scale = float(np.array([0x3C008912], dtype=">u4").view(">f4")[0])
    assert header == "TRT-8601-EntropyCalibration2"
    assert ranges == {"data": (-127 * scale, 127 * scale)}
    with pytest.raises(BackendError, match="header"):
        from_trt_calibration_cache(b"data: 3c008912\n")
    with pytest.raises(BackendError, match="line 2"):
        from_trt_calibration_cache(b"TRT-8601-EntropyCalibration2\ndata 3c008912\n")


def test_calibration_cache_round_trips_through_tensorrts_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ranges = {
        f"/layer{i}/Relu_output_0": (float(-abs(a)), float(abs(b)))
        for i, (a, b) in enumerate(rng.standard_normal((20, 2)) * 10)
    }
    ranges["input_tensor:0"] = (-2.5, 2.75)
    ours = write_calibration_cache(tmp_path / "calib.cache", "entropy", "m", "c", ranges)
    data = to_trt_calibration_cache(
        read_calibration_cache(tmp_path / "calib.cache").ranges(), "H-1"
    )
    _, back = from_trt_calibration_cache(
        b"TRT-100300-EntropyCalibration2\n" + data.split(b"\n", 1)[1]
    )
    assert back.keys() == ranges.keys()
    for name, (lo, hi) in back.items():
        want = np.float32(ours.tensors[name].scale)  # TensorRT stores float32 scales
        assert hi == pytest.approx(127 * float(want), rel=1e-12) and lo == -hi
        bits = struct.pack(">f", ours.tensors[name].scale).hex()
        assert f"{name}: {bits}".encode() in data
    # and the TensorRT ranges make a valid calib.cache again, with the same scales
    again = write_calibration_cache(tmp_path / "again.cache", "entropy", "m", "c", back)
    reread = read_calibration_cache(tmp_path / "again.cache")
    for name, entry in reread.tensors.items():
        assert entry.scale == pytest.approx(ours.tensors[name].scale, rel=1e-6)
        assert again.tensors[name] == entry


# --- the builder's TensorRT calls, against a recording stand-in ------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> Any:
            self.calls.append((name, *args))
            return 0 if name == "add_optimization_profile" else True

        return record


class _FakeConfig(_Recorder):
    builder_optimization_level = -1


class _FakeBuilder(_Recorder):
    def create_builder_config(self) -> _FakeConfig:
        self.config = _FakeConfig()
        return self.config

    def create_optimization_profile(self) -> _Recorder:
        profile = _Recorder()
        self.calls.append(("profile", profile))
        return profile


def _fake_trt(flags: tuple[str, ...] = ("FP16", "INT8", "TF32", "BF16", "FP8")) -> types.ModuleType:
    return _fake_module(
        "tensorrt",
        __version__="10.3.0",
        BuilderFlag=types.SimpleNamespace(**{f: f"flag:{f}" for f in flags}),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="pool:workspace"),
        IInt8EntropyCalibrator2=object,
    )


def test_make_config_sets_flags_workspace_level_profiles_and_timing_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlperf_trt.backends.trt.builder import make_config

    monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt())
    profiles = profiles_for([RESNET_INPUT], (8,), streams=2)
    builder = _FakeBuilder()
    options = TrtOptions(builder_optimization_level=4, workspace_mib=512)
    config = make_config(builder, recipe("fp32"), options, profiles=profiles, timing_cache=b"tc")
    calls = builder.config.calls
    assert ("clear_flag", "flag:TF32") in calls
    assert not [c for c in calls if c[0] == "set_flag"]
    assert ("set_memory_pool_limit", "pool:workspace", 512 << 20) in calls
    assert config.builder_optimization_level == 4
    set_shapes = [p.calls for name, p in builder.calls if name == "profile"]
    assert (
        set_shapes
        == [[("set_shape", "input_tensor:0", (1, 3, 224, 224), (8, 3, 224, 224), (8, 3, 224, 224))]]
        * 2
    )
    assert len([c for c in calls if c[0] == "add_optimization_profile"]) == 2
    assert ("create_timing_cache", b"tc") in calls

    builder = _FakeBuilder()
    make_config(builder, recipe("int8"), TrtOptions(timing_cache=False), profiles=profiles)
    assert [c[1] for c in builder.config.calls if c[0] == "set_flag"] == ["flag:INT8", "flag:FP16"]
    assert not [c for c in builder.config.calls if c[0] == "create_timing_cache"]

    monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt(flags=("FP16",)))
    with pytest.raises(BackendError, match="BuilderFlag.BF16"):
        make_config(_FakeBuilder(), recipe("bf16"), TrtOptions(), profiles=profiles)


def test_parser_errors_name_the_onnx_node(
    monkeypatch: pytest.MonkeyPatch, resnet_tiny: Any
) -> None:
    from mlperf_trt.backends.trt import builder as trt_builder

    class Error:
        def node(self) -> int:
            return 2

        def desc(self) -> str:
            return "unsupported attribute"

    class Parser:
        num_errors = 1

        def __init__(self, network: Any, logger: Any) -> None:
            pass

        def parse(self, data: bytes) -> bool:
            return False

        def get_error(self, i: int) -> Error:
            return Error()

    fake = _fake_trt()
    fake.Builder = lambda logger: types.SimpleNamespace(create_network=lambda flags: "net")
    fake.OnnxParser = Parser
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_builder, "make_logger", lambda verbose=False: object())
    model = resnet_tiny
    node = model.graph.node[2]
    with pytest.raises(BackendError, match="unsupported attribute") as info:
        trt_builder.parse_onnx(model)
    assert f"node 2 {node.name!r} ({node.op_type})" in str(info.value)


def test_resolve_fills_what_decides_the_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, resnet_tiny: Any
) -> None:
    from mlperf_trt.backends.trt.builder import TrtBackend, model_inputs

    monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt())
    model = resnet_tiny
    assert model_inputs(model) == [RESNET_INPUT]
    backend = TrtBackend(tmp_path, "sys", "resnet50", TrtOptions(workspace_mib=256))
    plain = EngineRecipe("trt", "resnet50", "fp16", (8,))
    r = backend.resolve(model, plain)
    assert r.backend_version == "10.3.0" and len(r.model_hash) == 64
    assert dict(r.extra) == {"streams": 1, "builder_optimization_level": 3, "workspace_mib": 256}
    assert backend.engine_dir(r).name == f"trt-fp16-b8-{r.digest()[:10]}"
    with pytest.raises(BackendError, match="calibration set"):
        backend.resolve(model, EngineRecipe("trt", "resnet50", "int8", (8,)))
    feeds = [{"input_tensor:0": np.ones((2, 3, 224, 224), np.float32)}]
    q = backend.resolve(model, EngineRecipe("trt", "resnet50", "int8", (8,)), lambda: iter(feeds))
    assert q.extra["quantization"] == "implicit" and q.extra["calibration_method"] == "entropy"
    assert len(q.calibration_hash) == 64
    given = backend.resolve(
        model, EngineRecipe("trt", "resnet50", "int8", (8,)), ranges={"a": (0, 1)}
    )
    assert given.calibration_hash.startswith("ranges:") and given.digest() != q.digest()
    with pytest.raises(BackendError, match="backend 'ort'"):
        backend.resolve(model, EngineRecipe("ort", "resnet50", "fp32", (8,)))


# --- runtime helpers that need no GPU --------------------------------------------------------


def test_cuda_errors_become_backend_errors() -> None:
    pytest.importorskip("cuda.bindings.runtime")
    from mlperf_trt.backends.trt import cudart
    from mlperf_trt.backends.trt.runtime import _check

    # no such device anywhere (cudaErrorInvalidDevice on a GPU machine, a driver error elsewhere)
    with pytest.raises(BackendError, match=r"cudaSetDevice\(1000000\) failed: cudaError"):
        _check(cudart().cudaSetDevice(1_000_000), "cudaSetDevice(1000000)")

    class Ok(int):
        name = "cudaSuccess"

    assert _check((Ok(0), 42), "x") == 42 and _check((Ok(0),), "x") is None


def test_host_view_writes_through_to_the_memory() -> None:
    from mlperf_trt.backends.trt.runtime import host_view

    raw = (ctypes.c_uint8 * 16)()
    view = host_view(ctypes.addressof(raw), 16)
    view.view(np.float32)[:] = [1.0, 2.0, 3.0, 4.0]
    assert struct.unpack("<4f", bytes(raw)) == (1.0, 2.0, 3.0, 4.0)


def test_calibration_feeds_are_rebatched_to_the_first_batch_size() -> None:
    from mlperf_trt.backends.trt.runtime import FixedBatches

    sizes = [4, 3, 6, 2]
    start = np.cumsum([0, *sizes])
    feeds = [
        {"x": np.arange(a, b, dtype=np.float32)[:, None]}
        for a, b in zip(start[:-1], start[1:], strict=True)
    ]
    batches = FixedBatches(lambda: iter(feeds), ["x"])
    assert batches.batch == 4 and batches.shapes == {"x": (4, 1)}
    got = []
    while (b := batches.next()) is not None:
        got.append(b["x"][:, 0].tolist())
    # 15 samples in batches of 4 -> 3 batches, in order; the last 3 samples make no full batch
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert batches.dropped == 3
    with pytest.raises(BackendError, match="lacks inputs"):
        FixedBatches(lambda: iter([{"y": np.zeros(2)}]), ["x"])


# --- real engines (TensorRT and a GPU) -------------------------------------------------------


def _ort_reference(model: Any, batch: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input_tensor:0": batch}), strict=True))


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)


# Tolerances against ONNX Runtime FP32 on the softmax output: FP32 with TF32 off differs only by
# summation order (1e-5); FP16 keeps ~3 significant digits through the tiny network.
TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3}


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime_and_rebuild_is_a_cache_hit(
    precision: str, resnet_tiny: Any, tmp_path: Path
) -> None:
    from mlperf_trt.backends.trt import TrtBackend

    backend = TrtBackend(tmp_path, "testsys", "resnet50")
    r = EngineRecipe("trt", "resnet50", precision, (8,))
    artifact = backend.build(resnet_tiny, r)
    assert not artifact.cache_hit and artifact.path is not None and artifact.path.is_file()
    record = json.loads((artifact.path.parent / "recipe.json").read_text())
    assert record["digest"] == artifact.recipe.digest() and "engine.plan" in record["files"]
    assert backend.timing_cache_path().is_file()
    again = backend.build(resnet_tiny, r)
    assert again.cache_hit and again.path == artifact.path

    batch = _batch(5)  # below the max batch: the profile's dynamic range
    want = _ort_reference(resnet_tiny, batch)
    with backend.load(artifact, device=0) as executor:
        got = executor.run({"input_tensor:0": batch})
    assert got["softmax_tensor:0"].shape == (5, 1001)
    np.testing.assert_allclose(
        got["softmax_tensor:0"], want["softmax_tensor:0"], atol=TOLERANCE[precision], rtol=0
    )
    top2 = np.sort(want["softmax_tensor:0"], axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCE[precision]  # no near-tie to flip
    np.testing.assert_array_equal(got["ArgMax:0"][clear], want["ArgMax:0"][clear])


@pytest.mark.trt
def test_cuda_graphs_and_device_pointers_give_identical_outputs(
    resnet_tiny: Any, tmp_path: Path
) -> None:
    from mlperf_trt.backends.trt import TrtBackend, cudart
    from mlperf_trt.backends.trt.runtime import _check

    r = EngineRecipe("trt", "resnet50", "fp32", (8,))
    plain_backend = TrtBackend(tmp_path, "testsys", "resnet50", TrtOptions(cuda_graphs=False))
    artifact = plain_backend.build(resnet_tiny, r)
    graph_backend = TrtBackend(tmp_path, "testsys", "resnet50", TrtOptions(cuda_graphs=True))
    batches = [_batch(8, 1), _batch(3, 2)]
    with plain_backend.load(artifact, 0) as plain, graph_backend.load(artifact, 0) as graphed:
        for batch in batches:
            want = plain.run({"input_tensor:0": batch})
            for _ in range(3):  # first run, capture, replay
                got = graphed.run({"input_tensor:0": batch})
                for name, value in want.items():
                    np.testing.assert_array_equal(got[name], value)
        assert len(graphed._graphs) == 2  # one graph per input shape

        rt = cudart()
        batch = batches[0]
        device_in = _check(rt.cudaMalloc(batch.nbytes), "cudaMalloc")
        h2d, d2h = (
            rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        _check(rt.cudaMemcpy(device_in, batch.ctypes.data, batch.nbytes, h2d), "cudaMemcpy")
        stream = _check(rt.cudaStreamCreate(), "cudaStreamCreate")
        try:
            for executor in (plain, graphed):
                pointers = executor.run_device({"input_tensor:0": int(device_in)}, 8, int(stream))
                _check(rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
                out = np.empty((8, 1001), np.float32)
                _check(
                    rt.cudaMemcpy(out.ctypes.data, pointers["softmax_tensor:0"], out.nbytes, d2h),
                    "cudaMemcpy",
                )
                np.testing.assert_array_equal(
                    out, plain.run({"input_tensor:0": batch})["softmax_tensor:0"]
                )
        finally:
            rt.cudaFree(device_in)
            rt.cudaStreamDestroy(stream)
