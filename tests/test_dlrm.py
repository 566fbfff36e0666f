"""DLRMv2: the aggregation trace, the day_23 reader, the model split, the AUC metric."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from sklearn.metrics import roc_auc_score

from mlperf_trt.accuracy import criteo as auc_metric
from mlperf_trt.benchmarks.dlrm import EMBEDDING_ROWS, MULTI_HOT_SIZES
from mlperf_trt.data import criteo
from mlperf_trt.data.criteo import (
    DENSE_FILE,
    LABELS_FILE,
    SPARSE_FILE,
    Criteo,
    CriteoTruth,
    aggregation_trace,
    check_ids,
    open_raw,
)
from mlperf_trt.errors import AccuracyError, DataError, ModelError
from mlperf_trt.models import build_model, check_model
from mlperf_trt.models import dlrm as model

VALIDATION_ROWS = 89_137_319  # SPEC §2.8


# ------------------------------------------------------------------------------- trace


def _trace_one_at_a_time(n_rows: int, seed: int = 123) -> np.ndarray:
    """The reference loop, spelled as in multihot_criteo.py (global legacy seeding)."""
    np.random.seed(seed)
    offsets, qo = [0], 0
    while qo < n_rows:
        qo = min(qo + criteo.QUANTILES[np.random.randint(low=0, high=20)], n_rows)
        offsets.append(qo)
    return np.array(offsets, dtype=np.int64)


def test_trace_matches_reference_procedure() -> None:
    offsets = aggregation_trace(VALIDATION_ROWS)
    assert len(offsets) - 1 == 330_067  # SPEC §2.0, §2.8
    assert offsets[0] == 0 and offsets[-1] == VALIDATION_ROWS
    assert np.all(np.diff(offsets) > 0)
    # tools/dist_trace_verification.txt, the first lines
    sizes = [200, 200, 200, 200, 500, 700, 200, 100, 100, 500, 300, 200, 100, 300, 100, 300, 700]
    np.testing.assert_array_equal(np.diff(offsets[: len(sizes) + 1]), sizes)
    np.testing.assert_array_equal(offsets, _trace_one_at_a_time(VALIDATION_ROWS))


@pytest.mark.parametrize("n_rows", [1, 150, 200, 201, 12_345])
def test_trace_small_and_clamped(n_rows: int) -> None:
    offsets = aggregation_trace(n_rows)
    np.testing.assert_array_equal(offsets, _trace_one_at_a_time(n_rows))
    assert offsets[-1] == n_rows
    np.testing.assert_array_equal(
        aggregation_trace(n_rows, seed=7), _trace_one_at_a_time(n_rows, 7)
    )


def test_trace_rejects_empty() -> None:
    with pytest.raises(DataError, match="positive row count"):
        aggregation_trace(0)


def test_validation_half_and_calibration() -> None:
    assert criteo.validation_rows(178_274_637) == VALIDATION_ROWS
    assert criteo.validation_rows(10) == 5 and criteo.validation_rows(11) == 6
    official = Criteo().calibration_rows()
    assert (official.start, official.stop) == (89_137_319, 89_265_319)
    assert Criteo().calibration_rows(1001) == range(501, 1001)


# ------------------------------------------------------------------------------- reader


def _write_raw(
    folder: Path,
    rows: int,
    *,
    seed: int = 0,
    skip_member: int | None = None,
    widths: dict[int, int] | None = None,
    label_rows: int | None = None,
    compressed: bool = False,
    id_limit: int = 3,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    dense = rng.standard_normal((rows, 13)).astype(np.float32)
    members = {
        str(f): rng.integers(0, id_limit, (rows, (widths or {}).get(f, k)), dtype=np.int32)
        for f, k in enumerate(MULTI_HOT_SIZES)
        if f != skip_member
    }
    labels = rng.integers(0, 2, (label_rows or rows, 1), dtype=np.int32)
    np.save(folder / DENSE_FILE, dense)
    (np.savez_compressed if compressed else np.savez)(folder / SPARSE_FILE, **members)
    np.save(folder / LABELS_FILE, labels)
    return {"dense": dense, "labels": labels[:, 0], **members}


def test_reader_memory_maps_everything(tmp_path: Path) -> None:
    written = _write_raw(tmp_path, 37)
    raw = open_raw(tmp_path)
    assert raw.rows == 37
    assert isinstance(raw.dense, np.memmap) and isinstance(raw.labels, np.memmap)
    for f, member in enumerate(raw.sparse):
        assert isinstance(member, np.memmap), f
        assert Path(member.filename or "") == (tmp_path / SPARSE_FILE).resolve()
        np.testing.assert_array_equal(member, written[str(f)])
    # the member offsets really point into the zip: compare with zipfile's own bytes
    with zipfile.ZipFile(tmp_path / SPARSE_FILE) as zf:
        head = zf.read("20.npy")
    assert bytes(raw.sparse[20].tobytes()) == head[-raw.sparse[20].nbytes :]
    np.testing.assert_array_equal(raw.dense, written["dense"])
    np.testing.assert_array_equal(raw.labels, written["labels"])


def test_reader_errors(tmp_path: Path) -> None:
    _write_raw(tmp_path / "missing", 5, skip_member=7)
    with pytest.raises(DataError, match=r"no member '7\.npy'"):
        open_raw(tmp_path / "missing")
    _write_raw(tmp_path / "width", 5, widths={20: 99})
    with pytest.raises(DataError, match=r"'20\.npy' \(cat_20\).*got width 99, expected 100"):
        open_raw(tmp_path / "width")
    _write_raw(tmp_path / "zip", 5, compressed=True)
    with pytest.raises(DataError, match=r"'0\.npy' is compressed.*numpy\.savez"):
        open_raw(tmp_path / "zip")
    _write_raw(tmp_path / "rows", 5, label_rows=6)
    with pytest.raises(DataError, match=rf"{DENSE_FILE} has 5 rows but {LABELS_FILE}: 6"):
        open_raw(tmp_path / "rows")
    with pytest.raises(DataError, match=rf"{DENSE_FILE} does not exist"):
        open_raw(tmp_path / "nothing")


def test_check_ids(tmp_path: Path) -> None:
    _write_raw(tmp_path, 300, id_limit=10)
    raw = open_raw(tmp_path)
    check_ids(raw.sparse, [10] * 26, chunk_rows=64)
    limits = [10] * 26
    limits[9] = 5  # cat_9 has ids up to 9
    with pytest.raises(
        DataError, match=r"cat_9 .*holds id [5-9] at row \d+: expected ids in 0\.\.4"
    ):
        check_ids(raw.sparse, limits, chunk_rows=64)


# ------------------------------------------------------------------------------- model


def test_embedding_bag_reference_by_hand() -> None:
    tables = [np.full((4, 128), 0.0, np.float32) for _ in range(26)]
    tables[0][1], tables[0][3] = 1.0, 10.0
    tables[20][2] = 0.5
    sparse = [np.zeros((2, k), np.int32) for k in MULTI_HOT_SIZES]
    sparse[0][0] = [1, 3, 3]  # 1 + 10 + 10
    sparse[0][1] = [1, 1, 0]
    sparse[20][1, :7] = 2  # 7 x 0.5
    out = model.embedding_bag_reference(tables, sparse)
    assert out.shape == (2, 26, 128) and out.dtype == np.float32
    expected = np.zeros((2, 26, 128), np.float32)
    expected[0, 0], expected[1, 0], expected[1, 20] = 21.0, 2.0, 3.5
    np.testing.assert_array_equal(out, expected)
    sparse[5][0, 0] = 4
    with pytest.raises(DataError, match="cat_5 id 4"):
        model.embedding_bag_reference(tables, sparse)


@pytest.fixture(scope="module")
def tiny_tables(tmp_path_factory: pytest.TempPathFactory) -> list[np.memmap]:
    folder = tmp_path_factory.mktemp("tables")
    paths = model.build_tables(folder, "tiny", seed=0, max_rows=50)
    assert [p.name for p in paths] == [f"emb_{f:02d}.npy" for f in range(26)]
    return model.load_tables(folder)


@pytest.fixture(scope="module")
def tiny_model() -> onnx.ModelProto:
    return build_model("dlrm-v2", "tiny", seed=3)


def test_tables(tiny_tables: list[np.memmap], tmp_path: Path) -> None:
    assert [len(t) for t in tiny_tables] == [min(r, 50) for r in EMBEDDING_ROWS]
    assert all(isinstance(t, np.memmap) and t.dtype == np.float32 for t in tiny_tables)
    # entries N(0, 1/k): the pooled embedding of k ids has about unit variance
    assert 0.8 < float(np.var(tiny_tables[20]) * MULTI_HOT_SIZES[20]) < 1.2
    with pytest.raises(ModelError, match=r"97\.\d GiB.*--model-path DIR"):
        model.build_tables(tmp_path, "full")
    np.save(tmp_path / "emb_00.npy", np.zeros((3, 64), np.float32))
    with pytest.raises(ModelError, match="emb_01.npy.*25 of 26"):
        model.load_tables(tmp_path)
    for f in range(1, 26):
        np.save(tmp_path / f"emb_{f:02d}.npy", np.zeros((3, 128), np.float32))
    with pytest.raises(ModelError, match=r"emb_00\.npy holds float32 \[3, 64\]"):
        model.load_tables(tmp_path)


def _pairs(tables: list[np.memmap], n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    dense = criteo.synthetic_dense(rng, n)
    sparse = [
        rng.integers(0, len(t), (n, k), np.int32)
        for t, k in zip(tables, MULTI_HOT_SIZES, strict=True)
    ]
    return dense, sparse


def test_dense_onnx_matches_reference(
    tiny_tables: list[np.memmap], tiny_model: onnx.ModelProto
) -> None:
    onnx_model = tiny_model
    check_model(onnx_model, model.DENSE_CARD, "built-in dlrm-v2 dense part")
    dense, sparse = _pairs(tiny_tables, 257, seed=1)
    emb = model.embedding_bag_reference(tiny_tables, sparse)
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (prob,) = session.run(["probability"], {"dense": dense, "embeddings": emb})
    assert prob.shape == (257,) and prob.dtype == np.float32
    expected = model.reference_forward(onnx_model, dense, emb)
    np.testing.assert_allclose(prob, expected, rtol=0, atol=1e-5)
    # a spread of probabilities, neither all 0.5 nor saturated
    assert np.std(prob) > 0.1 and 0.01 < np.median(prob) < 0.99
    assert np.mean((prob > 0.001) & (prob < 0.999)) > 0.8


def test_full_architecture_is_the_spec() -> None:
    full = model.ARCHITECTURES["full"]  # SPEC §2.8
    assert (full.bottom, full.dcn_layers, full.low_rank) == ((512, 256, 128), 3, 512)
    assert full.top == (1024, 1024, 512, 256, 1) and full.interaction_width == 27 * 128
    with pytest.raises(ModelError, match="'huge'"):
        model.build_dense("huge")


@pytest.mark.parametrize("size", ["tiny", pytest.param("full", marks=pytest.mark.slow)])
def test_graph_dims(size: str, tiny_model: onnx.ModelProto) -> None:
    arch = model.ARCHITECTURES[size]
    built = tiny_model if size == "tiny" else build_model("dlrm-v2", size)
    shapes = {t.name: tuple(numpy_helper.to_array(t).shape) for t in built.graph.initializer}
    widths = (13, *arch.bottom)
    for i in range(len(arch.bottom)):
        assert shapes[f"dense_arch.model._mlp.{i}._linear.weight"] == (widths[i + 1], widths[i])
    for layer in range(arch.dcn_layers):
        assert shapes[f"inter_arch.crossnet.V_kernels.{layer}"] == (arch.low_rank, 3456)
        assert shapes[f"inter_arch.crossnet.W_kernels.{layer}"] == (3456, arch.low_rank)
        assert shapes[f"inter_arch.crossnet.bias.{layer}"] == (3456,)
    assert "inter_arch.crossnet.V_kernels.3" not in shapes
    widths = (3456, *arch.top)
    for i in range(len(arch.top) - 1):
        assert shapes[f"over_arch.model.0._mlp.{i}._linear.weight"] == (widths[i + 1], widths[i])
    assert shapes["over_arch.model.1.weight"] == (1, widths[-2])


# ------------------------------------------------------------------------------- AUC


def _write_log(path: Path, entries: list[tuple[int, np.ndarray]]) -> Path:
    items = [
        {"seq_id": n, "qsl_idx": i, "data": data.astype(np.float32).tobytes().hex().upper()}
        for n, (i, data) in enumerate(entries)
    ]
    path.write_text(json.dumps(items))
    return path


def test_auc_by_hand(tmp_path: Path) -> None:
    truth = CriteoTruth(np.array([0, 2, 4, 5]), np.array([0, 0, 1, 1, 1], np.int32))
    log = _write_log(
        tmp_path / "log.json",
        [
            (1, np.array([[0.35, 1], [0.8, 1]])),
            (0, np.array([[0.1, 0], [0.4, 0]])),
            (1, np.array([[0.99, 0], [0.99, 0]])),  # a duplicate: ignored
        ],
    )
    report = auc_metric.evaluate(log, truth)
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered -> AUC 0.75
    assert report.line == "AUC=75.000%, accuracy=75.000%, good=3, total=4, queries=2"
    assert report.values == {"AUC": 75.0}
    only_probs = _write_log(tmp_path / "p.json", [(0, np.array([0.1, 0.4])), (2, np.array([0.6]))])
    got = auc_metric.evaluate(only_probs, truth, with_labels=False)
    assert got.line == "AUC=100.000%, accuracy=100.000%, good=3, total=3, queries=2"


def test_auc_equals_sklearn_and_checks_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    offsets = aggregation_trace(3000, seed=1)
    labels = rng.integers(0, 2, 3000).astype(np.float32)
    probs = np.clip(0.3 * labels + 0.7 * rng.random(3000), 0, 1).astype(np.float32)
    order = rng.permutation(len(offsets) - 1)
    entries = [
        (
            int(i),
            np.stack([probs[offsets[i] : offsets[i + 1]], labels[offsets[i] : offsets[i + 1]]], 1),
        )
        for i in order
    ]
    truth = CriteoTruth(offsets, labels)
    report = auc_metric.evaluate(_write_log(tmp_path / "a.json", entries), truth)
    assert report.values["AUC"] == pytest.approx(100 * roc_auc_score(labels, probs), abs=1e-9)
    good = int(np.sum(np.round(probs) == labels))
    assert f"good={good}, total=3000, queries={len(order)}" in report.line
    bad = [(entries[0][0], entries[0][1][:-1]), *entries[1:]]
    with pytest.raises(AccuracyError, match=rf"sample {entries[0][0]} has \d+ payload bytes"):
        auc_metric.evaluate(_write_log(tmp_path / "b.json", bad), truth)
    with pytest.raises(AccuracyError, match="qsl_idx 999 is outside"):
        auc_metric.evaluate(_write_log(tmp_path / "c.json", [(999, entries[0][1])]), truth)


# ------------------------------------------------------------------------------- round trip


def test_synthesize_prepare_round_trip(
    tiny_tables: list[np.memmap], tiny_model: onnx.ModelProto, tmp_path: Path
) -> None:
    onnx_model = tiny_model

    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )

    def model_fn(dense: np.ndarray, sparse: list[np.ndarray]) -> np.ndarray:
        emb = model.embedding_bag_reference(tiny_tables, sparse)
        out: np.ndarray = session.run(["probability"], {"dense": dense, "embeddings": emb})[0]
        return out

    raw = tmp_path / "raw"
    rows = [len(t) for t in tiny_tables]
    figures = Criteo().synthesize(raw, 8001, seed=4, table_rows=rows, model_fn=model_fn)
    assert figures["validation_rows"] == 4001
    assert 0.74 < figures["fp32_auc"] < 0.86, figures
    day = open_raw(raw)
    check_ids(day.sparse, rows)
    with zipfile.ZipFile(raw / SPARSE_FILE) as zf:
        assert sorted(zf.namelist()) == sorted(f"{f}.npy" for f in range(26))

    cache = tmp_path / "cache"
    samples = Criteo().samples(raw, cache)
    np.testing.assert_array_equal(samples.offsets, aggregation_trace(4001))
    assert samples.count == figures["samples"] == len(samples.pairs_per_sample)
    assert samples.pairs_per_sample.sum() == 4001 == len(samples.dense)
    stamp = (cache / criteo.TRACE_FILE).stat().st_mtime_ns
    Criteo().prepare(raw, cache)  # unchanged raw files: the cache is reused
    assert (cache / criteo.TRACE_FILE).stat().st_mtime_ns == stamp

    # an accuracy log of the FP32 model scores the AUC synthesize reported
    truth = Criteo().ground_truth(raw, cache)
    entries = []
    for i in range(samples.count):
        dense, sparse, labels = samples.sample(i)
        probs = model_fn(dense, sparse)
        entries.append((i, np.stack([probs, labels.astype(np.float32)], axis=1)))
    report = auc_metric.evaluate(_write_log(tmp_path / "log.json", entries), truth)
    assert report.values["AUC"] == pytest.approx(100 * figures["fp32_auc"], abs=1e-6)

    _write_raw(tmp_path / "other", 4)  # files the synthesizer did not write
    with pytest.raises(DataError, match="not written by the synthesizer"):
        Criteo().synthesize(tmp_path / "other", 10, 0, rows, model_fn)
