"""The ONNX Runtime backend: engine folders, the build cache, INT8 calibration, the executor."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mlperf_trt import backends  # noqa: E402
from mlperf_trt.backends.base import EngineRecipe  # noqa: E402
from mlperf_trt.backends.calibration import (  # noqa: E402
    CALIBRATION_FORMAT,
    read_calibration_cache,
    write_calibration_cache,
)
from mlperf_trt.backends.ort import (  # noqa: E402
    CALIBRATION_FILE,
    MODEL_FILE,
    RECIPE_FILE,
    OrtBackend,
    OrtOptions,
    availability,
)
from mlperf_trt.errors import BackendError  # noqa: E402

BATCH = 16
# Calibration and test inputs: uniform in [-3, 3], so the input tensor's range is known.
INPUT_BOUND = 3.0


def tiny_cnn(seed: int = 0) -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv3x3 -> BatchNorm -> Relu -> Conv1x1 -> Relu -> GAP -> Gemm -> logits[N,10].

    He-initialised weights keep every layer's gain of order 1 (used by the INT8 error bound).
    """
    rng = np.random.default_rng(seed)

    def init(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(array.astype(np.float32), name)

    inits = [
        init("conv1.w", rng.standard_normal((8, 3, 3, 3)) * np.sqrt(2 / 27)),
        init("conv1.b", rng.standard_normal(8) * 0.1),
        init("bn.scale", 1 + 0.2 * rng.standard_normal(8)),
        init("bn.bias", 0.1 * rng.standard_normal(8)),
        init("bn.mean", 0.1 * rng.standard_normal(8)),
        init("bn.var", 1 + 0.2 * rng.random(8)),
        init("conv2.w", rng.standard_normal((8, 8, 1, 1)) * np.sqrt(2 / 8)),
        init("conv2.b", np.zeros(8)),
        init("fc.w", rng.standard_normal((10, 8)) * np.sqrt(1 / 8)),
        init("fc.b", np.zeros(10)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn1"]
        ),
        helper.make_node("Relu", ["bn1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def uniform_batches(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.uniform(-INPUT_BOUND, INPUT_BOUND, (BATCH, 3, 8, 8)).astype(np.float32)
        for _ in range(count)
    ]


CALIBRATION = uniform_batches(seed=1, count=16)


def calibration_source() -> Iterator[dict[str, np.ndarray]]:
    return ({"x": batch} for batch in CALIBRATION)


def recipe(precision: str = "fp32", batch: int = 4, **kw: object) -> EngineRecipe:
    return EngineRecipe("ort", "tiny", precision, (batch,), **kw)  # type: ignore[arg-type]


def reference_session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def int8_build(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    backend = OrtBackend(tmp_path_factory.mktemp("engines"), "testsys", "tiny")
    model = tiny_cnn()
    # min-max: the cache must then hold exactly the extremes seen (checked below).
    int8 = recipe("int8", calibration_hash="uniform-3", extra={"calibration_method": "minmax"})
    artifact = backend.build(model, int8, calibration=calibration_source)
    return backend, model, artifact


def test_availability_reports_onnxruntime_and_cpu_provider() -> None:
    ok, why = availability()
    assert ok
    assert why == f"onnxruntime {ort.__version__}, providers: CPUExecutionProvider"
    assert backends.availability("ort") == (ok, why)


def test_fp32_engine_runs_like_the_onnx_model(tmp_path: Path) -> None:
    model = tiny_cnn()
    backend = OrtBackend(tmp_path, "testsys", "tiny", OrtOptions(intra_op_threads=2))
    artifact = backend.build(model, recipe("fp32", batch=4))
    assert not artifact.cache_hit
    # An empty model_hash is filled with the sha256 of the deterministic serialisation.
    want_hash = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    assert artifact.recipe.model_hash == want_hash
    folder = backend.engine_dir(artifact.recipe)
    assert folder == tmp_path / "testsys" / "tiny" / f"ort-fp32-b4-{artifact.recipe.digest()[:10]}"
    assert re.fullmatch(r"ort-fp32-b4-[0-9a-f]{10}", folder.name)
    assert artifact.path == folder / MODEL_FILE

    record = json.loads((folder / RECIPE_FILE).read_text())
    assert record["digest"] == artifact.recipe.digest()
    assert record["onnxruntime"] == ort.__version__
    assert record["model_hash"] == want_hash and record["precision"] == "fp32"
    assert set(record["files"]) == {MODEL_FILE}
    assert (
        record["files"][MODEL_FILE]["sha256"]
        == hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    )

    executor = backend.load(artifact, device=0)
    assert executor.input_names == ("x",) and executor.output_names == ("logits",)
    reference = reference_session(model)
    for x in uniform_batches(seed=7, count=2):
        got = executor.run({"x": x})
        want = reference.run(None, {"x": x})[0]
        assert set(got) == {"logits"} and got["logits"].shape == (BATCH, 10)
        np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
    # A strided view (as a pooled buffer slice may be) gives the same answer as its copy.
    wide = uniform_batches(seed=8, count=1)[0].repeat(2, axis=3)[..., ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_allclose(
        executor.run({"x": wide})["logits"],
        reference.run(None, {"x": np.ascontiguousarray(wide)})[0],
        rtol=1e-5,
        atol=1e-6,
    )


def test_same_recipe_is_a_cache_hit_and_changes_build_elsewhere(tmp_path: Path) -> None:
    backend = OrtBackend(tmp_path, "testsys", "tiny")
    model = tiny_cnn()
    first = backend.build(model, recipe("fp32", batch=4))
    assert first.path is not None
    folder = first.path.parent
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    again = backend.build(model, recipe("fp32", batch=4))
    assert again.cache_hit and again.path == first.path
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing rewritten

    other_batch = backend.build(model, recipe("fp32", batch=8))
    other_model = backend.build(tiny_cnn(seed=1), recipe("fp32", batch=4))
    other_precision = backend.build(
        model, recipe("int8", batch=4, calibration_hash="c"), calibration=calibration_source
    )
    dirs = {a.path.parent for a in (first, other_batch, other_model, other_precision) if a.path}
    assert len(dirs) == 4
    assert not any(a.cache_hit for a in (other_batch, other_model, other_precision))
    assert other_batch.path is not None and other_batch.path.parent.name.startswith("ort-fp32-b8-")
    assert other_precision.path is not None
    assert other_precision.path.parent.name.startswith("ort-int8-b4-")

    # A folder whose listed file went missing is not a hit: it is rebuilt in place.
    first.path.unlink()
    rebuilt = backend.build(model, recipe("fp32", batch=4))
    assert not rebuilt.cache_hit and rebuilt.path == first.path and first.path.is_file()


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    backend = OrtBackend(tmp_path, "testsys", "tiny")

    def failing_source() -> Iterator[dict[str, np.ndarray]]:
        yield {"x": CALIBRATION[0]}
        yield {"x": CALIBRATION[1]}
        raise RuntimeError("calibration reader lost its files")

    r = recipe("int8", calibration_hash="c")
    with pytest.raises(RuntimeError, match="lost its files"):
        backend.build(tiny_cnn(), r, calibration=failing_source)
    bench_dir = tmp_path / "testsys" / "tiny"
    assert not list(bench_dir.rglob(RECIPE_FILE))
    assert list(bench_dir.iterdir()) == []  # no partial folder, no quantisation scratch left
    # The next build with a working source is a real build, not a hit on debris.
    artifact = backend.build(tiny_cnn(), r, calibration=calibration_source)
    assert not artifact.cache_hit and artifact.path is not None
    assert (artifact.path.parent / RECIPE_FILE).is_file()


def test_int8_needs_the_calibration_set(tmp_path: Path) -> None:
    backend = OrtBackend(tmp_path, "testsys", "tiny")
    with pytest.raises(BackendError, match="INT8 needs the calibration set"):
        backend.build(tiny_cnn(), recipe("int8"))
    with pytest.raises(BackendError, match="yielded no batches"):
        backend.build(
            tiny_cnn(), recipe("int8", calibration_hash="c"), calibration=lambda: iter(())
        )
    assert not list(tmp_path.rglob(RECIPE_FILE))


def test_int8_calibration_cache_holds_the_ranges_seen(int8_build) -> None:  # type: ignore[no-untyped-def]
    backend, model, artifact = int8_build
    folder = artifact.path.parent
    assert sorted(p.name for p in folder.iterdir()) == [CALIBRATION_FILE, MODEL_FILE, RECIPE_FILE]
    cache = read_calibration_cache(folder / CALIBRATION_FILE)
    assert cache.method == "minmax"
    assert cache.model_hash == artifact.recipe.model_hash
    assert cache.calibration_hash == "uniform-3"
    for r in cache.tensors.values():
        assert r.scale == max(abs(r.min), abs(r.max)) / 127

    # The input tensor: exactly the min/max of the calibration batches (uniform in [-3, 3]).
    x = cache.tensors["x"]
    stacked = np.stack(CALIBRATION)
    assert x.min == float(stacked.min()) and x.max == float(stacked.max())
    assert x.scale == pytest.approx(INPUT_BOUND / 127, rel=1e-3)
    # An inner tensor: the ReLU output of the second conv, recomputed in FP32.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info("r2", TensorProto.FLOAT, None))
    session = reference_session(probe)
    r2_max = max(float(session.run(["r2"], {"x": b})[0].max()) for b in CALIBRATION)
    assert cache.tensors["r2"].min == 0.0
    assert cache.tensors["r2"].max == pytest.approx(r2_max, rel=1e-6)

    # The quantised model used these ranges: its input QuantizeLinear has the uint8 scale of
    # [min(x.min, 0), max(x.max, 0)].
    quantised = onnx.load(str(artifact.path))
    inits = {i.name: numpy_helper.to_array(i) for i in quantised.graph.initializer}
    q_input = next(
        n for n in quantised.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"
    )
    assert float(inits[q_input.input[1]]) == pytest.approx((x.max - x.min) / 255, rel=1e-6)
    assert inits[q_input.input[2]].dtype == np.uint8  # the QDQ U8S8 layout

    record = json.loads((folder / RECIPE_FILE).read_text())
    assert record["quantization"]["layout"]["activation_type"] == "QUInt8"
    assert set(record["files"]) == {MODEL_FILE, CALIBRATION_FILE}


def test_int8_outputs_stay_close_to_fp32(int8_build) -> None:  # type: ignore[no-untyped-def]
    backend, model, artifact = int8_build
    executor = backend.load(artifact)
    reference = reference_session(model)
    logits = read_calibration_cache(artifact.path.parent / CALIBRATION_FILE).tensors["logits"]
    out_range = logits.max - logits.min
    # Bound: on the calibration batches no activation leaves its calibrated range, so the only
    # error is rounding. Each quantised tensor is off by at most half a step, 1/510 of its range;
    # the path x -> r1 -> r2 -> gap -> logits has 5 quantisation points and He-initialised layers
    # of gain ~1, so the errors add up to about 5/510 ~ 1% of the output range. We allow 3% for
    # gains above 1 and the per-channel weight rounding (1/254 of each channel's largest weight);
    # a wrong scale, zero point or clipped range is off by tens of percent. Measured: 0.9%.
    worst = 0.0
    for batch in CALIBRATION:
        got = executor.run({"x": batch})["logits"]
        want = reference.run(None, {"x": batch})[0]
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= 0.03 * out_range, f"max error {worst / out_range:.2%} of the output range"
    # On fresh inputs some activations exceed the calibrated ranges and are clipped, so only the
    # decision is checked: top-1 agrees for at least 95% of 320 samples (measured: 99%).
    agree = [
        executor.run({"x": b})["logits"].argmax(1) == reference.run(None, {"x": b})[0].argmax(1)
        for b in uniform_batches(seed=11, count=20)
    ]
    assert np.mean(agree) >= 0.95


def test_second_int8_build_skips_calibration(int8_build) -> None:  # type: ignore[no-untyped-def]
    backend, model, artifact = int8_build

    def must_not_run() -> Iterator[dict[str, np.ndarray]]:
        raise AssertionError("a cache hit must not read the calibration set")

    again = backend.build(model, artifact.recipe, calibration=must_not_run)
    assert again.cache_hit and again.path == artifact.path


def test_executor_rejects_a_missing_input(int8_build) -> None:  # type: ignore[no-untyped-def]
    backend, _, artifact = int8_build
    executor = backend.load(artifact)
    with pytest.raises(BackendError, match=r"missing input 'x'.*got \['image'\]"):
        executor.run({"image": CALIBRATION[0]})
    with pytest.raises(BackendError, match="onnxruntime failed"):
        executor.run({"x": CALIBRATION[0].astype(np.float64)})


def test_unsupported_precisions_name_the_supported_ones(tmp_path: Path) -> None:
    backend = OrtBackend(tmp_path, "testsys", "tiny")
    for precision in ("fp16", "bf16", "fp8"):
        with pytest.raises(BackendError, match=r"supported precisions are fp32, int8"):
            backend.build(tiny_cnn(), recipe(precision))
    with pytest.raises(BackendError, match="backend 'trt'"):
        backend.build(tiny_cnn(), EngineRecipe("trt", "tiny", "fp32", (4,)))
    assert not any(tmp_path.iterdir())


def test_calibration_cache_round_trip_and_malformed_files(tmp_path: Path) -> None:
    path = tmp_path / CALIBRATION_FILE
    written = write_calibration_cache(path, "entropy", "m" * 64, "c" * 64, {"a": (-1.0, 2.54)})
    assert written.tensors["a"].scale == 2.54 / 127
    assert read_calibration_cache(path) == written
    doc = json.loads(path.read_text())
    assert doc["format"] == CALIBRATION_FORMAT

    def broken(edit: dict[str, object], match: str) -> None:
        bad = tmp_path / "bad.cache"
        bad.write_text(json.dumps({**doc, **edit}))
        with pytest.raises(BackendError, match=match) as info:
            read_calibration_cache(bad)
        assert str(bad) in str(info.value)

    broken({"format": "trt-calib"}, "field 'format'")
    broken({"method": "kl"}, "unknown calibration method 'kl'")
    broken({"tensors": {"a": {"min": -1.0, "max": 2.54, "scale": 0.5}}}, "field 'scale'")
    broken({"tensors": {"a": {"min": -1.0, "scale": 0.02}}}, "field 'max'")
    broken({"model_hash": 3}, "field 'model_hash' is int")
    without = dict(doc)
    del without["calibration_hash"]
    (tmp_path / "bad.cache").write_text(json.dumps(without))
    with pytest.raises(BackendError, match="missing field 'calibration_hash'"):
        read_calibration_cache(tmp_path / "bad.cache")
    (tmp_path / "bad.cache").write_text("{not json")
    with pytest.raises(BackendError, match="not readable JSON"):
        read_calibration_cache(tmp_path / "bad.cache")
    with pytest.raises(BackendError, match="non-finite"):
        write_calibration_cache(path, "minmax", "m", "c", {"a": (0.0, float("inf"))})


def test_calibration_hash_is_filled_from_the_feeds(tmp_path: Path) -> None:
    backend = OrtBackend(tmp_path, "testsys", "tiny")
    a = backend.build(tiny_cnn(), recipe("int8"), calibration=calibration_source)
    assert len(a.recipe.calibration_hash) == 64
    assert a.path is not None
    assert read_calibration_cache(a.path.parent / CALIBRATION_FILE).calibration_hash == (
        a.recipe.calibration_hash
    )

    def other_source() -> Iterator[dict[str, np.ndarray]]:
        return ({"x": b} for b in CALIBRATION[:8])

    b = backend.build(tiny_cnn(), recipe("int8"), calibration=other_source)
    assert b.recipe.calibration_hash != a.recipe.calibration_hash and b.path != a.path


def test_entropy_default_keeps_the_classifier_head_in_float(tmp_path: Path) -> None:
    """The default INT8 build: KL calibration over single samples, Gemm/ArgMax left in float."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 4, 1, 1)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 5)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Reshape", ["x", "s4"], ["x4"], name="to4d"),
        helper.make_node("Conv", ["x4", "w1"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w2"], ["logits"], name="fc"),
        helper.make_node("ArgMax", ["logits"], ["y"], axis=1, keepdims=0, name="argmax"),
    ]
    s4 = numpy_helper.from_array(np.array([-1, 4, 1, 1], np.int64), "s4")
    graph = helper.make_graph(nodes, "head", [x], [y], [w1, w2, s4])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    batches = [{"x": rng.standard_normal((n, 4)).astype(np.float32)} for n in (16, 16, 5)]
    artifact = OrtBackend(tmp_path, "testsys", "head").build(
        model, EngineRecipe("ort", "head", "int8", (16,)), calibration=lambda: iter(batches)
    )
    quantised = onnx.load(str(artifact.path))
    assert read_calibration_cache(artifact.path.parent / CALIBRATION_FILE).method == "entropy"
    gemm = next(n for n in quantised.graph.node if n.op_type == "Gemm")
    producers = {o: n.op_type for n in quantised.graph.node for o in n.output}
    assert producers[gemm.input[0]] != "DequantizeLinear"  # the head reads float activations
    assert any(n.op_type == "QuantizeLinear" for n in quantised.graph.node)  # the body does not
