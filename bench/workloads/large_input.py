"""Large-input workload: one 1 GiB DataFrame shared by 8 trials.

Run as a script by bench.run under either interpreter; only the import shim
below differs between flavors. The driver builds a float64 DataFrame of 8
columns (1 GiB), passes it to 8 trials with ``tune.with_parameters``, and
each trial computes the column sums once. The figures that matter are wall
time and peak memory above idle: a system that copies the frame into every
trial needs 8 GiB more, one that shares it needs little more than the frame.
"""

import os

import numpy as np
import pandas as pd

if os.environ["BENCH_FLAVOR"] == "ray":
    from ray import tune
    from ray.tune import Tuner
else:
    import tune_client as tune
    from tune_client import Tuner

# Read once in the driver: the pickled training function carries them.
STORAGE = os.environ["BENCH_STORAGE"]
MARK_FILE = os.environ.get("BENCH_MARK_FILE", "")
ROWS = int(os.environ.get("BENCH_ROWS", str(1 << 24)))  # 2**24 x 8 x 8 B = 1 GiB
COLUMNS = 8
NUM_TRIALS = 8


def mark_trial_start() -> None:
    """Record when user code first runs, for the first_trial latency figure."""
    if MARK_FILE:
        import time

        with open(MARK_FILE, "a") as f:
            f.write(f"{time.time()!r}\n")


def column_sums(config, data):
    """Sum every column once and report the sums."""
    mark_trial_start()
    sums = data.sum()
    tune.report({f"sum_{name}": float(value) for name, value in sums.items()})


def main() -> None:
    """Run the experiment; wrong sums fail the run, not just slow it."""
    rng = np.random.default_rng(0)
    # Column by column, without pandas' consolidating copy, so building the
    # frame does not itself double the peak (for either flavor).
    data = pd.DataFrame({f"c{i}": rng.random(ROWS) for i in range(COLUMNS)}, copy=False)
    expected = data.sum()
    tuner = Tuner(
        tune.with_parameters(column_sums, data=data),
        param_space={"trial": tune.grid_search(list(range(NUM_TRIALS)))},
        run_config=tune.RunConfig(storage_path=STORAGE, name="bench_large_input"),
    )
    results = tuner.fit()
    df = results.get_dataframe()
    assert len(df) == NUM_TRIALS, f"expected {NUM_TRIALS} rows, got {len(df)}"
    for name, value in expected.items():
        got = df[f"sum_{name}"].to_numpy()
        assert np.allclose(got, value), f"column {name}: {got} != {value}"
    print(f"BENCH_OK rows={len(df)} bytes={data.memory_usage().sum()}")


if __name__ == "__main__":
    main()
