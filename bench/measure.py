"""Run one workload process and measure it from the outside.

Every figure is taken around a whole interpreter process, so start-up, cluster
bring-up and shutdown all count, as a user waiting on a script would see them.
A figure only the script can take (a rate over its fit() call, say) comes back
as a ``BENCH_METRIC name=value unit [higher|lower]`` line on its stdout.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import s3_server

SAMPLE_INTERVAL_S = 0.05
# Unset for the child so each system starts its own local cluster from cold,
# rather than joining one a developer happens to have running.
CLUSTER_ADDRESS_VARS = ("TUNE_ADDRESS", "TUNE_TOKEN", "RAY_ADDRESS")
# Complete, unbuffered logs; no usage-stats upload attempts (there is no network).
QUIET_ENV = {
    "PYTHONUNBUFFERED": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}

# Every process a run starts inherits this tag, so the ones that outlive it
# can be told from anybody else's on a shared machine.
RUN_TAG = "BENCH_RUN_ID"
SETTLE_GRACE_S = 10.0

# BENCH_METRIC results_per_s=10234.5 results/s [higher|lower]
METRIC_LINE = re.compile(
    r"^BENCH_METRIC\s+(?P<name>[A-Za-z_][\w.]*)=(?P<value>\S+)"
    r"(?:\s+(?P<unit>\S+))?(?:\s+(?P<better>higher|lower))?\s*$"
)
# Services a workload can ask for, started by the harness around each run (not
# timed) so that neither flavor's script carries their cost or their packages.
SERVICES = ("s3",)


def _used_with_cache() -> int:
    memory = psutil.virtual_memory()
    return memory.total - memory.free


@dataclass
class RunResult:
    """Raw figures of one process run; written verbatim to the JSON file."""

    group: str
    flavor: str
    index: int
    warmup: bool
    ok: bool
    returncode: int | None
    wall_s: float
    peak_mem_bytes: int
    first_trial_s: float | None
    stdout_path: str
    stderr_path: str
    error: str = ""
    # Peak memory counting the page cache too (see MemorySampler).
    peak_mem_with_cache_bytes: int = 0
    leftover_pids: list[int] = field(default_factory=list)
    # name -> {"value", "unit", "higher_is_better"}, from BENCH_METRIC lines
    metrics: dict[str, dict] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the workload's overrides

    def figure(self, name: str) -> float | None:
        """A harness field (wall_s, first_trial_s) or a metric the script printed."""
        if name in ("wall_s", "first_trial_s"):
            return getattr(self, name)
        found = self.metrics.get(name)
        return None if found is None else found["value"]


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to start one run of one workload under one flavor."""

    group: str
    flavor: str
    python: Path
    script: Path
    env: dict[str, str]
    index: int  # 0 for the warm-up, then 1..repeat
    log_dir: Path
    timeout: float
    services: tuple[str, ...] = ()
    service_python: Path | None = None  # an interpreter with moto, for "s3"

    @property
    def run_id(self) -> str:
        return f"{os.getpid()}-{self.group}-{self.flavor}-{self.index}"

    @property
    def log_prefix(self) -> Path:
        label = "warmup" if self.index == 0 else f"run{self.index}"
        return self.log_dir / f"{self.group}-{self.flavor}-{label}"


class MemorySampler:
    """Track peak machine-wide memory use above a baseline in a thread.

    Machine-wide rather than per process tree because both systems spread work
    over daemons, raylets and workers that may not stay our descendants.

    Two readings: ``used`` (total minus what the kernel calls available)
    leaves out the page cache of ordinary files but counts ``/dev/shm``, so
    an object store kept in files looks smaller than one kept in shared
    memory; ``with cache`` (total minus free) counts both alike, and also any
    other file the run reads or writes.
    """

    def __init__(self) -> None:
        self.baseline = psutil.virtual_memory().used
        self.baseline_with_cache = _used_with_cache()
        self.peak = self.baseline
        self.peak_with_cache = self.baseline_with_cache
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, psutil.virtual_memory().used)
            self.peak_with_cache = max(self.peak_with_cache, _used_with_cache())

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def above_baseline_with_cache(self) -> int:
        return max(0, self.peak_with_cache - self.baseline_with_cache)

    @property
    def above_baseline(self) -> int:
        return max(0, self.peak - self.baseline)


def _child_env(
    spec: RunSpec, workdir: Path, service_env: dict[str, str]
) -> dict[str, str]:
    """Build the child's environment: ours, the services', the workload's."""
    env = {k: v for k, v in os.environ.items() if k not in CLUSTER_ADDRESS_VARS}
    env.update(QUIET_ENV)
    env.update(
        BENCH_FLAVOR=spec.flavor,
        BENCH_RUN_ID=spec.run_id,
        BENCH_STORAGE=str(workdir / "storage"),
        BENCH_MARK_FILE=str(workdir / "marks.txt"),
    )
    env.update(service_env)
    env.update(spec.env)
    return env


def _start_services(spec: RunSpec, stack: ExitStack) -> dict[str, str]:
    """Start what the workload needs, fresh for this run; return env to reach it."""
    env: dict[str, str] = {}
    for service in spec.services:
        if service == "s3":
            python = spec.service_python or Path(sys.executable)
            log = spec.log_prefix.with_suffix(".s3.log")
            env.update(stack.enter_context(s3_server.running(python, log)))
        else:
            raise ValueError(f"unknown service {service!r}; known: {SERVICES}")
    return env


def parse_metrics(path: str | Path) -> dict[str, dict]:
    """Collect the BENCH_METRIC lines of a run's stdout; the last one wins.

    Scripts print only what they can measure; the direction is read here so
    the report can put every ratio the same way round. With none given, a
    unit ending in ``/s`` is a rate (higher is better); anything else
    (seconds, microseconds per result) is a cost (lower is better).
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    metrics = {}
    for line in lines:
        match = METRIC_LINE.match(line.strip())
        if match is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        unit = match["unit"] or ""
        better = match["better"] or ("higher" if unit.endswith("/s") else "lower")
        metrics[match["name"]] = {
            "value": value,
            "unit": unit,
            "higher_is_better": better == "higher",
        }
    return metrics


def _first_mark(mark_file: Path, started: float) -> float | None:
    """Seconds from process start to the earliest mark a trial wrote."""
    if not mark_file.exists():
        return None
    marks = [float(line) for line in mark_file.read_text().split() if line]
    return min(marks) - started if marks else None


def _kill_leftovers(pid: int) -> None:
    """Kill what the run left in its process group so it cannot skew the next.

    The group id is the child's own pid (it was started in a new session), so
    this only reaches processes the benchmark itself started.
    """
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tagged(run_id: str) -> list[psutil.Process]:
    """Live processes carrying this run's tag in their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RUN_TAG) == run_id:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _settle(run_id: str) -> list[int]:
    """Wait for the run's daemons to exit; kill and return any that do not.

    Daemons still shutting down, or detached and left running, would overlap
    the next run or make it warm, so each run starts on a quiet machine.
    """
    deadline = time.monotonic() + SETTLE_GRACE_S
    while (left := _tagged(run_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    return [proc.pid for proc in left]


def _wait(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for the child; return an error text if it had to be killed."""
    try:
        proc.wait(timeout=timeout)
        return ""
    except subprocess.TimeoutExpired:
        _kill_leftovers(proc.pid)
        proc.wait()
        return f"timed out after {timeout:.0f} s"


def _start(
    spec: RunSpec, workdir: Path, out, err, service_env: dict[str, str]
) -> subprocess.Popen:
    """Start the workload in its own session so its leftovers can be killed."""
    return subprocess.Popen(
        [str(spec.python), str(spec.script)],
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
        env=_child_env(spec, workdir, service_env),
        cwd=workdir,
        start_new_session=True,
    )


def _wait_for_quiet(busy_percent: float = 25.0, limit_s: float = 15.0) -> None:
    """Start a run only once the machine is idle again.

    The flavor measured just before may still be winding down (Ray's daemons
    take seconds to exit); a run starting on a busy machine would pay for it.
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if psutil.cpu_percent(interval=0.5) < busy_percent:
            return


def run_once(spec: RunSpec) -> RunResult:
    """Run the script once in a fresh temp dir and measure the whole process.

    Services start before and stop after the measured window: their start-up is
    the same for both flavors and is not what a workload measures.
    """
    out_path = spec.log_prefix.with_suffix(".stdout")
    err_path = spec.log_prefix.with_suffix(".stderr")
    with ExitStack() as stack:
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-", ignore_cleanup_errors=True)
        )
        workdir = Path(tmp)
        try:
            service_env = _start_services(spec, stack)
        except Exception as exc:  # a service that cannot start fails this run
            return _failed_to_start(spec, out_path, err_path, exc)
        _wait_for_quiet()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            with MemorySampler() as mem:
                started = time.time()
                t0 = time.perf_counter()
                proc = _start(spec, workdir, out, err, service_env)
                error = _wait(proc, spec.timeout)
                wall = time.perf_counter() - t0
        _kill_leftovers(proc.pid)
        first = _first_mark(workdir / "marks.txt", started)
        leftovers = _settle(spec.run_id)
    return RunResult(
        group=spec.group,
        flavor=spec.flavor,
        index=spec.index,
        warmup=spec.index == 0,
        ok=proc.returncode == 0 and not error,
        returncode=proc.returncode,
        wall_s=wall,
        peak_mem_bytes=mem.above_baseline,
        peak_mem_with_cache_bytes=mem.above_baseline_with_cache,
        first_trial_s=first,
        stdout_path=str(out_path),
        stderr_path=str(err_path),
        error=error or ("" if proc.returncode == 0 else f"exit {proc.returncode}"),
        leftover_pids=leftovers,
        metrics=parse_metrics(out_path),
        env=dict(spec.env),
    )


def _failed_to_start(
    spec: RunSpec, out_path: Path, err_path: Path, exc: Exception
) -> RunResult:
    """A run that never started because a service did not; its log says why."""
    err_path.write_text(f"service failed to start: {exc}\n")
    out_path.write_text("")
    return RunResult(
        group=spec.group,
        flavor=spec.flavor,
        index=spec.index,
        warmup=spec.index == 0,
        ok=False,
        returncode=None,
        wall_s=0.0,
        peak_mem_bytes=0,
        first_trial_s=None,
        stdout_path=str(out_path),
        stderr_path=str(err_path),
        error=f"service failed to start: {exc}",
        env=dict(spec.env),
    )


def tail(path: str | Path, lines: int = 30) -> str:
    """Return the last lines of a log, for printing next to a failure."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
