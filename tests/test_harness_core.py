"""The C++ harness core: scheduler policies, the sample store, and the failure path."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mlperf_trt import _C
from mlperf_trt.errors import ConfigError, DataError, HarnessError

H = _C.harness


def _sched(max_batch: int, timeout_us: int = 0):  # type: ignore[no-untyped-def]
    return H.Scheduler(H.BatchPolicy(max_batch, timeout_us))


def test_offline_policy_hands_out_full_batches_then_the_rest() -> None:
    s = _sched(4)
    s.issue(list(range(10)), list(range(100, 110)))
    sizes = []
    while s.queued:
        ids, indices, cost, _ = s.next_batch()
        assert cost == len(ids)
        assert [i + 100 for i in ids] == indices
        sizes.append(len(ids))
    assert sizes == [4, 4, 2]
    assert s.pushed == s.handed_out == 10


def test_server_policy_waits_for_timeout_or_full_batch() -> None:
    s = _sched(8, timeout_us=30_000)
    s.issue([1, 2, 3], [1, 2, 3])
    start = time.monotonic()
    ids, *_ = s.next_batch()
    waited = time.monotonic() - start
    assert ids == [1, 2, 3]
    assert waited >= 0.025  # held until the oldest sample waited ~30 ms
    s.issue(list(range(8)), list(range(8)))
    start = time.monotonic()
    ids, *_ = s.next_batch()
    assert len(ids) == 8 and time.monotonic() - start < 0.02  # a full batch goes at once


def test_flush_ends_waiting_and_stop_returns_none() -> None:
    s = _sched(8, timeout_us=10_000_000)
    s.issue([7], [7])
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(s.next_batch()))
    t.start()
    time.sleep(0.05)
    assert not result  # still waiting for more samples
    s.flush()
    t.join(2)
    assert result == [([7], [7], 1, 1)]
    s.stop()
    assert s.next_batch() is None


def test_every_sample_completed_exactly_once_under_concurrency() -> None:
    s = _sched(16, timeout_us=200)
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while (batch := s.next_batch()) is not None:
            ids, indices, *_ = batch
            assert ids == indices and 1 <= len(ids) <= 16
            with lock:
                got.extend(ids)

    def producer(base: int) -> None:
        for k in range(200):
            start = base + k * 5
            s.issue(list(range(start, start + 5)), list(range(start, start + 5)))

    workers = [threading.Thread(target=worker) for _ in range(4)]
    producers = [threading.Thread(target=producer, args=(p * 1000,)) for p in range(3)]
    for t in workers + producers:
        t.start()
    for t in producers:
        t.join()
    deadline = time.monotonic() + 10
    while s.handed_out < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    s.stop()
    for t in workers:
        t.join(5)
    counts = collections.Counter(got)
    assert len(got) == 3000 and set(counts.values()) == {1}
    assert set(counts) == {p * 1000 + i for p in range(3) for i in range(1000)}


def _drain(s):  # type: ignore[no-untyped-def]
    batches = []
    while s.queued:
        batches.append(s.next_batch())
    return batches


def test_length_buckets_never_mix_and_take_full_buckets_first() -> None:
    # bert: costs are sequence lengths; buckets <=128, <=256, <=384 (DESIGN §4.1).
    rng = np.random.default_rng(1)
    costs = rng.integers(20, 385, size=200).astype(np.uint32)
    s = H.Scheduler(H.BatchPolicy(8, 0, 0, [128, 256, 384]), costs)
    assert s.buckets == 3
    s.issue(list(range(200)), list(range(200)))
    batches = _drain(s)
    seen = []
    bucket = np.searchsorted([128, 256, 384], costs)
    partial = 0
    for ids, indices, cost, longest in batches:
        assert len({int(bucket[i]) for i in indices}) == 1  # one bucket per batch
        assert cost == int(costs[indices].sum()) and longest == int(costs[indices].max())
        partial += len(ids) < 8
        seen.extend(indices)
    assert sorted(seen) == list(range(200))
    assert partial <= 3  # at most one partial batch per bucket, handed out last
    assert all(len(b[0]) == 8 for b in batches[: len(batches) - partial])


def test_cost_budget_fills_batches_without_splitting_samples() -> None:
    # dlrm-v2: costs are user-item pairs per sample; a batch carries at most 1000 pairs, and a
    # sample larger than the budget goes alone.
    costs = np.array([100, 700, 300, 200, 1200, 100, 100, 600], dtype=np.uint32)
    s = H.Scheduler(H.BatchPolicy(1000, 0, 1000), costs)
    s.issue(list(range(8)), list(range(8)))
    got = [(indices, cost) for _, indices, cost, _ in _drain(s)]
    assert got == [([0, 1], 800), ([2, 3], 500), ([4], 1200), ([5, 6, 7], 800)]


def test_scheduler_rejects_index_without_cost_and_unsorted_buckets() -> None:
    s = H.Scheduler(H.BatchPolicy(4), np.array([1, 2], dtype=np.uint32))
    with pytest.raises(HarnessError, match="no cost"):
        s.issue([0, 1, 2], [0, 1, 2])
    with pytest.raises(ConfigError, match="ascend"):
        H.Scheduler(H.BatchPolicy(4, 0, 0, [256, 128]))


def test_interleave_postprocessor_pads_short_lengths_with_fill() -> None:
    # bert: start/end logits [N, L] -> float32 [384][2] per sample (SPEC §1.2, §2.4).
    rng = np.random.default_rng(2)
    start = rng.standard_normal((3, 96)).astype(np.float32)
    end = rng.standard_normal((3, 96)).astype(np.float32)
    post = H.InterleavePostprocessor([0, 1], 384, -10000.0)
    payloads = post.process([5, 6, 7], [start, end])
    for i, payload in enumerate(payloads):
        got = np.frombuffer(payload, dtype=np.float32).reshape(384, 2)
        np.testing.assert_array_equal(got[:96, 0], start[i])
        np.testing.assert_array_equal(got[:96, 1], end[i])
        assert (got[96:] == -10000.0).all()
    with pytest.raises(Exception, match="more than the payload"):
        post.process([0], [np.zeros((1, 400), np.float32)] * 2)


def test_rows_postprocessor_splits_rows_by_sample_cost() -> None:
    # dlrm-v2: (probability, label) per pair; sample i gets its own pairs (SPEC §1.2, §2.8).
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    post = H.RowsPostprocessor(0)
    payloads = post.process([3, 9, 4], [rows], [1, 3, 2])
    got = [np.frombuffer(p, dtype=np.float32).reshape(-1, 2) for p in payloads]
    np.testing.assert_array_equal(got[0], rows[:1])
    np.testing.assert_array_equal(got[1], rows[1:4])
    np.testing.assert_array_equal(got[2], rows[4:])
    with pytest.raises(Exception, match="rows"):
        post.process([3, 9], [rows], [1, 3])


def test_policy_rejects_zero_batch() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        H.BatchPolicy(0, 0) and _sched(0)


def test_sample_store_gathers_the_loaded_bytes() -> None:
    specs = [H.TensorSpec("x", "float32", [2, 3]), H.TensorSpec("ids", "int64", [4])]
    store = H.SampleStore(specs, 10)
    rng = np.random.default_rng(0)
    samples = {
        i: (rng.standard_normal((2, 3)).astype(np.float32), np.arange(4) + i) for i in (1, 4, 9)
    }
    for i, arrays in samples.items():
        store.load(i, list(arrays))
    assert store.loaded_count == 3 and store.is_loaded(4) and not store.is_loaded(2)
    x = store.gather([9, 1, 9], 0)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.stack([samples[9][0], samples[1][0], samples[9][0]]))
    np.testing.assert_array_equal(store.gather([4], 1), [samples[4][1]])
    store.unload([9])
    with pytest.raises(HarnessError, match="not loaded"):
        store.gather([9], 0)
    store.load(2, [np.ones((2, 3), np.float32), np.zeros(4, np.int64)])  # reuses the freed slot
    np.testing.assert_array_equal(store.gather([2], 0)[0], np.ones((2, 3)))
    np.testing.assert_array_equal(store.gather([1], 0)[0], samples[1][0])


def test_sample_store_rejects_bad_samples() -> None:
    store = H.SampleStore([H.TensorSpec("x", "float32", [3])], 5)
    with pytest.raises(DataError, match="dtype"):
        store.load(0, [np.zeros(3, np.float64)])
    with pytest.raises(DataError, match="bytes"):
        store.load(0, [np.zeros(4, np.float32)])
    with pytest.raises(DataError, match="outside"):
        store.load(5, [np.zeros(3, np.float32)])
    with pytest.raises(DataError, match="tensors"):
        store.load(0, [np.zeros(3, np.float32), np.zeros(3, np.float32)])


FAILING_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mlperf_trt import _C
    from mlperf_trt.harness.loadgen import CoreSpec, LoadGenSpec, run_test
    from mlperf_trt.results import render_user_conf

    class Exploding:
        calls = 0
        def run(self, inputs, batch_size=None):
            Exploding.calls += 1
            if Exploding.calls == 3:
                raise ValueError("executor exploded on purpose")
            return {"y": inputs["x"][:, :1].copy()}

    out = Path(sys.argv[1])
    conf = out / "user.conf"
    settings = {"target_qps": 2000, "min_duration": 100, "min_query_count": 200}
    conf.write_text(render_user_conf("resnet50", "Offline", settings))
    core = CoreSpec(max_batch=16, timeout_us=0, executors=[Exploding()], groups=[0],
                    input_names=["x"], output_names=["y"],
                    postprocessor=_C.harness.ClassIndexPostprocessor(0, 0),
                    tensors=[_C.harness.TensorSpec("x", "float32", [3])],
                    sample_source=lambda i: [__import__("numpy").full(3, i, "float32")])
    try:
        run_test(core, LoadGenSpec("resnet50", "Offline", "performance", conf, out, 64, 64))
    except ValueError as exc:
        print("RAISED", exc, "calls", Exploding.calls)
    """
)


def test_worker_failure_completes_the_rest_and_raises_the_original_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_RUN, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "RAISED executor exploded on purpose calls 3" in proc.stdout, proc.stderr
    # LoadGen returned (every sample was completed, empty after the failure) and logged the run.
    assert (tmp_path / "mlperf_log_detail.txt").exists()


def test_bytes_postprocessor_gives_each_sample_its_row() -> None:
    # 3d-unet: the uint8 label volume of each sample, whatever its size (SPEC §1.2, §2.3).
    volume = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    payloads = H.BytesPostprocessor(0).process([7, 8], [volume])
    assert payloads == [volume[0].tobytes(), volume[1].tobytes()]
    with pytest.raises(Exception, match="batch dimension"):
        H.BytesPostprocessor(0).process([7], [volume])


def test_class_index_postprocessor_scores_path() -> None:
    # float32 class scores [N, C]: argmax (first maximum) plus the offset (SPEC §2.1: -1).
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((5, 1001)).astype(np.float32)
    payloads = H.ClassIndexPostprocessor(0, -1).process(list(range(5)), [scores])
    got = [float(np.frombuffer(p, dtype=np.float32)[0]) for p in payloads]
    assert got == [float(i) for i in scores.argmax(axis=1) - 1]
