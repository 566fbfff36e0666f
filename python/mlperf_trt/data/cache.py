"""The prepared-sample cache: preprocessed samples as .npy files plus a manifest with hashes.

Generic over data sets (DESIGN.md §2 "data"): a data set says which tensors one sample has and how
to compute sample i; this module writes them, multi-threaded, into one C-order array per tensor and
writes `manifest.json` last. The layout is documented for readers in docs/data-cache.md:

    out_dir/manifest.json          written last, atomically: a folder without it is not a cache
    out_dir/<tensor file>.npy      one array [count, *sample_shape] per tensor, little-endian

A cache is "complete" exactly when manifest.json parses and every tensor file has the shape and
dtype it names; the per-sample sha256 values in the manifest are checked by `verify()`, not on open
(hashing 30 GB on every run would cost more than the run).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.errors import DataError, ResultsError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_json

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "Manifest",
    "PreparedSamples",
    "TensorSpec",
    "data_root",
    "open_cache",
    "read_manifest",
    "reusable_cache",
    "seeded_subset",
    "sha256_file",
    "write_cache",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mlperf_trt-prepared-samples/1"
DATA_ROOT_ENV = "MLPERF_TRT_DATA_ROOT"

# (tensor name, dtype name such as "float32", shape of one sample)
TensorSpec = tuple[str, str, tuple[int, ...]]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def data_root() -> Path:
    """$MLPERF_TRT_DATA_ROOT, else ./data (relative to the current folder), as an absolute path."""
    env = os.environ.get(DATA_ROOT_ENV)
    root = Path(env).expanduser() if env else Path("data")
    return root if root.is_absolute() else Path.cwd() / root


def prepared_dir(kind: str, raw_dir: Path) -> Path:
    """The default cache folder of a raw data folder: data_root/prepared/<kind>/<path hash>."""
    key = hashlib.sha256(str(Path(raw_dir).resolve()).encode()).hexdigest()[:12]
    return data_root() / "prepared" / kind / key


def prepare_hint(model: str, raw_dir: Path | str) -> str:
    """The command that (re)builds the cache of `raw_dir`, for error messages."""
    return f"python -m mlperf_trt prepare --model {model} --data-dir {raw_dir}"


def open_versioned(out_dir: Path, dataset: str, version: str, model: str) -> PreparedSamples:
    """The prepared cache in out_dir, checked to hold `dataset` samples of preprocessing
    `version`; a DataError saying what to run (`prepare --model <model>`) when missing or stale."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    source = manifest.source if manifest is not None else "RAW_DIR"
    samples = open_cache(out_dir, hint=prepare_hint(model, source))
    m = samples.manifest
    if m.dataset != dataset or m.version != version:
        raise DataError(
            f"{out_dir} holds {m.dataset!r} samples of preprocessing version {m.version!r};"
            f" this code reads {dataset!r} version {version!r}: run"
            f" `{prepare_hint(model, m.source)}` to rebuild it"
        )
    return samples


def seeded_subset(count: int, size: int, seed: int) -> list[int]:
    """Sorted sample indices to calibrate on when no official list is given: `size` of
    range(count) drawn without replacement with `seed` (all of it when count <= size)."""
    if count < 0 or size < 0:
        raise DataError(f"calibration needs count >= 0 and size >= 0, got {count} and {size}")
    if count <= size:
        return list(range(count))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(count, size=size, replace=False))


def files_fingerprint(folder: Path, names: Iterable[str]) -> str:
    """A cheap identity of raw files: name, size and mtime of each, in order (a changed or
    replaced file changes it without reading the bytes)."""
    digest = hashlib.sha256()
    for name in names:
        st = (Path(folder) / name).stat()
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def cv2_single_threaded() -> Iterator[None]:
    """Our thread pool parallelises over images; OpenCV's own pool inside resize only competes."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _le_dtype(name: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(name)
    except TypeError as err:
        raise DataError(
            f"unknown tensor dtype {name!r}: expected a numpy dtype name such as 'float32'"
        ) from err
    return dtype.newbyteorder("<") if dtype.byteorder not in ("|", "<") else dtype


def _tensor_file_names(names: Sequence[str]) -> dict[str, str]:
    """'input_tensor:0' -> 'input_tensor_0.npy'; unique, never hidden, never manifest.json."""
    files: dict[str, str] = {}
    used = {MANIFEST}
    for name in names:
        stem = _UNSAFE.sub("_", name).lstrip(".-") or "tensor"
        candidate = f"{stem}.npy"
        for n in itertools.count(2):
            if candidate not in used:
                break
            candidate = f"{stem}_{n}.npy"
        used.add(candidate)
        files[name] = candidate
    return files


@dataclass(frozen=True)
class Manifest:
    """What a cache folder holds; stored as out_dir/manifest.json (docs/data-cache.md)."""

    dataset: str
    version: str  # preprocessing version, e.g. "imagenet-vgg-v1": a change invalidates caches
    source: str  # the resolved raw data folder
    source_hash: str  # sha256 of the data set's list file (val_map.txt, ...)
    count: int
    tensors: tuple[TensorSpec, ...]
    files: Mapping[str, str]  # tensor name -> file name in the cache folder
    sample_sha256: Mapping[str, tuple[str, ...]]  # tensor name -> hex sha256 per sample
    created: str  # ISO 8601 UTC
    # sha256 over (name, size, mtime) of the listed raw files: catches images replaced under an
    # unchanged list file (a re-synthesised set whose labels happen to be the same).
    source_files_hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "dataset": self.dataset,
            "version": self.version,
            "source": self.source,
            "source_hash": self.source_hash,
            "source_files_hash": self.source_files_hash,
            "count": self.count,
            "created": self.created,
            "tensors": [
                {
                    "name": name,
                    "dtype": dtype,
                    "shape": list(shape),
                    "file": self.files[name],
                    "sample_sha256": list(self.sample_sha256[name]),
                }
                for name, dtype, shape in self.tensors
            ],
        }

    @classmethod
    def from_json(cls, obj: object, where: Path) -> Manifest:
        def bad(what: str) -> DataError:
            return DataError(
                f"{where} is not a valid prepared-sample manifest: {what}; delete {where.parent}"
                " and prepare the data set again"
            )

        if not isinstance(obj, dict):
            raise bad("expected a JSON object")
        if obj.get("format") != MANIFEST_FORMAT:
            raise bad(f"format is {obj.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        try:
            count = int(obj["count"])
            tensors: list[TensorSpec] = []
            files: dict[str, str] = {}
            hashes: dict[str, tuple[str, ...]] = {}
            for entry in obj["tensors"]:
                name = str(entry["name"])
                shape = tuple(int(d) for d in entry["shape"])
                tensors.append((name, str(entry["dtype"]), shape))
                files[name] = str(entry["file"])
                hashes[name] = tuple(str(h) for h in entry["sample_sha256"])
                if len(hashes[name]) != count:
                    raise bad(f"tensor {name!r} has {len(hashes[name])} hashes for {count} samples")
                if "/" in files[name] or files[name] in ("", ".", "..", MANIFEST):
                    raise bad(f"tensor {name!r} names the file {files[name]!r}")
            return cls(
                dataset=str(obj["dataset"]),
                version=str(obj["version"]),
                source=str(obj["source"]),
                source_hash=str(obj["source_hash"]),
                count=count,
                tensors=tuple(tensors),
                files=files,
                sample_sha256=hashes,
                created=str(obj["created"]),
                source_files_hash=str(obj.get("source_files_hash", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise bad(f"missing or malformed field ({err!r})") from err


def read_manifest(out_dir: Path) -> Manifest | None:
    """The manifest of a cache folder, or None when the folder has none (not a complete cache)."""
    path = Path(out_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path} is not valid JSON ({err}); delete {out_dir} and prepare the data set again"
        ) from err
    return Manifest.from_json(obj, path)


def reusable_cache(out_dir: Path, **expected: object) -> PreparedSamples | None:
    """The complete cache in `out_dir` when its manifest's fields equal `expected` (dataset,
    version, source, source_hash, source_files_hash, count, tensors: what the caller would write
    now); None when there is none, or it is unreadable or was made from other data or code
    (logged: the caller rebuilds it)."""
    try:
        manifest = read_manifest(out_dir)
    except DataError as err:
        log.warning("rebuilding %s: %s", out_dir, err)
        return None
    if manifest is None:
        return None
    if any(getattr(manifest, name) != value for name, value in expected.items()):
        log.info("the cache in %s was made from other data or code: rebuilding it", out_dir)
        return None
    try:
        samples = PreparedSamples(out_dir, manifest)
    except DataError as err:
        log.warning("rebuilding %s: %s", out_dir, err)
        return None
    log.info("reusing the prepared %s samples in %s", manifest.dataset, out_dir)
    return samples


class PreparedSamples:
    """A complete cache folder, opened read-only with memory-mapped tensor files.

    Samples are numbered 0..count-1 in the data set's order (SPEC.md §1.1). Reads are thread-safe.
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.count = manifest.count
        self._arrays: dict[str, np.memmap[Any, Any]] = {}
        for name, dtype, shape in manifest.tensors:
            file = self.path / manifest.files[name]
            expected = (manifest.count, *shape)
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError as err:
                raise DataError(
                    f"{file} is missing although {self.path / MANIFEST} lists it; delete"
                    f" {self.path} and prepare the data set again"
                ) from err
            except (OSError, ValueError) as err:
                raise DataError(
                    f"{file} cannot be read as a .npy array ({err}); the cache is incomplete or"
                    f" damaged: delete {self.path} and prepare the data set again"
                ) from err
            if array.shape != expected or array.dtype != _le_dtype(dtype):
                raise DataError(
                    f"{file} holds {array.dtype} {array.shape}, but the manifest says {dtype}"
                    f" {expected}; delete {self.path} and prepare the data set again"
                )
            self._arrays[name] = array

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"PreparedSamples({str(self.path)!r}, dataset={self.manifest.dataset!r},"
            f" count={self.count})"
        )

    @property
    def tensor_names(self) -> list[str]:
        return [name for name, _, _ in self.manifest.tensors]

    def array(self, name: str) -> np.ndarray:
        """The whole read-only memory-mapped array [count, *sample_shape] of one tensor."""
        try:
            return self._arrays[name]
        except KeyError:
            raise DataError(
                f"{self.path} has no tensor {name!r}: it holds {', '.join(self._arrays)}"
            ) from None

    def _check_index(self, index: int) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise DataError(f"sample index {index!r} is not an integer")
        if not 0 <= index < self.count:
            raise DataError(
                f"sample index {index} is out of range: {self.path} holds samples"
                f" 0..{self.count - 1}"
            )
        return int(index)

    def sample(self, index: int) -> list[np.ndarray]:
        """One C-contiguous copy per tensor, in manifest order."""
        i = self._check_index(index)
        return [np.array(self._arrays[name][i], order="C") for name in self.tensor_names]

    def batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """The samples `indices`, stacked per tensor name: {name: [len(indices), *shape]}."""
        idx = np.fromiter((self._check_index(i) for i in indices), dtype=np.int64)
        return {name: np.ascontiguousarray(arr[idx]) for name, arr in self._arrays.items()}

    def verify(self, indices: Iterable[int] | None = None, threads: int | None = None) -> None:
        """Recompute the sha256 of each sample; DataError naming the first bad sample and file."""
        todo = range(self.count) if indices is None else [self._check_index(i) for i in indices]

        def check(i: int) -> None:
            for name in self.tensor_names:
                digest = hashlib.sha256(memoryview(self._arrays[name][i])).hexdigest()
                if digest != self.manifest.sample_sha256[name][i]:
                    raise DataError(
                        f"sample {i} of tensor {name!r} in {self.path / self.manifest.files[name]}"
                        f" does not match its sha256 in {self.path / MANIFEST}: the cache is"
                        f" damaged; delete {self.path} and prepare the data set again"
                    )

        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            for _ in pool.map(check, todo):
                pass


def open_cache(out_dir: Path, *, hint: str = "") -> PreparedSamples:
    """Open a complete cache; a DataError saying what to run (`hint`) when it is incomplete."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if manifest is None:
        what = "does not exist" if not out_dir.exists() else f"has no {MANIFEST} (incomplete)"
        raise DataError(
            f"the prepared-sample cache {out_dir} {what}"
            + (f"; create it with `{hint}`" if hint else "; prepare the data set first")
        )
    return PreparedSamples(out_dir, manifest)


def _check_free_space(out_dir: Path, needed: int, replaced: int) -> None:
    free = shutil.disk_usage(out_dir).free
    if needed - replaced > free:
        raise DataError(
            f"not enough disk space for the prepared samples in {out_dir}: they need"
            f" {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB are free; free some space or point"
            f" {DATA_ROOT_ENV} (or the output folder) to a larger disk"
        )


def write_cache(
    out_dir: Path,
    *,
    dataset: str,
    version: str,
    source: str,
    source_hash: str,
    tensors: Sequence[tuple[str, str, Sequence[int]]],
    count: int,
    fill: Callable[[int], Sequence[np.ndarray]],
    threads: int | None = None,
    show_progress: bool = True,
    source_files_hash: str = "",
) -> PreparedSamples:
    """Compute samples 0..count-1 with `fill(i)` on `threads` threads and write them as a cache.

    `fill(i)` returns one array per tensor, in the order of `tensors`, each with that tensor's
    dtype and sample shape. The old manifest (if any) is deleted first and the new one written
    last, so a failure or a kill leaves no complete-looking cache; tensor files are written under
    hidden `.partial` names and renamed into place before the manifest appears. Samples are
    written with positioned writes (not through a memory map), so a full disk is an error, not a
    crash. Returns the cache, opened.
    """
    out_dir = Path(out_dir)
    if count < 0:
        raise DataError(f"cannot write a cache of {count} samples: expected a count >= 0")
    specs: list[TensorSpec] = [
        (n, _le_dtype(d).name, tuple(int(x) for x in s)) for n, d, s in tensors
    ]
    if not specs:
        raise DataError("cannot write a cache without tensors: pass (name, dtype, shape) tuples")
    names = [name for name, _, _ in specs]
    if len(set(names)) != len(names):
        raise DataError(f"tensor names must be unique, got {names}")
    files = _tensor_file_names(names)
    dtypes = [_le_dtype(d) for _, d, _ in specs]
    sample_bytes = [
        int(np.prod(s, dtype=np.int64)) * dt.itemsize
        for (_, _, s), dt in zip(specs, dtypes, strict=True)
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    partial = {name: out_dir / f".{files[name]}.partial" for name in names}
    old_files = [
        p for p in [*(out_dir / f for f in files.values()), *partial.values()] if p.is_file()
    ]
    _check_free_space(out_dir, sum(sample_bytes) * count, sum(p.stat().st_size for p in old_files))
    # From here on the folder must not look complete: the manifest goes first. The old tensor
    # files go too (a reader that has them mapped keeps its copy), so a rebuild needs no 2x space.
    for path in [out_dir / MANIFEST, *old_files]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    fds: dict[str, int] = {}
    offsets: dict[str, int] = {}
    hashes = {name: [""] * count for name in names}
    try:
        for (name, _, shape), dtype in zip(specs, dtypes, strict=True):
            # open_memmap writes the .npy header and sizes the file; samples go in with pwrite.
            mm = np.lib.format.open_memmap(
                partial[name], mode="w+", dtype=dtype, shape=(count, *shape)
            )
            offsets[name] = int(mm.offset)
            del mm
            fds[name] = os.open(partial[name], os.O_WRONLY)

        _fill_all(
            specs,
            dtypes,
            sample_bytes,
            count,
            fill,
            fds,
            offsets,
            hashes,
            threads,
            show_progress,
            dataset,
        )

        for name in names:
            os.fsync(fds[name])
            os.close(fds.pop(name))
            os.replace(partial[name], out_dir / files[name])
        manifest = Manifest(
            dataset=dataset,
            version=version,
            source=source,
            source_hash=source_hash,
            count=count,
            tensors=tuple(specs),
            files=files,
            sample_sha256={name: tuple(h) for name, h in hashes.items()},
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source_files_hash=source_files_hash,
        )
        try:
            atomic_write_json(out_dir / MANIFEST, manifest.to_json())
        except ResultsError as err:  # only on values JSON cannot hold: a bug, reported as data
            raise DataError(str(err)) from err
    except BaseException:
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        for path in partial.values():
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    log.info("wrote %d %s samples to %s", count, dataset, out_dir)
    return PreparedSamples(out_dir, manifest)


def _fill_all(
    specs: list[TensorSpec],
    dtypes: list[np.dtype[Any]],
    sample_bytes: list[int],
    count: int,
    fill: Callable[[int], Sequence[np.ndarray]],
    fds: dict[str, int],
    offsets: dict[str, int],
    hashes: dict[str, list[str]],
    threads: int | None,
    show_progress: bool,
    dataset: str,
) -> None:
    """Run fill(i) for every i on worker threads; the first error stops all and is re-raised."""
    next_index = itertools.count()  # next() on itertools.count is atomic under the GIL
    stop = threading.Event()
    done = [0]
    done_lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            i = next(next_index)
            if i >= count:
                return
            try:
                arrays = fill(i)
            except DataError:
                raise
            except Exception as err:
                raise DataError(f"preparing {dataset} sample {i} failed: {err}") from err
            if len(arrays) != len(specs):
                raise DataError(
                    f"preparing {dataset} sample {i}: fill returned {len(arrays)} arrays for"
                    f" {len(specs)} tensors ({', '.join(n for n, _, _ in specs)})"
                )
            for (name, dtype_name, shape), dtype, nbytes, arr in zip(
                specs, dtypes, sample_bytes, arrays, strict=True
            ):
                arr = np.asarray(arr)
                if arr.shape != shape or arr.dtype != dtype:
                    raise DataError(
                        f"preparing {dataset} sample {i}: tensor {name!r} is {arr.dtype}"
                        f" {arr.shape}, expected {dtype_name} {shape}"
                    )
                arr = np.ascontiguousarray(arr)
                view = arr.data.cast("B")
                hashes[name][i] = hashlib.sha256(view).hexdigest()
                written = os.pwrite(fds[name], view, offsets[name] + i * nbytes)
                while written < nbytes:  # pwrite may write less than asked
                    written += os.pwrite(
                        fds[name], view[written:], offsets[name] + i * nbytes + written
                    )
            with done_lock:
                done[0] += 1

    n_threads = max(1, min(threads or os.cpu_count() or 1, max(count, 1)))
    progress = (
        Progress(f"prepare {dataset}", total=count, unit="samples") if show_progress else None
    )
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="prepare") as pool:
        futures = [pool.submit(worker) for _ in range(n_threads)]
        try:
            pending = set(futures)
            while pending and not stop.is_set():
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                if any(f.exception() is not None for f in finished):
                    stop.set()  # the other workers finish their current sample and return
                elif progress is not None:
                    progress.update(done[0])
        finally:
            stop.set()  # also on KeyboardInterrupt in this thread
            wait(futures)
            errors = [e for e in (f.exception() for f in futures) if e is not None]
            if progress is not None:
                if not errors:
                    progress.update(done[0], force=True)
                progress.close()
    if errors:
        raise errors[0]
