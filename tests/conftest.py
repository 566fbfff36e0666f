"""Shared fixtures: the CLI in a subprocess, and marker skips from build_info() (STYLE)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest


@functools.cache
def _build_info() -> dict[str, object]:
    from mlperf_trt import build_info

    return build_info()


def _tensorrt_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    info = _build_info()
    no_gpu = pytest.mark.skip(
        reason="needs mlperf_trt._cuda and a CUDA device "
        f"(cuda_module={info.get('cuda_module')}, cuda_devices={info.get('cuda_devices')})"
    )
    no_trt = pytest.mark.skip(reason="needs TensorRT (pip install tensorrt) and a GPU")
    for item in items:
        if "gpu" in item.keywords and not info.get("cuda_devices"):
            item.add_marker(no_gpu)
        if "trt" in item.keywords and not (_tensorrt_importable() and info.get("cuda_devices")):
            item.add_marker(no_trt)


def run_cli(
    *args: str, cwd: Path, timeout: float = 120, data_root: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m mlperf_trt ARGS` in a fresh process (LoadGen takes one user.conf per process)."""
    env = dict(os.environ)
    env["MLPERF_TRT_SYSTEM_ID"] = "testsys"
    env["MLPERF_TRT_DATA_ROOT"] = str(data_root or cwd / "data")
    return subprocess.run(
        [sys.executable, "-m", "mlperf_trt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def shared_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session: built models and synthetic sets are made once."""
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture
def cli(tmp_path: Path, shared_data_root: Path):  # type: ignore[no-untyped-def]
    def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, timeout=timeout, data_root=shared_data_root)

    return _run
