"""What machine this is: CPUs, NUMA, memory, GPUs; the system id; the submission's system JSON.

Detection reads /proc, /sys and `nvidia-smi` only when asked (never at import), never raises on a
machine without a GPU or without nvidia-smi, and is cached for the process (DESIGN.md §2 "system").
The system id names the engine and result folders (DESIGN.md §5); the system-description JSON is
the `systems/<system_desc_id>.json` of a submission (SPEC.md §5.3).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.errors import ConfigError, closest

__all__ = [
    "MEANINGFUL_FIELDS",
    "OPTIONAL_SYSTEM_FIELDS",
    "REQUIRED_SYSTEM_FIELDS",
    "SYSTEM_ID_ENV",
    "GpuInfo",
    "SystemInfo",
    "detect",
    "missing_meaningful_fields",
    "parse_cpuinfo",
    "parse_nvidia_smi",
    "system_description",
]

log = logging.getLogger(__name__)

SYSTEM_ID_ENV = "MLPERF_TRT_SYSTEM_ID"
_NVIDIA_SMI_QUERY = (
    "--query-gpu=index,name,memory.total,uuid",
    "--format=csv,noheader,nounits",
)
_NVIDIA_SMI_TIMEOUT_S = 5.0
_ID_MAX = 48
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as nvidia-smi reports it."""

    index: int
    name: str  # e.g. "NVIDIA H200"
    memory_mib: int
    uuid: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")


def _gpu_slug(name: str) -> str:
    name = re.sub(r"^\s*NVIDIA\s+", "", name)  # "NVIDIA H100 80GB HBM3" -> "H100-80GB-HBM3"
    return _slug(name) or "gpu"


def _cpu_slug(model: str) -> str:
    text = re.sub(r"\((R|TM|r|tm)\)", " ", model)  # Intel(R) Xeon(R) -> Intel Xeon
    text = re.sub(r"@.*$", " ", text)  # drop the nominal frequency
    text = re.sub(r"\b(CPU|Processor)\b", " ", text)
    return _slug(text) or "unknown"


@dataclass(frozen=True)
class SystemInfo:
    """The detected machine."""

    cpu_model: str
    cpu_sockets: int
    cpu_cores: int  # physical cores, all sockets
    cpu_threads: int  # logical CPUs this process may use (sched_getaffinity)
    cpu_flags: frozenset[str]  # e.g. "avx2", "avx512f", "avx512_vnni", "amx_int8"
    numa_nodes: int
    memory_bytes: int
    gpus: tuple[GpuInfo, ...]
    hostname: str
    os_name: str

    @property
    def system_id(self) -> str:
        """A stable, filesystem-safe id for engine and result paths (DESIGN.md §5).

        "<N>x<GPU-name>" per GPU model (e.g. "1xH200", "8xH100-80GB-HBM3"), joined by "_" on a
        mixed machine; without GPUs "cpu-<cpu-model>-<threads>t". The environment variable
        MLPERF_TRT_SYSTEM_ID overrides it.
        """
        override = os.environ.get(SYSTEM_ID_ENV)
        if override is not None:
            if not _SAFE_ID.fullmatch(override) or len(override) > 120:
                raise ConfigError(
                    f"{SYSTEM_ID_ENV}={override!r} is not a usable folder name: expected letters,"
                    " digits, '_', '.' or '-' (not starting with '.' or '-', at most 120 chars),"
                    " e.g. 'acme-2xH200'"
                )
            return override
        if self.gpus:
            counts: dict[str, int] = {}
            for gpu in self.gpus:
                slug = _gpu_slug(gpu.name)
                counts[slug] = counts.get(slug, 0) + 1
            ident = "_".join(f"{count}x{slug}" for slug, count in counts.items())
            return ident[:_ID_MAX].rstrip("-._")
        suffix = f"-{self.cpu_threads}t"
        stem = f"cpu-{_cpu_slug(self.cpu_model)}"[: _ID_MAX - len(suffix)].rstrip("-._")
        return stem + suffix


def parse_cpuinfo(text: str) -> tuple[str, int, int, frozenset[str]]:
    """(model name, sockets, physical cores, flags) from the text of /proc/cpuinfo.

    Sockets and cores come from the distinct "physical id" and ("physical id", "core id") pairs;
    0 means the file does not say (e.g. on Arm), and detect() then asks /sys.
    """
    model = ""
    flags: set[str] = set()
    sockets: set[str] = set()
    cores: set[tuple[str, str]] = set()
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if not model:
            model = (
                fields.get("model name") or fields.get("cpu model") or fields.get("hardware", "")
            )
        flags.update((fields.get("flags") or fields.get("features") or "").split())
        if "physical id" in fields:
            sockets.add(fields["physical id"])
            if "core id" in fields:
                cores.add((fields["physical id"], fields["core id"]))
    return model, len(sockets), len(cores), frozenset(flags)


def parse_nvidia_smi(text: str) -> tuple[GpuInfo, ...]:
    """GPUs from `nvidia-smi --query-gpu=index,name,memory.total,uuid` (csv, noheader, nounits).

    Lines that do not have four fields with an integer index are skipped (with a log line), so
    a driver message never breaks detection.
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4:
            log.warning("ignoring nvidia-smi line %r: expected index, name, memory, uuid", line)
            continue
        index, name, memory, uuid = fields
        try:
            gpu_index = int(index)
        except ValueError:
            log.warning("ignoring nvidia-smi line %r: the index is not an integer", line)
            continue
        try:
            memory_mib = int(float(memory))
        except ValueError:
            memory_mib = 0  # "[N/A]" on some MIG or vGPU setups
        gpus.append(GpuInfo(gpu_index, name, memory_mib, uuid))
    return tuple(sorted(gpus, key=lambda gpu: gpu.index))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _sysfs_topology() -> tuple[int, int]:
    """(sockets, physical cores) from /sys/devices/system/cpu/cpu*/topology; (0, 0) if absent."""
    packages: set[str] = set()
    cores: set[tuple[str, str]] = set()
    try:
        topologies = list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"))
    except OSError:
        return 0, 0
    for topo in topologies:
        package = _read(str(topo / "physical_package_id")).strip()
        core = _read(str(topo / "core_id")).strip()
        if package:
            packages.add(package)
            cores.add((package, core))
    return len(packages), len(cores)


def _numa_nodes() -> int:
    try:
        nodes = [p for p in Path("/sys/devices/system/node").glob("node[0-9]*") if p.is_dir()]
    except OSError:
        return 1
    return max(1, len(nodes))


def _memory_bytes() -> int:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", _read("/proc/meminfo"), re.MULTILINE)
    if match:
        return int(match.group(1)) * 1024
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _os_name() -> str:
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', _read("/etc/os-release"), re.MULTILINE)
    if match and match.group(1).strip():
        return match.group(1).strip()
    return platform.platform()


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _hostname() -> str:
    try:
        return socket.gethostname() or platform.node()
    except OSError:
        return platform.node()


def _gpus() -> tuple[GpuInfo, ...]:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return ()
    try:
        done = subprocess.run(
            [binary, *_NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("nvidia-smi did not answer (%s); assuming no GPUs", err)
        return ()
    if done.returncode != 0:
        log.warning(
            "nvidia-smi exited with %d (%s); assuming no GPUs",
            done.returncode,
            done.stderr.strip() or done.stdout.strip(),
        )
        return ()
    return parse_nvidia_smi(done.stdout)


def _detect() -> SystemInfo:
    model, sockets, cores, flags = parse_cpuinfo(_read("/proc/cpuinfo"))
    if sockets == 0 or cores == 0:
        sockets, cores = _sysfs_topology()
    threads = _threads()
    return SystemInfo(
        cpu_model=model or platform.processor() or platform.machine() or "unknown",
        cpu_sockets=max(1, sockets),
        cpu_cores=cores if cores > 0 else (os.cpu_count() or threads),
        cpu_threads=threads,
        cpu_flags=flags,
        numa_nodes=_numa_nodes(),
        memory_bytes=_memory_bytes(),
        gpus=_gpus(),
        hostname=_hostname(),
        os_name=_os_name(),
    )


_cache: SystemInfo | None = None
_cache_lock = threading.Lock()


def detect(refresh: bool = False) -> SystemInfo:
    """Detect this machine once per process (again with refresh=True). Never raises."""
    global _cache
    with _cache_lock:
        if _cache is None or refresh:
            _cache = _detect()
        return _cache


# SPEC.md §5.3: every key of systems/<system_desc_id>.json, in the order listed there; a "*"
# marks the fields the checker requires to be non-empty (it tests `not value`).
_SYSTEM_FIELDS = """
division* submitter* status* system_type* system_type_detail system_name* number_of_nodes*
host_processor_model_name* host_processors_per_node* host_processor_core_count*
host_processor_frequency host_processor_caches host_processor_interconnect
host_memory_capacity* host_memory_configuration* host_storage_capacity* host_storage_type*
host_networking* host_network_card_count* host_networking_topology* accelerators_per_node*
accelerator_model_name* accelerator_memory_capacity* accelerator_memory_configuration*
accelerator_host_interconnect* accelerator_interconnect* accelerator_interconnect_topology
accelerator_frequency accelerator_on-chip_memories cooling* hw_notes framework*
operating_system* other_software_stack* sw_notes
""".split()  # noqa: SIM905 - a table of names reads better than a list literal
REQUIRED_SYSTEM_FIELDS: tuple[str, ...] = tuple(f.rstrip("*") for f in _SYSTEM_FIELDS)
MEANINGFUL_FIELDS: frozenset[str] = frozenset(f[:-1] for f in _SYSTEM_FIELDS if f.endswith("*"))


# SPEC.md §5.3: optional power and network-division fields (unknown keys only warn in the checker,
# but a misspelt required key would be missing, so overrides must use one of the known names).
OPTIONAL_SYSTEM_FIELDS: frozenset[str] = frozenset(
    {
        "power_management",
        "filesystem",
        "boot_firmware_version",
        "management_firmware_version",
        "other_hardware",
        "number_of_type_nics_installed",
        "nics_enabled_firmware",
        "nics_enabled_os",
        "nics_enabled_connected",
        "network_speed_mbit",
        "power_supply_quantity_and_rating_watts",
        "power_supply_details",
        "disk_drives",
        "disk_controllers",
        "system_power_only",
        "is_network",
        "network_type",
        "network_media",
        "network_rate",
        "nic_loadgen",
        "number_nic_loadgen",
        "net_software_stack_loadgen",
        "network_protocol",
        "number_connections",
        "nic_sut",
        "number_nic_sut",
        "net_software_stack_sut",
        "network_topology",
    }
)

_DIVISIONS = ("closed", "open", "network")
_STATUSES = ("available", "preview", "rdi")
_SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")


def _choice(value: str, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise ConfigError(
            f"system description {field} {value!r} is not allowed: expected one of"
            f" {', '.join(choices)} (SPEC.md §5.3){closest(value, choices)}"
        )
    return value


def _gb(num_bytes: float) -> str:
    return f"{round(num_bytes / 2**30)} GB"


def system_description(
    info: SystemInfo,
    *,
    division: str,
    submitter: str,
    status: str = "available",
    system_type: str = "datacenter",
    overrides: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The system-description JSON (SPEC.md §5.3) as a dict with every REQUIRED_SYSTEM_FIELDS key.

    Detected facts fill the host and accelerator fields; `overrides` win over everything; fields
    nothing could fill are "". Counts are written as strings, as published systems JSONs do (the
    checker treats a numeric 0 as empty). A CPU-only system gets accelerators_per_node "0" and "N/A"
    for the accelerator fields, as CPU submissions do. Check the result with
    missing_meaningful_fields() before packaging a submission.
    """
    _choice(division, _DIVISIONS, "division")
    _choice(status, _STATUSES, "status")
    _choice(system_type, _SYSTEM_TYPES, "system_type")
    desc: dict[str, object] = {field: "" for field in REQUIRED_SYSTEM_FIELDS}
    desc.update(
        division=division,
        submitter=submitter,
        status=status,
        system_type=system_type,
        number_of_nodes="1",
        host_processor_model_name=info.cpu_model,
        host_processors_per_node=str(info.cpu_sockets),
        host_processor_core_count=str(max(1, info.cpu_cores // max(1, info.cpu_sockets))),
        host_memory_capacity=_gb(info.memory_bytes) if info.memory_bytes > 0 else "",
        operating_system=info.os_name,
        accelerators_per_node=str(len(info.gpus)),
    )
    if info.gpus:
        names = sorted({gpu.name for gpu in info.gpus})
        memories = sorted({round(gpu.memory_mib / 1024) for gpu in info.gpus if gpu.memory_mib})
        desc["accelerator_model_name"] = ", ".join(names)
        desc["accelerator_memory_capacity"] = ", ".join(f"{gb} GB" for gb in memories)
    else:
        for field in (
            "accelerator_model_name",
            "accelerator_memory_capacity",
            "accelerator_memory_configuration",
            "accelerator_host_interconnect",
            "accelerator_interconnect",
        ):
            desc[field] = "N/A"
    for key, value in (overrides or {}).items():
        if key not in desc and key not in OPTIONAL_SYSTEM_FIELDS:
            known = (*REQUIRED_SYSTEM_FIELDS, *sorted(OPTIONAL_SYSTEM_FIELDS))
            raise ConfigError(
                f"system description override {key!r} is not a field of the systems JSON"
                f" (SPEC.md §5.3){closest(key, known)}; use one of the documented field names"
            )
        desc[key] = value
    return desc


def _is_empty(value: object) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (int, float)):
        return value == 0  # the checker's `not value`: write "0" as a string
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def missing_meaningful_fields(desc: Mapping[str, object]) -> list[str]:
    """The ★ fields of SPEC.md §5.3 that are absent or empty in `desc`, in the SPEC order."""
    return [
        field
        for field in REQUIRED_SYSTEM_FIELDS
        if field in MEANINGFUL_FIELDS and _is_empty(desc.get(field))
    ]
