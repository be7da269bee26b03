"""Seed workload: the final example of Ray Tune's data in/out guide.

Run as a script by bench.run under either interpreter. Only the import shim
below differs between flavors, so both systems execute identical user code.
The MLflow callback of the original example is left out: it would measure
MLflow, not the tuning system.
"""

import os
import pickle
import tempfile
import time

import pandas as pd

if os.environ["BENCH_FLAVOR"] == "ray":
    from ray import tune
    from ray.tune import Tuner
else:
    import tune_client as tune
    from tune_client import Tuner

# Read once in the driver: the training function captures these module globals
# when it is pickled, so trial processes need not inherit the environment.
SLEEP = float(os.environ.get("BENCH_SLEEP", "1"))
MARK_FILE = os.environ.get("BENCH_MARK_FILE", "")
STORAGE = os.environ["BENCH_STORAGE"]
NUM_SAMPLES = 4


def mark_trial_start() -> None:
    """Record when user code first runs, for the first_trial latency figure."""
    if MARK_FILE:
        with open(MARK_FILE, "a") as f:
            f.write(f"{time.time()!r}\n")


def load_start_epoch() -> int:
    """Resume after the last saved epoch, as the guide's example does."""
    checkpoint = tune.get_checkpoint()
    if not checkpoint:
        return 0
    with checkpoint.as_directory() as checkpoint_dir:
        with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
            state = pickle.load(f)
    return state["epoch"] + 1


def training_function(config, data):
    """The guide's trainable, kept as close to the original as possible."""
    mark_trial_start()
    a = config["hyperparameter_a"]
    b = config["hyperparameter_b"]
    model = {"hyperparameter_a": a, "hyperparameter_b": b}
    for epoch in range(load_start_epoch(), config["epochs"]):
        time.sleep(SLEEP)
        metric = (0.1 + a * epoch / 100) ** (-1) + b * 0.1 * data["A"].sum()
        with tempfile.TemporaryDirectory() as tmpdir:
            with open(os.path.join(tmpdir, "model.pkl"), "wb") as f:
                pickle.dump({"state": model, "epoch": epoch}, f)
            tune.report(
                {"metric": metric},
                checkpoint=tune.Checkpoint.from_directory(tmpdir),
            )


def main() -> None:
    """Run the experiment; a wrong row count fails the run, not just slows it."""
    data = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})
    tuner = Tuner(
        tune.with_parameters(training_function, data=data),
        param_space={
            "hyperparameter_a": tune.uniform(0, 20),
            "hyperparameter_b": tune.uniform(-100, 100),
            "epochs": 10,
        },
        tune_config=tune.TuneConfig(
            num_samples=NUM_SAMPLES, metric="metric", mode="max"
        ),
        run_config=tune.RunConfig(storage_path=STORAGE, name="bench_seed"),
    )
    results = tuner.fit()
    df = results.get_dataframe()
    assert len(df) == NUM_SAMPLES, f"expected {NUM_SAMPLES} rows, got {len(df)}"
    print(f"BENCH_OK rows={len(df)} best={df['metric'].max():.3f}")


if __name__ == "__main__":
    main()
