"""The engine folder both backends write (DESIGN §5, docs/engines.md "Complete or not"): its
name parts, the per-file record in recipe.json, and the completeness check of a cache hit."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from mlperf_trt.backends.base import EngineRecipe
from mlperf_trt.errors import BackendError

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.json"


def check_name(value: str, what: str) -> str:
    """`value` as one folder name of the engine path (system id, benchmark)."""
    if not value or value in (".", "..") or value.startswith(".") or "/" in value or "\\" in value:
        raise BackendError(
            f"{what} {value!r} cannot be a folder name: expected a plain name such as 'resnet50'"
        )
    return value


def file_entry(path: Path) -> dict[str, Any]:
    """The record of one engine file in recipe.json: its size and sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def complete_record(final: Path, recipe: EngineRecipe, engine_file: str) -> dict[str, Any] | None:
    """recipe.json of `final` when the folder holds a finished build of `recipe` (the digest
    matches and every listed file, `engine_file` among them, is there with its size), else None."""
    try:
        record = json.loads((final / RECIPE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("ignoring unreadable %s (%s); rebuilding", final / RECIPE_FILE, err)
        return None
    if not isinstance(record, dict) or record.get("digest") != recipe.digest():
        return None
    files = record.get("files")
    if not isinstance(files, dict) or engine_file not in files:
        return None
    for name, entry in files.items():
        path = final / name
        if not path.is_file() or path.stat().st_size != (entry or {}).get("bytes"):
            log.warning("%s is missing or changed since the build; rebuilding", path)
            return None
    return record
