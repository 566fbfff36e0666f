"""mlperf_trt: an MLPerf Inference harness (TensorRT on NVIDIA GPUs, ONNX Runtime on CPUs).

The compiled core is `mlperf_trt._C` (always built) and `mlperf_trt._cuda` (built where nvcc
was found). `build_info()` says what this installation contains; nothing here probes a GPU at
import time.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("mlperf-trt")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"


def build_info() -> dict[str, Any]:
    """What was built: the C++ core, whether the CUDA kernels module exists, and its settings.

    Never needs a GPU: `_cuda` links the static CUDA runtime, and `cuda_devices` is only filled
    when `_cuda` is importable (0 on a machine without a driver).
    """
    from . import _C

    info: dict[str, Any] = dict(_C.build_info())
    info["package_version"] = __version__
    info["cuda_module"] = False
    info["cuda_devices"] = 0
    if info.get("cuda_built"):
        try:
            from . import _cuda
        except ImportError as exc:  # built but not loadable: say why instead of hiding it
            info["cuda_import_error"] = str(exc)
        else:
            info["cuda_module"] = True
            info.update(
                {
                    f"cuda_{k}" if not k.startswith("cuda") else k: v
                    for k, v in _cuda.build_info().items()
                }
            )
            info["cuda_devices"] = int(_cuda.device_count())
    return info


__all__ = ["__version__", "build_info"]
