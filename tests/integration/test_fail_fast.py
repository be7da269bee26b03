"""FailureConfig(fail_fast=...): one failing trial ends the whole experiment.

As in Ray Tune, ``fail_fast=True`` stops the running trials, starts no pending
one, and ``fit()`` returns a ResultGrid holding the error; ``fail_fast="raise"``
makes ``fit()`` raise the trial's error instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import tune_client as tune
from tests.conftest import wait_for
from tune_client.errors import TrialError, TuneConfigError

STEPS = 100  # 10 s of work: far longer than a stopped experiment takes to end


def first_breaks(config):
    """Trial 0 raises once trial 1 runs; the others count slowly."""
    marks = Path(config["marks"])
    (marks / f"{config['i']}.start").touch()
    if config["i"] == 0:
        deadline = time.monotonic() + 20
        while not (marks / "1.start").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise ValueError("trial 0 breaks on purpose")
    for step in range(STEPS):
        time.sleep(0.1)
        tune.report({"step": step})


def _fit(tmp_path: Path, fail_fast: bool | str) -> tune.ResultGrid:
    marks = tmp_path / "marks"
    marks.mkdir()
    return tune.Tuner(
        first_breaks,
        param_space={"marks": str(marks), "i": tune.grid_search([0, 1, 2, 3])},
        run_config=tune.RunConfig(
            name="ff",
            storage_path=str(tmp_path / "out"),
            verbose=0,
            failure_config=tune.FailureConfig(fail_fast=fail_fast),
        ),
    ).fit()


@pytest.fixture
def two_cpu_cluster(daemons, connect):
    daemons.start_head()
    daemons.start_worker(cpus=2)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    return daemons


def _started(tmp_path: Path) -> list[str]:
    return sorted(p.stem for p in (tmp_path / "marks").glob("*.start"))


def test_fail_fast_ends_the_experiment_and_returns_the_error(two_cpu_cluster, tmp_path):
    results = _fit(tmp_path, True)
    assert results.num_errors == 1
    (error,) = results.errors
    assert "trial 0 breaks on purpose" in str(error)
    assert _started(tmp_path) == ["0", "1"], "a pending trial started after the error"
    stopped = [r for r in results if r.config["i"] == 1]
    assert len(stopped) == 1 and stopped[0].error is None
    assert stopped[0].metrics.get("step", 0) < STEPS - 1, "it ran to its end"


def test_fail_fast_raise_makes_fit_raise_the_trials_error(two_cpu_cluster, tmp_path):
    with pytest.raises(TrialError, match="trial 0 breaks on purpose"):
        _fit(tmp_path, "raise")
    assert _started(tmp_path) == ["0", "1"]
    stored = tune.Tuner.restore(str(tmp_path / "out" / "ff"), first_breaks)
    (stopped,) = [r for r in stored.get_results() if r.config["i"] == 1]
    assert stopped.metrics.get("step", 0) < STEPS - 1, "it ran to its end"


@pytest.mark.parametrize(
    "failure_config, cause",
    [
        ({"fail_fast": "later"}, 'neither True, False nor "raise"'),
        ({"fail_fast": True, "max_failures": 2}, "would never happen"),
        ({"max_failures": -2}, "-1 to retry forever"),
    ],
)
def test_a_failure_config_that_cannot_work_fails_at_once(failure_config, cause):
    with pytest.raises(TuneConfigError, match=cause):
        tune.FailureConfig(**failure_config)
