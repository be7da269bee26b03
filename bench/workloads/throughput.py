"""Throughput workload: 2 trials each reporting 20,000 results as fast as they can.

Run as a script by bench.run under either interpreter; only the import shim
below differs between flavors. The trainable does nothing but report, so the
figure is the system's own cost per result, end to end: from the trial's
``report`` call to the result being durable in storage and handed to the
client's callbacks. A result that is dropped, or written after fit() returns,
would make a fast figure worthless, so the script checks both before printing
it and exits non-zero if either count is short:

- every trial's ``result.json`` (read from ``result.path``) has 20,000 lines;
- a Callback counting ``on_trial_result`` saw all 40,000 results.

Figures (``BENCH_METRIC`` lines, read by bench.measure):

- ``results_per_s``: 40,000 / the seconds from fit() being called to it
  returning; cluster start-up is inside that window for both flavors.
- ``head_cpu_us_per_result`` (ours only): CPU time the head process spent per
  result, from the callbacks' ``setup`` (called once the head is up, before the
  experiment is submitted) to fit() returning. Ray has no single process that
  plays the head's part, so it has no such figure.
"""

import os
import sys
import time

if os.environ["BENCH_FLAVOR"] == "ray":
    from ray import tune
    from ray.tune import Tuner
else:
    import tune_client as tune
    from tune_client import Tuner

# Read once in the driver: the pickled training function carries them.
STORAGE = os.environ["BENCH_STORAGE"]
RESULTS_PER_TRIAL = int(os.environ.get("BENCH_RESULTS", "20000"))
NUM_TRIALS = 2
OURS = os.environ["BENCH_FLAVOR"] != "ray"


def report_fast(config):
    """Report as fast as the system lets us; the work is the reporting."""
    for i in range(RESULTS_PER_TRIAL):
        tune.report({"i": i, "loss": 1.0 / (i + 1)})


def head_cpu_seconds() -> float | None:
    """User plus system CPU of our embedded head so far; None for Ray."""
    if not OURS:
        return None
    import psutil

    from tune_client import cluster

    embedded = cluster._embedded
    if embedded is None or "head" not in embedded.processes:
        return None
    times = psutil.Process(embedded.processes["head"].pid).cpu_times()
    return times.user + times.system


class CountResults(tune.Callback):
    """Count results the client saw; note the head's CPU before trials start."""

    def __init__(self):
        self.results = 0
        self.head_cpu_at_setup = None

    def setup(self, *args, **kwargs):
        self.head_cpu_at_setup = head_cpu_seconds()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results += 1


def count_lines(path: str) -> int:
    """Lines of a trial's result.json, each one result that reached storage."""
    with open(os.path.join(path, "result.json"), "rb") as f:
        return sum(1 for _ in f)


def main() -> int:
    """Run, check every result is durable and seen, then print the figures."""
    counter = CountResults()
    tuner = Tuner(
        tune.with_resources(report_fast, {"cpu": 1}),
        param_space={"trial": tune.grid_search(list(range(NUM_TRIALS)))},
        run_config=tune.RunConfig(
            storage_path=STORAGE,
            name="bench_throughput",
            callbacks=[counter],
            verbose=0,
        ),
    )
    started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - started
    head_cpu_after = head_cpu_seconds()

    expected = NUM_TRIALS * RESULTS_PER_TRIAL
    lines = [count_lines(result.path) for result in results]
    errors = [str(result.error) for result in results if result.error]
    print(f"fit {fit_s:.2f} s; result.json lines per trial: {lines}")
    print(f"on_trial_result calls: {counter.results} (expected {expected})")
    ok = (
        not errors
        and len(lines) == NUM_TRIALS
        and all(n == RESULTS_PER_TRIAL for n in lines)
        and counter.results == expected
    )
    if not ok:
        print(f"BENCH_FAILED errors={errors}", file=sys.stderr)
        return 1
    print(f"BENCH_METRIC results_per_s={expected / fit_s:.1f} results/s")
    if head_cpu_after is not None and counter.head_cpu_at_setup is not None:
        used_us = (head_cpu_after - counter.head_cpu_at_setup) * 1e6
        print(f"BENCH_METRIC head_cpu_us_per_result={used_us / expected:.2f} us")
    print(f"BENCH_OK results={expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
