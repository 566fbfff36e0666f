"""The synthesizers' shared guard (data.synthetic_target): never over a real data set, and an
interrupted synthetic set never looks complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_trt.data.synthetic_target import README, begin_synthetic
from mlperf_trt.errors import DataError

MARK = "Synthetic test set written by mlperf_trt"


def _begin(raw: Path, count: object = 3, seed: object = 0) -> None:
    begin_synthetic(raw, mark=MARK, list_file="list.txt", count=count, seed=seed, unit="things")  # type: ignore[arg-type]


def test_new_folder_is_marked_incomplete(tmp_path: Path) -> None:
    raw = tmp_path / "new" / "set"
    _begin(raw)
    assert (raw / README).read_text() == f"{MARK} (incomplete: no list.txt yet).\n"
    assert not (raw / "list.txt").exists()


def test_an_earlier_synthetic_set_loses_its_list_first(tmp_path: Path) -> None:
    (tmp_path / README).write_text(f"{MARK}.\n\ncomplete\n")
    (tmp_path / "list.txt").write_text("a 1\n")
    _begin(tmp_path)
    assert not (tmp_path / "list.txt").exists()  # no longer a data set until it is rewritten
    assert "incomplete" in (tmp_path / README).read_text()


def test_a_folder_that_may_be_real_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a 1\n")
    with pytest.raises(DataError, match="not empty.*may be a real data set"):
        _begin(tmp_path)
    assert (tmp_path / "list.txt").read_text() == "a 1\n"  # untouched
    (tmp_path / README).write_text("Another project's README\n")
    with pytest.raises(DataError, match="not empty"):
        _begin(tmp_path)


@pytest.mark.parametrize(
    ("count", "seed", "message"),
    [(0, 0, "cannot synthesize 0 things"), (True, 0, "cannot synthesize True"),
     (2, -1, "seed -1 is negative"), (2, 1.5, "seed 1.5")],
)  # fmt: skip
def test_bad_count_or_seed(tmp_path: Path, count: object, seed: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        _begin(tmp_path / "x", count, seed)
    assert not (tmp_path / "x").exists()


def test_a_file_is_not_a_target(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        _begin(target)
