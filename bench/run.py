"""Benchmark entry point: run each workload under Ray Tune and under ours.

Adding a workload means adding a script to bench/workloads/ and one entry to
WORKLOADS below. Workloads that share a script and environment share their
runs, so a figure derived from the same process (first_trial) costs nothing.
A workload's figure is a harness field (wall_s, first_trial_s) or the name of
a ``BENCH_METRIC`` line its script prints; the script's other BENCH_METRIC
lines are shown as extra rows under it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import ray_env, report
from bench.measure import RunResult, RunSpec, run_once, tail

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD_DIR = Path(__file__).resolve().parent / "workloads"
BENCH_DIR = ROOT / ".bench"
OUR_PYTHON = ROOT / ".venv" / "bin" / "python"
FLAVORS = ("ray", "tune")  # run order within each round: Ray first, then ours


@dataclass(frozen=True)
class Workload:
    """A script, its environment overrides, and which run figure it reports."""

    script: str
    env: dict[str, str] = field(default_factory=dict)
    # wall_s, first_trial_s, or the name of a BENCH_METRIC line of the script
    metric: str = "wall_s"
    # Overrides under --quick, for both flavors: a smaller size.
    quick_env: dict[str, str] = field(default_factory=dict)
    # Per-flavor overrides unless --full-size: a size at which that flavor alone
    # would take too long for an everyday run (said in the output when used).
    scaled_env: dict[str, dict[str, str]] = field(default_factory=dict)
    services: tuple[str, ...] = ()  # started around each run: "s3"
    # Who runs it: a figure Ray has no counterpart for is ours alone.
    flavors: tuple[str, ...] = FLAVORS

    @property
    def run_key(self) -> tuple:
        return (
            self.script,
            tuple(sorted(self.env.items())),
            tuple(sorted(self.quick_env.items())),
            tuple((f, tuple(sorted(e.items()))) for f, e in self.scaled_env.items()),
            self.services,
            self.flavors,
        )

    def env_for(self, flavor: str, quick: bool, full_size: bool) -> dict[str, str]:
        """The overrides one flavor's runs get: base, scaled, then quick."""
        env = dict(self.env)
        if not full_size:
            env.update(self.scaled_env.get(flavor, {}))
        if quick:
            env.update(self.quick_env)
        return env


# 200 of bookkeeping's 1,000 trials: Ray at ~1 trial/s would take ~18 min a run.
SMALL_BOOKKEEPING = {"BENCH_TRIALS": "200"}

WORKLOADS: dict[str, Workload] = {
    "seed": Workload("seed.py", {"BENCH_SLEEP": "1"}),
    "seed_nosleep": Workload("seed.py", {"BENCH_SLEEP": "0"}),
    "first_trial": Workload("seed.py", {"BENCH_SLEEP": "0"}, "first_trial_s"),
    "large_input": Workload("large_input.py"),
    "throughput": Workload("throughput.py", metric="results_per_s"),
    "bookkeeping": Workload(
        "bookkeeping.py",
        metric="trials_per_s",
        quick_env=SMALL_BOOKKEEPING,
        scaled_env={"ray": SMALL_BOOKKEEPING},
    ),
    "checkpoints_local": Workload(
        "checkpoints.py", {"BENCH_TARGET": "local"}, metric="fit_mb_s"
    ),
    "checkpoints_s3": Workload(
        "checkpoints.py", {"BENCH_TARGET": "s3"}, metric="fit_mb_s", services=("s3",)
    ),
    "object_pull": Workload(
        "object_pull_rate.py", metric="pull_gb_s", flavors=("tune",)
    ),
}


def _csv(choices: tuple[str, ...] | list[str]) -> Callable[[str], list[str]]:
    """Argparse type for a comma list restricted to known names."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown or 'empty list'}; choose from {','.join(choices)}"
            )
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--workloads",
        type=_csv(list(WORKLOADS)),
        default=list(WORKLOADS),
        help=f"comma list, default all: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--flavors",
        type=_csv(FLAVORS),
        default=list(FLAVORS),
        help="comma list of ray,tune (tune = ours); default both",
    )
    parser.add_argument("--repeat", type=int, default=3, help="counted runs each")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="same as --repeat 1, and smaller sizes where a workload has them",
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="run every flavor at the full size (no per-flavor scaling)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds allowed per run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    return args


def resolve_pythons(flavors: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Map each flavor to its interpreter; a flavor that cannot be set up fails."""
    pythons, failures = {}, []
    for flavor in flavors:
        try:
            pythons[flavor] = _python_for(flavor)
        except Exception as exc:  # any setup error fails only this flavor
            print(f"!! cannot set up flavor {flavor}: {exc}", flush=True)
            failures.append(f"{flavor}: setup")
    return pythons, failures


def _python_for(flavor: str) -> Path:
    if flavor == "ray":
        return ray_env.ensure_ray_env()
    return OUR_PYTHON if OUR_PYTHON.exists() else Path(sys.executable)


def group_workloads(names: list[str]) -> dict[str, list[str]]:
    """Group workloads that can share runs; keyed by the first one's name."""
    groups: dict[tuple, list[str]] = {}
    for name in names:
        groups.setdefault(WORKLOADS[name].run_key, []).append(name)
    return {members[0]: members for members in groups.values()}


def _describe(result: RunResult, repeat: int) -> str:
    label = "warm-up" if result.warmup else f"run {result.index}/{repeat}"
    if not result.ok:
        return f"{label}: FAILED ({result.error})"
    text = f"{label}: {result.wall_s:.2f} s"
    text += f", peak +{result.peak_mem_bytes / report.MIB:.0f} MiB"
    text += f" (+{result.peak_mem_with_cache_bytes / report.MIB:.0f} with cache)"
    if result.first_trial_s is not None:
        text += f", first trial at {result.first_trial_s:.2f} s"
    for name, found in result.metrics.items():
        text += f", {name} {found['value']:.6g} {found['unit']}".rstrip()
    return text


def scaling_notes(names: list[str], flavors: list[str], args) -> list[str]:
    """Say which flavor ran a workload at another size than the others."""
    notes = []
    for name in names:
        workload = WORKLOADS[name]
        sizes = {f: workload.env_for(f, args.quick, args.full_size) for f in flavors}
        if args.quick and workload.quick_env:
            notes.append(f"{name}: --quick size {_env_text(workload.quick_env)}")
        for flavor, env in sizes.items():
            scaled = {k: v for k, v in env.items() if workload.env.get(k) != v}
            if scaled and not args.quick:
                notes.append(
                    f"{name}: {report.LABELS[flavor]} ran at {_env_text(scaled)} "
                    "(scaled down; --full-size for the full size)"
                )
    return notes


def _env_text(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(env.items()))


def _report_failure(result: RunResult) -> None:
    """Show why a run failed without making the reader open the logs."""
    print(f"   logs: {result.stdout_path} / {result.stderr_path}")
    for path in (result.stdout_path, result.stderr_path):
        text = tail(path)
        if text:
            print(f"   --- tail of {Path(path).name} ---")
            print("\n".join("   | " + line for line in text.splitlines()))


def run_group(
    group: str, pythons: dict[str, Path], args: argparse.Namespace, log_dir: Path
) -> list[RunResult]:
    """Warm up each flavor, then alternate flavors run by run.

    Alternating spreads slow phases of the machine over both flavors alike; a
    flavor that fails once is dropped for the rest of this group.
    """
    workload = WORKLOADS[group]
    alive = [f for f in FLAVORS if f in pythons and f in workload.flavors]
    results: list[RunResult] = []
    for index in range(args.repeat + 1):
        for flavor in list(alive):
            spec = RunSpec(
                group=group,
                flavor=flavor,
                python=pythons[flavor],
                script=WORKLOAD_DIR / workload.script,
                env=workload.env_for(flavor, args.quick, args.full_size),
                index=index,
                log_dir=log_dir,
                timeout=args.timeout,
                services=workload.services,
                service_python=pythons.get("tune", OUR_PYTHON),
            )
            result = run_once(spec)
            results.append(result)
            print(f"[{group}] {flavor:4} {_describe(result, args.repeat)}", flush=True)
            if result.leftover_pids:
                print(
                    f"   !! daemons still alive after the run: {result.leftover_pids}"
                )
            if not result.ok:
                _report_failure(result)
                alive.remove(flavor)
    return results


def summarise(
    groups: dict[str, list[str]], runs: list[RunResult], flavors: list[str]
) -> dict[str, dict]:
    """Per selected workload: its figure and memory for each flavor asked for.

    Further figures the group's script printed go, once, under its first
    member as ``extra``; a flavor need not print them (only ours has a head).
    """
    summaries = {}
    for group, members in groups.items():
        headline = {WORKLOADS[name].metric for name in members}
        runners = [f for f in flavors if f in WORKLOADS[members[0]].flavors]
        for name in members:
            summaries[name] = _summarise_figure(
                runs, group, WORKLOADS[name].metric, runners
            )
        summaries[members[0]]["extra"] = {
            metric: _summarise_figure(runs, group, metric, runners)
            for metric in report.script_metrics(runs, group)
            if metric not in headline
        }
    return summaries


def _summarise_figure(
    runs: list[RunResult], group: str, metric: str, flavors: list[str]
) -> dict:
    return {
        "metric": metric,
        **report.describe_figure(runs, group, metric),
        "flavors": {
            f: report.summarise_flavor(runs, group, f, metric) for f in flavors
        },
    }


def _failed_flavors(summaries: dict[str, dict]) -> list[str]:
    return [
        f"{name}: {flavor}"
        for name, s in summaries.items()
        for flavor, fs in s["flavors"].items()
        if fs["failed"] or fs["metric"] is None
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = BENCH_DIR / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    pythons, failures = resolve_pythons(args.flavors)
    groups = group_workloads(args.workloads)
    notes = scaling_notes(args.workloads, list(pythons), args)
    for note in notes:
        print(f"note: {note}", flush=True)
    runs: list[RunResult] = []
    for group in groups:
        print(f"== {' + '.join(groups[group])}", flush=True)
        runs += run_group(group, pythons, args, log_dir)
    summaries = summarise(groups, runs, args.flavors)
    report.print_table(summaries, notes)
    out = BENCH_DIR / f"results-{stamp}.json"
    meta = {
        "timestamp": stamp,
        "repeat": args.repeat,
        "quick": args.quick,
        "full_size": args.full_size,
        "flavors": args.flavors,
    }
    meta["workloads"] = {n: vars(WORKLOADS[n]) for n in args.workloads}
    report.write_json(out, meta, summaries, runs)
    print(f"raw figures: {out}\nlogs: {log_dir}")
    failures += _failed_flavors(summaries)
    if failures:
        print("FAILED: " + "; ".join(dict.fromkeys(failures)), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
