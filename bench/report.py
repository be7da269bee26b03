"""Summarise raw runs into the comparison table and the JSON record.

Medians are the headline because a single slow run on a 2-core machine says
more about the machine than about the system; min-max shows that spread.
Figures are either lower-is-better (seconds, CPU per result) or
higher-is-better (rates); the ratio is taken so that above 1 always means we
are better, whichever way the figure points.
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
    values = [r.figure(metric) for r in mine if r.ok]
    values = [v for v in values if v is not None]
    memory = [r.peak_mem_bytes for r in mine if r.ok]
    with_cache = [r.peak_mem_with_cache_bytes for r in mine if r.ok]
    return {
        "failed": failed,
        "metric": _stats(values),
        "peak_mem_bytes": _stats(memory),
        "peak_mem_with_cache_bytes": _stats(with_cache),
    }


def _all(runs: list[RunResult], group: str, flavor: str) -> list[RunResult]:
    return [r for r in runs if r.group == group and r.flavor == flavor]


HARNESS_FIGURES = {"wall_s": "wall time", "first_trial_s": "to 1st trial"}


def describe_figure(runs: list[RunResult], group: str, metric: str) -> dict:
    """Unit and direction of a figure: the harness's own, or as a script printed."""
    if metric in HARNESS_FIGURES:
        return {"unit": "s", "higher_is_better": False}
    for run in runs:
        if run.group == group and metric in run.metrics:
            found = run.metrics[metric]
            return {
                "unit": found["unit"],
                "higher_is_better": found["higher_is_better"],
            }
    return {"unit": "", "higher_is_better": False}


def script_metrics(runs: list[RunResult], group: str) -> list[str]:
    """Every metric name the group's scripts printed, in first-seen order."""
    names: dict[str, None] = {}
    for run in runs:
        if run.group == group:
            names.update(dict.fromkeys(run.metrics))
    return list(names)


def ratio(summary: dict, higher_is_better: bool = False) -> float | None:
    """Above 1 means we are better: Ray/ours for times, ours/Ray for rates."""
    ray = (summary.get("ray") or {}).get("metric")
    ours = (summary.get("tune") or {}).get("metric")
    if not ray or not ours:
        return None
    top, bottom = (ours, ray) if higher_is_better else (ray, ours)
    if bottom["median"] <= 0:
        return None
    return top["median"] / bottom["median"]


def _num(value: float) -> str:
    """Three significant figures or so, for seconds and rates in the thousands."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _fmt_figure(flavor_summary: dict | None, optional: bool = False) -> str:
    """Median (min-max); FAILED, or '-' for a figure this flavor does not print."""
    if flavor_summary is None:
        return "-"
    stats = flavor_summary["metric"]
    if flavor_summary["failed"]:
        return "FAILED"
    if stats is None:
        return "-" if optional else "FAILED"
    if stats["n"] == 1:
        return _num(stats["median"])
    return f"{_num(stats['median'])} ({_num(stats['min'])}-{_num(stats['max'])})"


def _fmt_mem(flavor_summary: dict | None) -> str:
    """Median peak memory above idle, then the same counting the page cache."""
    if flavor_summary is None or flavor_summary["peak_mem_bytes"] is None:
        return "-"
    used = flavor_summary["peak_mem_bytes"]["median"] / MIB
    cached = (flavor_summary.get("peak_mem_with_cache_bytes") or {}).get("median")
    return f"{used:.0f}" if cached is None else f"{used:.0f} / {cached / MIB:.0f}"


HEADERS = ["workload", "figure", "Ray", "ours", "ours vs Ray", "Ray MiB", "ours MiB"]
CAPTION = (
    "median (min-max) of the counted runs.  ours vs Ray > 1: we are better "
    "(Ray/ours for times, ours/Ray for rates).  "
    "MiB: median peak machine memory above idle, as 'used' (page cache of "
    "files left out, /dev/shm counted) / counting the page cache too."
)


def _label(metric: str, figure: dict) -> str:
    """'wall time (s)', 'results_per_s (results/s)': the name and its unit.

    Parentheses, not brackets: rich would take '[us]' for markup and drop it.
    """
    name = HARNESS_FIGURES.get(metric, metric)
    return f"{name} ({figure['unit']})" if figure["unit"] else name


def _row(name: str, metric: str, s: dict, optional: bool) -> list[str]:
    r = ratio(s["flavors"], s["higher_is_better"])
    ray, ours = s["flavors"].get("ray"), s["flavors"].get("tune")
    return [
        name,
        _label(metric, s),
        _fmt_figure(ray, optional),
        _fmt_figure(ours, optional),
        "-" if r is None else f"{r:.2f}x",
        "" if optional else _fmt_mem(ray),
        "" if optional else _fmt_mem(ours),
    ]


def table_rows(summaries: dict[str, dict]) -> list[list[str]]:
    """One row per workload in run order, then one per further script figure."""
    rows = []
    for name, s in summaries.items():
        rows.append(_row(name, s["metric"], s, optional=False))
        for metric, extra in s.get("extra", {}).items():
            rows.append(_row("", metric, extra, optional=True))
    return rows


def print_table(summaries: dict[str, dict], notes: list[str] | None = None) -> None:
    """Print with rich when it is there, plain aligned text otherwise.

    ``notes`` (a flavor run at a smaller size, say) follow the table, so a
    reader of a pasted table sees them too.
    """
    rows = table_rows(summaries)
    try:
        _print_rich(rows)
    except ImportError:
        _print_plain(rows)
    for note in notes or []:
        print(f"note: {note}")


def _print_rich(rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Ray Tune vs ours", caption=CAPTION)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console()
    # Logs and pipes report 80 columns; the table needs a little more.
    console.width = max(console.width, 130)
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
