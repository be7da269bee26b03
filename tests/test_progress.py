"""What ``fit()`` prints while it runs: a table in a terminal, lines otherwise."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest

from tune_client.progress import ProgressReporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # rich wraps cells at the width


@dataclass
class FakeTrial:
    trial_name: str
    status: str
    config: dict
    last_result: dict = field(default_factory=dict)
    storage_error: str = ""


TRIALS = [
    FakeTrial("train_00000", "RUNNING", {"lr": 0.25, "net": {"depth": 3}}),
    FakeTrial(
        "train_00001",
        "TERMINATED",
        {"lr": 0.5, "net": {"depth": 5}},
        {"training_iteration": 10, "loss": 0.125},
    ),
]


def reporter(stream) -> ProgressReporter:
    progress = ProgressReporter("loss", "min", ["lr", "net/depth"], 1, stream)
    progress.last_print -= 60  # as if the interval had passed
    return progress


def test_a_terminal_gets_a_table_of_trials_with_their_config_and_metric():
    stream = Terminal()
    reporter(stream).maybe_report(TRIALS)
    table = stream.getvalue()
    for cell in ["trial", "status", "lr", "net/depth", "iter", "loss"]:
        assert cell in table
    row = next(line for line in table.splitlines() if "│ train_00001" in line)
    for cell in ["TERMINATED", "0.5", "5", "10", "0.125"]:
        assert cell in row, row
    assert "1 RUNNING, 1 TERMINATED; best loss=0.125 (train_00001)" in table


def test_a_pipe_gets_one_summary_line_per_interval():
    stream = io.StringIO()
    progress = reporter(stream)
    progress.maybe_report(TRIALS)
    progress.maybe_report(TRIALS)  # too soon: nothing more
    [line] = stream.getvalue().splitlines()
    assert line.endswith(
        "trials: 1 RUNNING, 1 TERMINATED; best loss=0.125 (train_00001)"
    )


def test_the_last_line_gives_totals_elapsed_time_and_the_results_folder():
    stream = io.StringIO()
    reporter(stream).final(TRIALS, "/results/exp")
    [line] = stream.getvalue().splitlines()
    assert line.startswith("Experiment finished in ")
    assert line.endswith(" s: 1 RUNNING, 1 TERMINATED. Results: /results/exp")


def test_verbose_zero_prints_nothing():
    stream = Terminal()
    progress = ProgressReporter("loss", "min", ["lr"], 0, stream)
    progress.maybe_report(TRIALS)
    progress.final(TRIALS, "/results/exp")
    assert stream.getvalue() == ""


def test_a_failed_checkpoint_upload_shows_in_the_trials_status():
    stream = Terminal()
    failing = [FakeTrial("train_00002", "RUNNING", {"lr": 1.0}, storage_error="x")]
    reporter(stream).maybe_report(failing)
    assert "checkpoint upload failed" in stream.getvalue()
