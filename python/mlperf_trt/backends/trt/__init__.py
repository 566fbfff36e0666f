"""The TensorRT backend: engines built from ONNX with TensorRT 10+, run through cuda-python.

    from mlperf_trt.backends.trt import TrtBackend, TrtOptions
    backend = TrtBackend(engines_root, system_id, "resnet50", TrtOptions())
    artifact = backend.build(model, recipe, calibration=feeds)      # engine.plan + recipe.json
    executor = backend.load(artifact, device=0)                     # one per worker and stream
    outputs = executor.run({"input_tensor:0": batch})

Importing this package never imports TensorRT or touches a GPU (DESIGN §2: TensorRT is imported
only inside backends/trt, and only when used): `availability()` says whether the backend is
usable here, and `TrtBackend`, `TrtExecutor`, `TrtOptions` are loaded from their submodules on
first access. Multi-GPU: the harness makes one worker group per device of `devices_from_flag`
(DESIGN §4.1), and each worker loads its own executor on its group's device.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlperf_trt.errors import BackendError

if TYPE_CHECKING:
    from types import ModuleType

    from mlperf_trt.backends.trt.builder import TrtBackend
    from mlperf_trt.backends.trt.recipe import TrtOptions
    from mlperf_trt.backends.trt.runtime import TrtExecutor

__all__ = [
    "INSTALL_HINT",
    "MIN_TENSORRT_MAJOR",
    "TrtBackend",
    "TrtExecutor",
    "TrtOptions",
    "availability",
    "cudart",
    "devices_from_flag",
    "require_tensorrt",
]

MIN_TENSORRT_MAJOR = 10
INSTALL_HINT = (
    "install it with pip install 'mlperf-trt[trt]' (tensorrt>=10 and cuda-python) on a machine"
    " with an NVIDIA GPU and driver"
)

_LAZY = {
    "TrtBackend": "mlperf_trt.backends.trt.builder",
    "TrtOptions": "mlperf_trt.backends.trt.recipe",
    "TrtExecutor": "mlperf_trt.backends.trt.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def cudart() -> ModuleType:
    """cuda-python's runtime bindings: `cuda.bindings.runtime` (12.6+), else `cuda.cudart`."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        pass
    try:
        return importlib.import_module("cuda.cudart")
    except ImportError as err:
        raise BackendError(
            f"cuda-python is not installed ({err}): the TensorRT backend needs it for device"
            f" memory and streams; {INSTALL_HINT}"
        ) from err


def _import_tensorrt() -> ModuleType:
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as err:  # noqa: BLE001 - a broken install is as unusable as a missing one
        raise BackendError(
            f"tensorrt is not installed or not importable ({err}); {INSTALL_HINT}"
        ) from err
    version = str(getattr(trt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_TENSORRT_MAJOR:
        raise BackendError(
            f"tensorrt {version} is too old: the trt backend uses the TensorRT"
            f" {MIN_TENSORRT_MAJOR} API (execute_async_v3, named I/O tensors); {INSTALL_HINT}"
        )
    return trt


def _device_count(rt: ModuleType) -> int:
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise BackendError(
            f"no usable CUDA device: cudaGetDeviceCount returned {name}; the TensorRT backend"
            " needs an NVIDIA GPU with a working driver (nvidia-smi should list it)"
        )
    if count < 1:
        raise BackendError("no CUDA device found: the TensorRT backend needs an NVIDIA GPU")
    return int(count)


def require_tensorrt() -> ModuleType:
    """The `tensorrt` module (10 or later); BackendError saying what is missing otherwise."""
    return _import_tensorrt()


def availability() -> tuple[bool, str]:
    """(usable here, what it uses / exactly what is missing and how to install it); never raises."""
    try:
        trt = _import_tensorrt()
        rt = cudart()
        count = _device_count(rt)
    except BackendError as err:
        return False, str(err)
    except Exception as err:  # noqa: BLE001 - availability must never raise
        return False, f"the TensorRT backend cannot start: {type(err).__name__}: {err}"
    version = getattr(importlib.import_module(rt.__name__.rpartition(".")[0]), "__version__", "")
    return True, f"tensorrt {trt.__version__}, cuda-python {version or '?'}, {count} CUDA device(s)"


def devices_from_flag(text: str | None, available: int) -> tuple[int, ...]:
    """The GPU indices of `--gpus`: None or "all" = every device, else "0,1" (no repeats).

    The harness makes one worker group per returned device (DESIGN §4.1).
    """
    if isinstance(available, bool) or not isinstance(available, int) or available < 0:
        raise BackendError(f"device count {available!r}: expected an integer >= 0")
    if available == 0:
        raise BackendError(
            "--gpus: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
    if text is None or text.strip().lower() == "all":
        return tuple(range(available))
    devices: list[int] = []
    for part in text.split(","):
        item = part.strip()
        if not item.isdigit():
            raise BackendError(
                f"--gpus {text!r}: {item!r} is not a device index; expected 'all' or"
                f" comma-separated indices such as '0,1' (devices 0-{available - 1} are visible)"
            )
        index = int(item)
        if index >= available:
            raise BackendError(
                f"--gpus {text!r}: device {index} does not exist; {available} device(s) are"
                f" visible (0-{available - 1})"
            )
        if index in devices:
            raise BackendError(f"--gpus {text!r}: device {index} is listed twice")
        devices.append(index)
    return tuple(devices)
