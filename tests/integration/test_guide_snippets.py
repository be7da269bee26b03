"""The snippets of the user guide "Getting data in and out of Tune", in order.

Each snippet is run as the guide writes it, changed only in its imports
(``tune_client`` for ``ray.tune``) and in its epoch count and sleep, so the
whole file stays fast. Every test then checks what a user of the guide sees.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import time

import pandas as pd
import pytest

import tune_client as tune
from tune_client import Tuner
from tune_client.result_grid import AUTO_FILLED_FIELDS

EPOCHS = 3
SLEEP_S = 0  # the guide sleeps 1 s per epoch

# The guide's constant input, passed with tune.with_parameters.
data = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})

PARAM_SPACE = {
    "hyperparameter_a": tune.uniform(0, 20),
    "hyperparameter_b": tune.uniform(-100, 100),
    "epochs": EPOCHS,
}


def quiet() -> tune.RunConfig:
    return tune.RunConfig(verbose=0)


def expected_metric(config: dict, epoch: int) -> float:
    """The guide's metric, computed here from a trial's config."""
    return (0.1 + config["hyperparameter_a"] * epoch / 100) ** (-1) + config[
        "hyperparameter_b"
    ] * 0.1 * data["A"].sum()


def assert_in_guide_ranges(config: dict, epochs: int = EPOCHS) -> None:
    assert 0 <= config["hyperparameter_a"] <= 20, config
    assert -100 <= config["hyperparameter_b"] <= 100, config
    assert config["epochs"] == epochs, config


# ---------------------------------------------------------------------------
# (a) The first Trainable: nothing in, nothing out.
# ---------------------------------------------------------------------------


def training_function_first(config):
    # For now, we have nothing here.
    data = None
    model = {"hyperparameter_a": None, "hyperparameter_b": None}
    epochs = 0

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(epochs):
        # Simulate doing something expensive.
        time.sleep(SLEEP_S)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()
        trained_model = {"state": model, "epoch": epoch}  # noqa: F841
        del metric


def test_a_first_trainable_runs_four_samples(storage):
    tuner = Tuner(
        training_function_first,
        tune_config=tune.TuneConfig(num_samples=4),
        run_config=quiet(),
    )
    results = tuner.fit()

    assert len(results) == 4
    assert results.num_errors == 0
    assert results.errors == []
    assert results.num_terminated == 4
    for result in results:
        assert result.error is None
        assert result.config == {}
        assert os.path.isdir(result.path), result.path
        assert os.path.dirname(result.path) == results.experiment_path
    # The experiment lives in the storage folder (TUNE_RESULTS_DIR).
    assert os.path.dirname(results.experiment_path) == str(storage)
    assert len({r.path for r in results}) == 4


# ---------------------------------------------------------------------------
# (b) Passing data in through the search space.
# ---------------------------------------------------------------------------


def training_function_param_space(config):
    # For now, we have nothing here.
    data = None

    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(epochs):
        # Simulate doing something expensive.
        time.sleep(SLEEP_S)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()
        trained_model = {"state": model, "epoch": epoch}  # noqa: F841
        del metric


def test_b_param_space_samples_each_trial_config(storage):
    # The guide's Tuner: one sample (the default), epochs=0 before data exists.
    tuner = Tuner(
        training_function_param_space,
        param_space={
            "hyperparameter_a": tune.uniform(0, 20),
            "hyperparameter_b": tune.uniform(-100, 100),
            "epochs": 0,
        },
        run_config=quiet(),
    )
    results = tuner.fit()

    assert len(results) == 1
    assert results.num_errors == 0
    assert_in_guide_ranges(results[0].config, epochs=0)
    assert isinstance(results[0].config["hyperparameter_a"], float)
    with open(os.path.join(results[0].path, "params.json")) as f:
        assert json.load(f) == results[0].config


def test_b_param_space_with_epochs_fails_on_missing_data(storage):
    # With epochs > 0 the snippet's `data = None` fails on data["A"]: every trial
    # errors with a TypeError, and fit() still returns the grid.
    tuner = Tuner(
        training_function_param_space,
        param_space={**PARAM_SPACE, "epochs": 1},
        tune_config=tune.TuneConfig(num_samples=4),
        run_config=quiet(),
    )
    results = tuner.fit()

    assert len(results) == 4
    assert results.num_errors == 4
    assert results.num_terminated == 0
    for result in results:
        assert result.error is not None
        assert "TypeError" in str(result.error), str(result.error)
        assert "not subscriptable" in str(result.error), str(result.error)
        assert_in_guide_ranges(result.config, epochs=1)


# ---------------------------------------------------------------------------
# with_parameters: the DataFrame reaches every trial; no metrics yet.
# ---------------------------------------------------------------------------


def training_function_with_data(config, data):
    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(epochs):
        # Simulate doing something expensive.
        time.sleep(SLEEP_S)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()
        trained_model = {"state": model, "epoch": epoch}  # noqa: F841
        del metric


def test_with_parameters_passes_the_dataframe(storage):
    tuner = Tuner(
        tune.with_parameters(training_function_with_data, data=data),
        param_space=PARAM_SPACE,
        tune_config=tune.TuneConfig(num_samples=4),
        run_config=quiet(),
    )
    results = tuner.fit()

    # "The tuning run can now be run, though it won't yet obtain any meaningful
    # outputs back": every trial ran all epochs on the data without error.
    assert len(results) == 4
    assert results.num_errors == 0, [str(e) for e in results.errors]
    for result in results:
        assert_in_guide_ranges(result.config)
        assert result.checkpoint is None
    # The DataFrame is an object, not part of any trial's config.
    assert all("data" not in r.config for r in results)


# ---------------------------------------------------------------------------
# (c) Reporting metrics with Tune.
# ---------------------------------------------------------------------------


def training_function_report(config, data):
    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(epochs):
        # Simulate doing something expensive.
        time.sleep(SLEEP_S)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()
        trained_model = {"state": model, "epoch": epoch}  # noqa: F841
        tune.report(metrics={"metric": metric})


def test_c_reported_metric_picks_the_best_trial(storage):
    tuner = Tuner(
        tune.with_parameters(training_function_report, data=data),
        param_space=PARAM_SPACE,
        tune_config=tune.TuneConfig(num_samples=4, metric="metric", mode="max"),
        run_config=quiet(),
    )
    results = tuner.fit()

    assert len(results) == 4
    assert results.num_errors == 0, [str(e) for e in results.errors]
    for result in results:
        assert result.metrics["training_iteration"] == EPOCHS
        assert_in_guide_ranges(result.config)
        # The last metric is the guide's formula at the last epoch, on the data.
        assert result.metrics["metric"] == pytest.approx(
            expected_metric(result.config, EPOCHS - 1)
        )
        history = result.metrics_dataframe
        assert list(history["training_iteration"]) == list(range(1, EPOCHS + 1))
        assert list(history["metric"]) == pytest.approx(
            [expected_metric(result.config, e) for e in range(EPOCHS)]
        )
    assert len({r.metrics["trial_id"] for r in results}) == 4

    best = results.get_best_result()
    top = max(r.metrics["metric"] for r in results)
    assert best.metrics["metric"] == top
    assert (
        best.metrics["trial_id"]
        == max(results, key=lambda r: r.metrics["metric"]).metrics["trial_id"]
    )
    worst = results.get_best_result(mode="min")
    assert worst.metrics["metric"] == min(r.metrics["metric"] for r in results)


# ---------------------------------------------------------------------------
# Logging metrics with Tune callbacks (MLflow).
# ---------------------------------------------------------------------------


def test_mlflow_callback_logs_every_trial(storage, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    # The guide's callback takes only experiment_name; point MLflow's default
    # tracking store at a tmp folder the usual way, through the environment.
    tracking_uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # no sqlite setup cost
    from tune_client.logger.mlflow import MLflowLoggerCallback

    tuner = tune.Tuner(
        tune.with_parameters(training_function_report, data=data),
        param_space=PARAM_SPACE,
        tune_config=tune.TuneConfig(num_samples=4, metric="metric", mode="max"),
        run_config=tune.RunConfig(
            callbacks=[MLflowLoggerCallback(experiment_name="example")], verbose=0
        ),
    )
    results = tuner.fit()
    assert results.num_errors == 0

    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("example")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    by_a = {round(float(run.data.params["hyperparameter_a"]), 6): run for run in runs}
    for result in results:
        run = by_a[round(result.config["hyperparameter_a"], 6)]
        assert run.data.metrics["metric"] == pytest.approx(result.metrics["metric"])
        history = client.get_metric_history(run.info.run_id, "metric")
        assert len(history) == EPOCHS


# ---------------------------------------------------------------------------
# (d) Checkpoints & other artifacts, and results.get_dataframe().
# ---------------------------------------------------------------------------


def training_function_checkpoint(config, data):
    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    # Load the checkpoint, if there is any.
    checkpoint = tune.get_checkpoint()
    start_epoch = 0
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        start_epoch = checkpoint_dict["epoch"] + 1
        model = checkpoint_dict["state"]

    # Simulate training & evaluation - we obtain back a "metric" and a "trained_model".
    for epoch in range(start_epoch, epochs):
        # Simulate doing something expensive.
        time.sleep(SLEEP_S)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()

        checkpoint_dict = {"state": model, "epoch": epoch}

        # Create the checkpoint.
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            with open(os.path.join(temp_checkpoint_dir, "model.pkl"), "wb") as f:
                pickle.dump(checkpoint_dict, f)
            tune.report(
                {"metric": metric},
                checkpoint=tune.Checkpoint.from_directory(temp_checkpoint_dir),
            )


def checkpoint_tuner() -> Tuner:
    return tune.Tuner(
        tune.with_parameters(training_function_checkpoint, data=data),
        param_space=PARAM_SPACE,
        tune_config=tune.TuneConfig(num_samples=4, metric="metric", mode="max"),
        run_config=quiet(),
    )


def test_d_checkpoints_and_trial_folders(storage):
    results = checkpoint_tuner().fit()

    assert len(results) == 4
    assert results.num_errors == 0, [str(e) for e in results.errors]
    for result in results:
        config = result.config
        assert_in_guide_ranges(config)

        # The latest checkpoint holds the guide's model.pkl of the last epoch.
        assert result.checkpoint is not None
        with result.checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
                saved = pickle.load(f)
        assert saved == {
            "state": {
                "hyperparameter_a": config["hyperparameter_a"],
                "hyperparameter_b": config["hyperparameter_b"],
            },
            "epoch": EPOCHS - 1,
        }
        assert result.metrics["checkpoint_dir_name"] == f"checkpoint_{EPOCHS - 1:06d}"

        # The trial folder has the layout Ray Tune users know.
        names = set(os.listdir(result.path))
        expected = {"params.json", "params.pkl", "result.json", "progress.csv"}
        expected |= {f"checkpoint_{i:06d}" for i in range(EPOCHS)}
        assert expected <= names, sorted(names)
        assert f"checkpoint_{EPOCHS:06d}" not in names
        for i in range(EPOCHS):
            with open(
                os.path.join(result.path, f"checkpoint_{i:06d}", "model.pkl"), "rb"
            ) as f:
                assert pickle.load(f)["epoch"] == i

        with open(os.path.join(result.path, "params.json")) as f:
            assert json.load(f) == config
        with open(os.path.join(result.path, "params.pkl"), "rb") as f:
            assert pickle.load(f) == config

        with open(os.path.join(result.path, "result.json")) as f:
            lines = [json.loads(line) for line in f.read().splitlines()]
        assert [r["training_iteration"] for r in lines] == list(range(1, EPOCHS + 1))
        assert [r["metric"] for r in lines] == pytest.approx(
            [expected_metric(config, e) for e in range(EPOCHS)]
        )

        progress = pd.read_csv(os.path.join(result.path, "progress.csv"))
        assert list(progress["training_iteration"]) == list(range(1, EPOCHS + 1))
        assert list(progress["metric"]) == pytest.approx([r["metric"] for r in lines])

    frame = results.get_dataframe()
    assert len(frame) == 4
    expected_columns = [
        "metric",
        *AUTO_FILLED_FIELDS,
        "config/hyperparameter_a",
        "config/hyperparameter_b",
        "config/epochs",
        "logdir",
    ]
    missing = [c for c in expected_columns if c not in frame.columns]
    assert not missing, (missing, list(frame.columns))
    assert sorted(frame["logdir"]) == sorted(r.path for r in results)
    assert list(frame["training_iteration"]) == [EPOCHS] * 4
    assert list(frame["config/epochs"]) == [EPOCHS] * 4
    assert sorted(frame["metric"]) == pytest.approx(
        sorted(r.metrics["metric"] for r in results)
    )
    assert frame["trial_id"].nunique() == 4
    assert set(frame["pid"]).isdisjoint({os.getpid()})
    assert all(isinstance(d, str) and d for d in frame["date"])
    assert not any(frame["done"].isna())


# ---------------------------------------------------------------------------
# (e) How to access Tune results after finishing.
# ---------------------------------------------------------------------------


def _snapshot(path: str) -> dict[str, float]:
    """Every file under ``path`` with its size, to see that nothing ran."""
    found = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            found[os.path.relpath(full, path)] = os.path.getsize(full)
    return found


def test_e_restore_reads_results_without_running(storage, tmp_path):
    results = checkpoint_tuner().fit()
    assert results.num_errors == 0
    experiment_path = results.experiment_path
    before = _snapshot(experiment_path)

    assert tune.Tuner.can_restore(experiment_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not tune.Tuner.can_restore(str(empty))

    restored = tune.Tuner.restore(
        experiment_path,
        trainable=tune.with_parameters(training_function_checkpoint, data=data),
    )
    restored_results = restored.get_results()

    assert len(restored_results) == 4
    assert restored_results.num_errors == 0

    def by_trial(grid):
        return {r.metrics["trial_id"]: r for r in grid}

    original, again = by_trial(results), by_trial(restored_results)
    assert set(original) == set(again)
    for trial_id, result in original.items():
        other = again[trial_id]
        assert other.config == result.config
        assert other.metrics["metric"] == pytest.approx(result.metrics["metric"])
        assert other.metrics["training_iteration"] == EPOCHS
        assert other.path == result.path
        assert other.checkpoint is not None
        with other.checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
                assert pickle.load(f)["epoch"] == EPOCHS - 1
    # The TuneConfig's metric and mode come back with the experiment.
    best = restored_results.get_best_result()
    assert best.metrics["metric"] == max(r.metrics["metric"] for r in results)
    # Nothing ran again: no file was added or grew.
    assert _snapshot(experiment_path) == before
    assert not math.isnan(best.metrics["metric"])


def test_e_restored_finished_experiment_fit_runs_nothing(storage):
    results = checkpoint_tuner().fit()
    assert results.num_errors == 0
    before = _snapshot(results.experiment_path)
    first = {r.metrics["trial_id"]: r.metrics for r in results}

    restored = tune.Tuner.restore(
        results.experiment_path,
        trainable=tune.with_parameters(training_function_checkpoint, data=data),
    )
    again = restored.fit()

    assert len(again) == 4
    assert again.num_errors == 0
    for result in again:
        old = first[result.metrics["trial_id"]]
        assert result.metrics["training_iteration"] == EPOCHS
        assert result.metrics["pid"] == old["pid"]  # the same, finished run
        assert len(result.metrics_dataframe) == EPOCHS
    # The experiment's own state files may be rewritten on restore, but no
    # trial ran again: every file in the trial folders is as it was.
    after = _snapshot(results.experiment_path)

    def trial_files(snapshot):
        return {k: v for k, v in snapshot.items() if os.sep in k}

    assert trial_files(after) == trial_files(before)
