"""mlperf_trt.system: detection on this machine, the system id, the systems JSON (SPEC.md §5.3)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlperf_trt import system
from mlperf_trt.errors import ConfigError
from mlperf_trt.system import GpuInfo, SystemInfo

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@pytest.fixture(autouse=True)
def _no_id_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(system.SYSTEM_ID_ENV, raising=False)


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A monkeypatch after which detect()'s cache again holds the real machine."""
    yield monkeypatch
    monkeypatch.undo()
    system.detect(refresh=True)


def _info(
    gpus: tuple[GpuInfo, ...] = (), model: str = "AMD EPYC 9654 96-Core Processor"
) -> SystemInfo:
    return SystemInfo(
        cpu_model=model,
        cpu_sockets=2,
        cpu_cores=192,
        cpu_threads=384,
        cpu_flags=frozenset({"avx2", "avx512f"}),
        numa_nodes=2,
        memory_bytes=1536 * 2**30,
        gpus=gpus,
        hostname="node1",
        os_name="Ubuntu 22.04.4 LTS",
    )


def test_detect_reads_this_machine() -> None:
    info = system.detect(refresh=True)
    assert info.cpu_threads == len(os.sched_getaffinity(0))
    assert 1 <= info.cpu_cores <= (os.cpu_count() or info.cpu_cores)
    assert info.cpu_sockets >= 1 and info.numa_nodes >= 1
    assert info.cpu_model
    if Path("/proc/meminfo").exists():
        total = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        assert total is not None
        assert info.memory_bytes == int(total.group(1)) * 1024
    if Path("/proc/cpuinfo").exists() and "flags" in Path("/proc/cpuinfo").read_text():
        assert "fpu" in info.cpu_flags or "sse2" in info.cpu_flags
    # The cache returns the very same record until refresh.
    assert system.detect() is system.detect()


def test_detect_without_nvidia_smi_finds_no_gpu(
    fake_probe: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_probe.setenv("PATH", str(tmp_path))  # a PATH without nvidia-smi
    info = system.detect(refresh=True)
    assert info.gpus == ()
    assert info.system_id.startswith("cpu-")


def test_broken_nvidia_smi_never_raises(fake_probe: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    fake.chmod(0o755)
    fake_probe.setenv("PATH", str(tmp_path))  # detect() finds the fake nvidia-smi first
    assert system.detect(refresh=True).gpus == ()
    fake.write_text("#!/bin/sh\necho '0, NVIDIA H200, 143771, GPU-aaaa'\n")
    info = system.detect(refresh=True)
    assert info.gpus == (GpuInfo(0, "NVIDIA H200", 143771, "GPU-aaaa"),)
    assert info.system_id == "1xH200"
    # A hung driver: detect() gives up after the timeout.
    fake.write_text(f"#!/bin/sh\nexec {sleep} 5\n")
    fake_probe.setattr(system, "_NVIDIA_SMI_TIMEOUT_S", 0.2)
    assert system.detect(refresh=True).gpus == ()


def test_system_id_is_safe_and_stable() -> None:
    info = system.detect()
    ident = info.system_id
    assert SAFE.fullmatch(ident) and len(ident) <= 48
    assert system.detect(refresh=True).system_id == ident
    cpu = _info(model="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz")
    assert cpu.system_id == "cpu-Intel-Xeon-Platinum-8480-384t"
    long_name = _info(model="Some Vendor (TM) " + "Very Long Model Name " * 6)
    assert SAFE.fullmatch(long_name.system_id) and len(long_name.system_id) <= 48
    assert long_name.system_id.endswith("-384t")


def test_system_id_from_gpus() -> None:
    gpus = tuple(GpuInfo(i, "NVIDIA H100 80GB HBM3", 81559, f"GPU-{i}") for i in range(8))
    assert _info(gpus).system_id == "8xH100-80GB-HBM3"
    mixed = (GpuInfo(0, "NVIDIA A100-SXM4-80GB", 81920, "a"), GpuInfo(1, "Tesla T4", 15360, "b"))
    assert _info(mixed).system_id == "1xA100-SXM4-80GB_1xTesla-T4"


def test_system_id_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(system.SYSTEM_ID_ENV, "acme-lab_2xH200")
    assert system.detect().system_id == "acme-lab_2xH200"
    monkeypatch.setenv(system.SYSTEM_ID_ENV, "../escape")
    with pytest.raises(ConfigError, match=system.SYSTEM_ID_ENV):
        _ = system.detect().system_id


def test_parse_nvidia_smi_and_cpuinfo() -> None:
    text = "1, NVIDIA H200, 143771, GPU-b\n0, NVIDIA H200, 143771, GPU-a\nNo devices were found\n"
    gpus = system.parse_nvidia_smi(text)
    assert [g.index for g in gpus] == [0, 1] and gpus[0].uuid == "GPU-a"
    cpuinfo = "".join(
        f"processor\t: {n}\nmodel name\t: Xeon X\n"
        f"physical id\t: {n // 4}\ncore id\t\t: {n % 4 // 2}\nflags\t\t: fpu avx2 amx_int8\n\n"
        for n in range(8)
    )
    model, sockets, cores, flags = system.parse_cpuinfo(cpuinfo)
    assert (model, sockets, cores) == ("Xeon X", 2, 4)  # 2 sockets x 2 cores x 2 threads
    assert {"avx2", "amx_int8"} <= flags


def test_system_description_has_every_required_key() -> None:
    info = _info(tuple(GpuInfo(i, "NVIDIA H200", 143771, f"GPU-{i}") for i in range(2)))
    desc = system.system_description(info, division="closed", submitter="ACME")
    assert list(desc) == list(system.REQUIRED_SYSTEM_FIELDS)
    assert len(system.REQUIRED_SYSTEM_FIELDS) == len(set(system.REQUIRED_SYSTEM_FIELDS)) == 35
    assert set(system.REQUIRED_SYSTEM_FIELDS) >= system.MEANINGFUL_FIELDS
    assert desc["host_processors_per_node"] == "2"
    assert desc["host_processor_core_count"] == "96"  # per processor
    assert desc["host_memory_capacity"] == "1536 GB"
    assert desc["accelerators_per_node"] == "2"
    assert desc["accelerator_model_name"] == "NVIDIA H200"
    assert desc["accelerator_memory_capacity"] == "140 GB"
    assert desc["operating_system"] == "Ubuntu 22.04.4 LTS"
    json.dumps(desc)  # JSON-serializable as is


def test_missing_meaningful_fields_and_overrides() -> None:
    desc = system.system_description(_info(), division="open", submitter="ACME")
    missing = system.missing_meaningful_fields(desc)
    assert "framework" in missing and "system_name" in missing and "cooling" in missing
    assert "host_processor_model_name" not in missing
    assert "accelerators_per_node" not in missing  # "0" as a string is a meaningful answer
    assert all(field in system.MEANINGFUL_FIELDS for field in missing)
    assert set(missing) == {f for f in system.MEANINGFUL_FIELDS if not str(desc[f]).strip()}

    filled = {field: f"value of {field}" for field in missing}
    full = system.system_description(_info(), division="open", submitter="ACME", overrides=filled)
    assert system.missing_meaningful_fields(full) == []
    assert full["framework"] == "value of framework"
    # The checker tests `not value`: a numeric 0 counts as empty.
    assert system.missing_meaningful_fields({**full, "accelerators_per_node": 0}) == [
        "accelerators_per_node"
    ]
    absent = dict(full)
    del absent["cooling"]
    assert system.missing_meaningful_fields(absent) == ["cooling"]


def test_system_description_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="division"):
        system.system_description(_info(), division="Closed-ish", submitter="ACME")
    with pytest.raises(ConfigError, match="system_type"):
        system.system_description(_info(), division="closed", submitter="A", system_type="cloud")
    with pytest.raises(ConfigError, match="host_memory_capacity"):
        system.system_description(
            _info(), division="closed", submitter="A", overrides={"host_memory_capcity": "1 TB"}
        )
    power = system.system_description(
        _info(), division="closed", submitter="A", overrides={"power_management": "on"}
    )
    assert power["power_management"] == "on"
