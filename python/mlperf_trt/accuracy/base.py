"""The accuracy layer's seam: a metric reads an accuracy log and reports the checker's line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlperf_trt.benchmarks import AccuracyMetric
from mlperf_trt.results import atomic_write_text


@dataclass(frozen=True)
class Report:
    """What a metric found: the line the submission checker parses (SPEC §1.3) and the values."""

    line: str  # printed exactly as the reference script prints it
    values: dict[str, float]  # checker metric key -> value (e.g. {"acc": 76.456})
    details: dict[str, object]

    def verdict(self, targets: tuple[AccuracyMetric, ...]) -> tuple[bool, list[str]]:
        """(all targets met, one line per target)."""
        lines, ok = [], True
        for t in targets:
            value = self.values.get(t.key)
            if value is None:
                continue
            passed = t.passes(value)
            ok &= passed
            bound = f">= {t.lower:g}" if t.lower is not None else ""
            if t.upper is not None:
                bound += f"{' and ' if bound else ''}<= {t.upper:g}"
            lines.append(f"{t.key} = {value:.6g}: {'PASS' if passed else 'FAIL'} (target {bound})")
        return ok, lines


def write_accuracy_txt(folder: Path, report: Report, verdict_lines: list[str]) -> Path:
    """accuracy.txt as the reference leaves it: the script's stdout (the checker's line first).

    The `hash=` line is added later, when a submission is staged (SPEC §1.3).
    """
    path = Path(folder) / "accuracy.txt"
    atomic_write_text(path, report.line + "\n" + "".join(f"# {v}\n" for v in verdict_lines))
    return path
