"""Summarise raw runs into the comparison table and the JSON record.

Medians are the headline because a single slow run on a 2-core machine says
more about the machine than about the system; min-max shows that spread.
"""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import asdict
from pathlib import Path

import psutil

from bench.measure import RunResult

MIB = 1024 * 1024
LABELS = {"ray": "Ray Tune", "tune": "ours"}


def _counted(runs: list[RunResult], group: str, flavor: str) -> list[RunResult]:
    return [r for r in runs if r.group == group and r.flavor == flavor and not r.warmup]


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarise_flavor(
    runs: list[RunResult], group: str, flavor: str, metric: str
) -> dict:
    """Median/min/max of one metric and of peak memory for one flavor."""
    mine = _counted(runs, group, flavor)
    failed = any(not r.ok for r in _all(runs, group, flavor))
    values = [getattr(r, metric) for r in mine if r.ok]
    values = [v for v in values if v is not None]
    memory = [r.peak_mem_bytes for r in mine if r.ok]
    return {
        "failed": failed,
        "metric": _stats(values),
        "peak_mem_bytes": _stats(memory),
    }


def _all(runs: list[RunResult], group: str, flavor: str) -> list[RunResult]:
    return [r for r in runs if r.group == group and r.flavor == flavor]


def ratio(summary: dict) -> float | None:
    """Ray's median over ours: above 1 means we are faster."""
    ray = (summary.get("ray") or {}).get("metric")
    ours = (summary.get("tune") or {}).get("metric")
    if not ray or not ours or ours["median"] <= 0:
        return None
    return ray["median"] / ours["median"]


def _fmt_time(flavor_summary: dict | None) -> str:
    if flavor_summary is None:
        return "-"
    stats = flavor_summary["metric"]
    if flavor_summary["failed"] or stats is None:
        return "FAILED"
    return f"{stats['median']:.2f} ({stats['min']:.2f}-{stats['max']:.2f})"


def _fmt_mem(flavor_summary: dict | None) -> str:
    if flavor_summary is None or flavor_summary["peak_mem_bytes"] is None:
        return "-"
    return f"{flavor_summary['peak_mem_bytes']['median'] / MIB:.0f}"


HEADERS = ["workload", "figure", "Ray s", "ours s", "Ray/ours", "Ray MiB", "ours MiB"]
METRIC_LABELS = {"wall_s": "wall time", "first_trial_s": "to 1st trial"}
CAPTION = (
    "s: median (min-max) seconds.  Ray/ours > 1: we are faster.  "
    "MiB: median peak machine memory above idle."
)


def table_rows(summaries: dict[str, dict]) -> list[list[str]]:
    """One text row per workload, in the order the workloads ran."""
    rows = []
    for name, s in summaries.items():
        r = ratio(s["flavors"])
        rows.append(
            [
                name,
                METRIC_LABELS.get(s["metric"], s["metric"]),
                _fmt_time(s["flavors"].get("ray")),
                _fmt_time(s["flavors"].get("tune")),
                "-" if r is None else f"{r:.2f}x",
                _fmt_mem(s["flavors"].get("ray")),
                _fmt_mem(s["flavors"].get("tune")),
            ]
        )
    return rows


def print_table(summaries: dict[str, dict]) -> None:
    """Print with rich when it is there, plain aligned text otherwise."""
    rows = table_rows(summaries)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain(rows)
        return
    table = Table(title="Ray Tune vs ours", caption=CAPTION)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console()
    # Logs and pipes report 80 columns; the table needs a little more.
    console.width = max(console.width, 110)
    console.print(table)


def _print_plain(rows: list[list[str]]) -> None:
    """Fallback for interpreters without rich."""
    widths = [max(len(x) for x in col) for col in zip(HEADERS, *rows, strict=True)]
    for row in [HEADERS, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def machine_info() -> dict:
    """Enough context to tell whether two result files are comparable."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def write_json(
    path: Path, meta: dict, summaries: dict[str, dict], runs: list[RunResult]
) -> None:
    """Keep every raw figure so later analysis need not rerun anything."""
    record = {
        **meta,
        "machine": machine_info(),
        "summary": summaries,
        "runs": [asdict(r) for r in runs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
