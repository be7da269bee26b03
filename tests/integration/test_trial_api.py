"""What a trainable can do inside a trial, and how trials are run, end to end
on the embedded cluster (real tune-head and tune-worker processes)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import numpy as np
import pytest

import tune_client as tune
from tune_client import Tuner

FIT_DEADLINE_S = 45.0


def quiet(**kwargs) -> tune.RunConfig:
    return tune.RunConfig(verbose=0, **kwargs)


def same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def record_interval(folder: str, tag: str, hold_s: float) -> None:
    """Write this trial's start and end times into ``folder`` (shared tmp)."""
    start = time.time()
    time.sleep(hold_s)
    end = time.time()
    with open(os.path.join(folder, f"{tag}_{os.getpid()}.json"), "w") as f:
        json.dump({"start": start, "end": end}, f)


def read_intervals(folder) -> list[tuple[float, float]]:
    intervals = []
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as f:
            record = json.load(f)
        intervals.append((record["start"], record["end"]))
    return sorted(intervals)


def assert_no_overlap(intervals: list[tuple[float, float]]) -> None:
    for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
        assert end <= next_start, f"two trials ran at the same time: {intervals}"


# ---------------------------------------------------------------------------
# get_context, the working directory and artifacts
# ---------------------------------------------------------------------------


def context_trainable(config):
    context = tune.get_context()
    with open("artifact.txt", "w") as f:
        f.write(f"written by {context.get_trial_id()}")
    os.makedirs("plots", exist_ok=True)
    with open(os.path.join("plots", "curve.csv"), "w") as f:
        f.write("x,y\n1,2\n")
    tune.report(
        {
            "ctx_trial_id": context.get_trial_id(),
            "ctx_trial_name": context.get_trial_name(),
            "ctx_trial_dir": context.get_trial_dir(),
            "ctx_experiment_name": context.get_experiment_name(),
            "cwd": os.getcwd(),
        }
    )


def test_get_context_names_the_trial_and_its_folder(storage):
    results = Tuner(
        context_trainable,
        tune_config=tune.TuneConfig(num_samples=2),
        run_config=quiet(name="ctx_exp"),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    assert len(results) == 2
    for result in results:
        metrics = result.metrics
        assert metrics["ctx_trial_id"] == metrics["trial_id"]
        assert metrics["ctx_experiment_name"] == "ctx_exp"
        assert isinstance(metrics["ctx_trial_name"], str)
        assert metrics["ctx_trial_id"] in metrics["ctx_trial_name"]
        # The trial ran in its own folder, which is the one Result.path names.
        assert same_path(metrics["ctx_trial_dir"], metrics["cwd"])
        assert same_path(metrics["ctx_trial_dir"], result.path)
        assert same_path(os.path.dirname(result.path), str(storage / "ctx_exp"))
    assert len({r.metrics["ctx_trial_name"] for r in results}) == 2
    assert len({r.path for r in results}) == 2


def test_files_written_to_cwd_land_in_the_trial_folder(storage):
    results = Tuner(context_trainable, run_config=quiet()).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    result = results[0]
    with open(os.path.join(result.path, "artifact.txt")) as f:
        assert f.read() == f"written by {result.metrics['trial_id']}"
    with open(os.path.join(result.path, "plots", "curve.csv")) as f:
        assert f.read() == "x,y\n1,2\n"
    # Nothing leaked into the client's working directory.
    assert not os.path.exists(os.path.join(os.getcwd(), "artifact.txt"))


# ---------------------------------------------------------------------------
# Resources and concurrency
# ---------------------------------------------------------------------------


def interval_trainable(config):
    record_interval(config["folder"], "trial", config["hold_s"])
    tune.report({"done_work": 1})


def test_with_resources_all_cpus_runs_one_trial_at_a_time(storage, tmp_path):
    # The embedded worker offers the machine's CPUs; asking for all of them
    # per trial leaves room for one trial at a time.
    cpus = os.cpu_count() or 2
    folder = tmp_path / "intervals"
    folder.mkdir()
    results = Tuner(
        tune.with_resources(interval_trainable, {"cpu": cpus}),
        param_space={"folder": str(folder), "hold_s": 0.3},
        tune_config=tune.TuneConfig(num_samples=3),
        run_config=quiet(),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    intervals = read_intervals(folder)
    assert len(intervals) == 3
    assert_no_overlap(intervals)


def test_max_concurrent_trials_one_runs_one_at_a_time(storage, tmp_path):
    folder = tmp_path / "intervals"
    folder.mkdir()
    results = Tuner(
        interval_trainable,
        param_space={"folder": str(folder), "hold_s": 0.3},
        tune_config=tune.TuneConfig(num_samples=3, max_concurrent_trials=1),
        run_config=quiet(),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    intervals = read_intervals(folder)
    assert len(intervals) == 3
    assert_no_overlap(intervals)


def resources_trainable(config, data):
    tune.report(
        {"total": int(sum(data)), "resources": tune.get_context().get_trial_resources()}
    )


@pytest.mark.parametrize("order", ["resources(parameters)", "parameters(resources)"])
def test_with_resources_and_with_parameters_compose(storage, order):
    payload = [1, 2, 3]
    if order == "resources(parameters)":
        trainable = tune.with_resources(
            tune.with_parameters(resources_trainable, data=payload), {"cpu": 2}
        )
    else:
        trainable = tune.with_parameters(
            tune.with_resources(resources_trainable, {"cpu": 2}), data=payload
        )
    results = Tuner(trainable, run_config=quiet()).fit()
    assert results.num_errors == 0, [str(e) for e in results.errors]
    assert results[0].metrics["total"] == 6
    assert results[0].metrics["resources"]["cpu"] == 2


# ---------------------------------------------------------------------------
# Search space: grid x samples
# ---------------------------------------------------------------------------


def echo_trainable(config):
    tune.report({"x": config["x"], "y": config["y"]})


def test_grid_search_times_num_samples(storage):
    results = Tuner(
        echo_trainable,
        param_space={"x": tune.grid_search([1, 2, 3]), "y": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=2),
        run_config=quiet(),
    ).fit()

    assert len(results) == 6
    assert results.num_errors == 0, [str(e) for e in results.errors]
    assert Counter(r.config["x"] for r in results) == {1: 2, 2: 2, 3: 2}
    for result in results:
        assert result.metrics["x"] == result.config["x"]
        assert 0 <= result.config["y"] <= 1
    frame = results.get_dataframe()
    assert sorted(frame["config/x"]) == [1, 1, 2, 2, 3, 3]


# ---------------------------------------------------------------------------
# Checkpoints read back after the run
# ---------------------------------------------------------------------------


def files_checkpoint_trainable(config):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "weights.bin"), "wb") as f:
            f.write(b"\x00\x01\x02binary")
        os.makedirs(os.path.join(d, "sub"))
        with open(os.path.join(d, "sub", "notes.txt"), "w") as f:
            f.write("nested file")
        tune.report({"step": 1}, checkpoint=tune.Checkpoint.from_directory(d))


def _read_tree(folder: str) -> dict[str, bytes]:
    found = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, folder)] = f.read()
    return found


def test_checkpoint_to_directory_and_as_directory(storage, tmp_path):
    results = Tuner(files_checkpoint_trainable, run_config=quiet()).fit()
    assert results.num_errors == 0, [str(e) for e in results.errors]
    checkpoint = results[0].checkpoint
    assert checkpoint is not None
    expected = {
        "weights.bin": b"\x00\x01\x02binary",
        os.path.join("sub", "notes.txt"): b"nested file",
    }

    target = tmp_path / "restored"
    returned = checkpoint.to_directory(str(target))
    assert same_path(returned, str(target))
    assert _read_tree(str(target)) == expected

    fresh = checkpoint.to_directory()
    assert os.path.isdir(fresh)
    assert not same_path(fresh, checkpoint.path)
    assert _read_tree(fresh) == expected

    with checkpoint.as_directory() as folder:
        assert _read_tree(folder) == expected
    # The checkpoint in storage is still whole after being read.
    assert _read_tree(checkpoint.path) == expected


# ---------------------------------------------------------------------------
# Metric values: numpy scalars and nested dicts
# ---------------------------------------------------------------------------


def numpy_metrics_trainable(config):
    for i in range(2):
        tune.report(
            {
                "np_float": np.float64(1.5 + i),
                "np_int": np.int64(3 + i),
                "np_float32": np.float32(0.25),
                "a": {"b": np.float64(10.0 * (i + 1)), "c": {"d": i}},
            }
        )


def test_numpy_and_nested_metrics_come_back_as_plain_numbers(storage):
    results = Tuner(numpy_metrics_trainable, run_config=quiet()).fit()
    assert results.num_errors == 0, [str(e) for e in results.errors]
    metrics = results[0].metrics

    assert metrics["np_float"] == 2.5
    assert type(metrics["np_float"]) is float
    assert metrics["np_int"] == 4
    assert type(metrics["np_int"]) is int
    assert metrics["np_float32"] == 0.25
    assert type(metrics["np_float32"]) is float
    assert metrics["a"] == {"b": 20.0, "c": {"d": 1}}
    assert type(metrics["a"]["b"]) is float

    history = results[0].metrics_dataframe
    assert list(history["a/b"]) == [10.0, 20.0]
    assert list(history["a/c/d"]) == [0, 1]
    assert list(history["np_int"]) == [3, 4]

    frame = results.get_dataframe()
    assert list(frame["a/b"]) == [20.0]
    best = results.get_best_result(metric="a/b", mode="max")
    assert best.metrics["a"]["b"] == 20.0


# ---------------------------------------------------------------------------
# Stopping: stop criteria and the time budget
# ---------------------------------------------------------------------------


def hundred_iterations_trainable(config):
    for i in range(100):
        time.sleep(0.01)
        tune.report({"i": i})


def test_stop_training_iteration_stops_after_exactly_three(storage):
    results = Tuner(
        hundred_iterations_trainable,
        tune_config=tune.TuneConfig(num_samples=2),
        run_config=quiet(stop={"training_iteration": 3}),
    ).fit()

    assert len(results) == 2
    assert results.num_errors == 0, [str(e) for e in results.errors]
    for result in results:
        assert result.metrics["training_iteration"] == 3
        assert result.metrics["i"] == 2
        assert list(result.metrics_dataframe["training_iteration"]) == [1, 2, 3]
        with open(os.path.join(result.path, "result.json")) as f:
            assert len(f.read().splitlines()) == 3


def test_stop_on_a_user_metric_and_with_a_function(storage):
    by_metric = Tuner(
        hundred_iterations_trainable, run_config=quiet(stop={"i": 4})
    ).fit()
    assert by_metric.num_errors == 0
    assert by_metric[0].metrics["i"] == 4
    assert len(by_metric[0].metrics_dataframe) == 5

    by_function = Tuner(
        hundred_iterations_trainable,
        run_config=quiet(stop=lambda trial_id, result: result["i"] >= 1),
    ).fit()
    assert by_function.num_errors == 0
    assert by_function[0].metrics["i"] == 1
    assert list(by_function[0].metrics_dataframe["i"]) == [0, 1]


def endless_trainable(config):
    i = 0
    while True:
        i += 1
        time.sleep(0.02)
        tune.report({"i": i})


def fit_with_deadline(tuner: Tuner, deadline_s: float = FIT_DEADLINE_S):
    """Run ``tuner.fit()`` in a thread so a fit that never ends fails the test."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["results"] = tuner.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        pytest.fail(f"Tuner.fit() did not return within {deadline_s:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]


def test_time_budget_ends_an_endless_trial(storage):
    tuner = Tuner(
        endless_trainable,
        tune_config=tune.TuneConfig(time_budget_s=1.0),
        run_config=quiet(),
    )
    results = fit_with_deadline(tuner)

    assert len(results) == 1
    result = results[0]
    # Ray Tune stops trials that outlive the budget; stopping is not an error.
    assert result.error is None, str(result.error)
    assert result.metrics["training_iteration"] >= 1
    assert result.metrics["i"] == result.metrics["training_iteration"]
    # The trial process is gone: its result.json no longer grows.
    with open(os.path.join(result.path, "result.json")) as f:
        lines = len(f.read().splitlines())
    time.sleep(0.3)
    with open(os.path.join(result.path, "result.json")) as f:
        assert len(f.read().splitlines()) == lines
    assert lines == result.metrics["training_iteration"]


# ---------------------------------------------------------------------------
# Where results go
# ---------------------------------------------------------------------------


def test_run_config_name_and_storage_path(storage, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    results = Tuner(
        echo_trainable,
        param_space={"x": 1, "y": 2},
        run_config=quiet(name="my_exp", storage_path=str(elsewhere)),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    assert same_path(results.experiment_path, str(elsewhere / "my_exp"))
    assert same_path(os.path.dirname(results[0].path), str(elsewhere / "my_exp"))
    assert os.path.isfile(os.path.join(results[0].path, "result.json"))
    assert tune.Tuner.can_restore(str(elsewhere / "my_exp"))
    # Nothing went to the default storage folder.
    assert list(storage.iterdir()) == []


def test_back_to_back_fits_keep_separate_experiments(storage):
    # Two experiments with default names, started within the same second, must
    # not share (and overwrite) one experiment folder: each stays restorable.
    Tuner(echo_trainable, param_space={"x": 0, "y": 0}, run_config=quiet()).fit()
    while time.time() % 1 > 0.3:  # start both fits early in the same second
        time.sleep(0.01)
    first = Tuner(echo_trainable, param_space={"x": 1, "y": 1}, run_config=quiet())
    second = Tuner(echo_trainable, param_space={"x": 2, "y": 2}, run_config=quiet())
    first_results, second_results = first.fit(), second.fit()

    for results, x in ((first_results, 1), (second_results, 2)):
        assert [r.config["x"] for r in results] == [x]
        restored = tune.Tuner.restore(results.experiment_path, echo_trainable)
        assert [r.config["x"] for r in restored.get_results()] == [x], (
            f"{results.experiment_path} no longer holds the experiment that ran x={x}"
        )
    assert first_results.experiment_path != second_results.experiment_path


# ---------------------------------------------------------------------------
# Trial output: RunConfig(log_to_file=...)
# ---------------------------------------------------------------------------


def chatty_trainable(config):
    """Writes to both streams the ways trainables do, and fails its first run
    when asked, to show that a retried trial appends to its files."""
    import sys

    print("stdout via print")
    print("stderr via print", file=sys.stderr)
    os.write(1, b"stdout via fd 1\n")
    tune.report({"done": 1})
    if config.get("fail_first") and not os.path.exists("failed_once"):
        open("failed_once", "w").close()
        raise RuntimeError("failing once on purpose")
    print("stdout after the last report")  # still buffered when the trial ends


def read_trial_file(trial_path: str, name: str) -> list[str]:
    with open(os.path.join(trial_path, name)) as f:
        return f.read().splitlines()


STDOUT_LINES = ["stdout via print", "stdout via fd 1", "stdout after the last report"]


@pytest.mark.parametrize(
    "log_to_file, stdout_name, stderr_name",
    [
        (True, "stdout", "stderr"),
        (("logs/out.txt", "logs/err.txt"), "logs/out.txt", "logs/err.txt"),
    ],
)
def test_log_to_file_writes_each_stream_into_the_trial_folder(
    storage, log_to_file, stdout_name, stderr_name
):
    results = Tuner(chatty_trainable, run_config=quiet(log_to_file=log_to_file)).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    path = results[0].path
    assert read_trial_file(path, stdout_name) == STDOUT_LINES
    assert read_trial_file(path, stderr_name) == ["stderr via print"]


def test_log_to_file_with_one_name_takes_both_streams_in_order(storage):
    results = Tuner(chatty_trainable, run_config=quiet(log_to_file="output.log")).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    path = results[0].path
    assert read_trial_file(path, "output.log") == [
        "stdout via print",
        "stderr via print",
        "stdout via fd 1",
        "stdout after the last report",
    ]
    assert not os.path.exists(os.path.join(path, "stdout"))


def test_without_log_to_file_the_trial_folder_has_no_output_files(storage):
    results = Tuner(chatty_trainable, run_config=quiet()).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    names = set(os.listdir(results[0].path))
    assert not names & {"stdout", "stderr"}, names


def test_a_retried_trial_appends_to_its_output_files(storage):
    results = Tuner(
        chatty_trainable,
        param_space={"fail_first": True},
        run_config=quiet(
            log_to_file=True, failure_config=tune.FailureConfig(max_failures=1)
        ),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    path = results[0].path
    first_run = ["stdout via print", "stdout via fd 1"]
    assert read_trial_file(path, "stdout") == first_run + STDOUT_LINES
    stderr = read_trial_file(path, "stderr")
    assert stderr.count("stderr via print") == 2, stderr


# ---------------------------------------------------------------------------
# Trial output on the client's terminal
# ---------------------------------------------------------------------------


def printing_trainable(config):
    import sys

    print(f"epoch line {config['x']}")
    print(f"a warning {config['x']}", file=sys.stderr)
    os.write(1, b"from C code\n")
    tune.report({"x": config["x"]})
    print("no newline at the end", end="")


def lines_of(trial_id: str, text: str) -> list[str]:
    """The lines of ``text`` that the trial ``trial_id`` wrote, unprefixed."""
    found = []
    for line in text.splitlines():
        prefix, _, rest = line.partition(") ")
        if prefix.startswith("(") and prefix.endswith(trial_id):
            found.append(rest)
    return found


def test_trial_output_is_printed_by_the_client_led_by_the_trial_name(storage, capsys):
    results = Tuner(
        printing_trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=quiet(),
    ).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    out, err = capsys.readouterr()
    for result in results:
        trial_id, x = result.metrics["trial_id"], result.config["x"]
        assert lines_of(trial_id, out) == [
            f"epoch line {x}",
            "from C code",
            "no newline at the end",
        ], out
        assert lines_of(trial_id, err) == [f"a warning {x}"], err


def test_log_to_driver_false_keeps_trial_output_off_the_client(storage, capsys):
    tune.init(log_to_driver=False)
    try:
        results = Tuner(
            printing_trainable, param_space={"x": 1}, run_config=quiet()
        ).fit()
    finally:
        tune.init()
    assert results.num_errors == 0, [str(e) for e in results.errors]
    out, err = capsys.readouterr()
    assert "epoch line" not in out + err
    assert "a warning" not in out + err


def flooding_trainable(config):
    chunk = b"x" * 1023 + b"\n"
    for _ in range(3 * 1024):  # 3 MiB, faster than any watcher needs
        os.write(1, chunk)
    time.sleep(0.5)
    print("after the flood")
    tune.report({"done": 1})


def test_the_embedded_cluster_shows_all_of_a_flood_as_a_local_script_would(
    storage, capsys
):
    results = Tuner(flooding_trainable, run_config=quiet()).fit()

    assert results.num_errors == 0, [str(e) for e in results.errors]
    out, _ = capsys.readouterr()
    mine = lines_of(results[0].metrics["trial_id"], out)
    assert mine == ["x" * 1023] * (3 * 1024) + ["after the flood"]
