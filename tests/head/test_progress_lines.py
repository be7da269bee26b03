"""progress.csv lines: made by trials, checked and appended by the head."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from tune_client.result_lines import (
    ResultLines,
    RowFormatter,
    columns_of,
    encode_result,
)
from tune_head.experiment_storage import TrialLog


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


TRICKY_RESULTS = {
    "plain": {"loss": 0.25, "step": 3, "done": False, "name": "a", "none": None},
    "text needing quotes": {"note": 'a, "b"\nc', "x": 1.5},
    "nan and infinity": {"loss": float("nan"), "best": float("inf"), "x": 1.0},
    "numpy scalars": {"loss": np.float32(0.5), "step": np.int64(7)},
    "tuple and list": {"shape": (2, 3), "sizes": [1, 2]},
    "unknown object": {"model": Opaque(), "x": 2},
    "nested dict": {"loss": 1.0, "config": {"lr": 0.1}},
}


@pytest.mark.parametrize("result", TRICKY_RESULTS.values(), ids=TRICKY_RESULTS)
def test_a_trials_line_is_the_line_of_its_result_json(result):
    """What a trial sends equals what the head would make from result.json."""
    result_json, finite = encode_result(result)
    columns = columns_of(result)
    from_trial = RowFormatter(columns).row_of_report(result, result_json, finite)
    from_json = RowFormatter(columns).row(json.loads(result_json))
    assert from_trial == from_json
    assert "config" not in columns


FLAT_RESULTS = {
    "numbers": {"a": 1, "b": -0.0, "c": 1e100, "d": 2**70, "e": -3.25e-7},
    "text": {"s": 'quote " comma , newline \n cr \r', "t": "ünïcode ✓", "u": ""},
    "odd keys": {'k"ey': 1, "ключ": 2.5, "tab\tkey": None, "flag": True},
}


@pytest.mark.parametrize(
    "result",
    [*FLAT_RESULTS.values(), *TRICKY_RESULTS.values()],
    ids=[*FLAT_RESULTS, *TRICKY_RESULTS],
)
def test_a_trials_two_lines_are_what_json_and_csv_would_write(result):
    """The one-pass encoding is byte for byte json.dumps and csv.writer."""
    lines = ResultLines()
    result_json, row, announced = lines.encode(result)
    assert announced == columns_of(result)
    assert result_json == encode_result(result)[0]
    assert row == RowFormatter(announced).row(json.loads(result_json))


def test_later_results_keep_the_first_results_columns():
    lines = ResultLines()
    lines.encode({"loss": 1.0, "step": 1})
    result_json, row, announced = lines.encode({"step": 2, "extra": "x"})
    assert announced is None
    assert json.loads(result_json) == {"step": 2, "extra": "x"}
    assert row == b",2\r\n"


def read_progress(folder) -> list[list[str]]:
    with open(os.path.join(folder, "progress.csv"), newline="") as f:
        return list(csv.reader(f))


def report(log: TrialLog, lines: ResultLines, result: dict) -> None:
    result_json, row, announced = lines.encode(result)
    if announced:
        log.trial_columns(announced)
    log.append(result_json, row, lambda: json.loads(result_json))


def test_a_new_file_takes_the_trials_columns_and_lines(tmp_path):
    log = TrialLog(str(tmp_path))
    lines = ResultLines()
    for i in (1, 2):
        report(log, lines, {"loss": 1 / i, "training_iteration": i})
    log.close()
    assert read_progress(tmp_path) == [
        ["loss", "training_iteration"],
        ["1.0", "1"],
        ["0.5", "2"],
    ]
    lines = (tmp_path / "result.json").read_bytes().splitlines()
    assert [json.loads(line)["loss"] for line in lines] == [1.0, 0.5]


def test_a_restarted_trial_with_other_columns_keeps_the_files_columns(tmp_path):
    """A trial that comes back reporting another metric must not write lines
    under a header they do not fit: the head makes them for the file's columns."""
    first = TrialLog(str(tmp_path))
    report(first, ResultLines(), {"loss": 1.0, "training_iteration": 1})
    first.close()

    again = TrialLog(str(tmp_path))
    report(
        again, ResultLines(), {"accuracy": 0.9, "loss": 0.5, "training_iteration": 2}
    )
    again.close()

    assert read_progress(tmp_path) == [
        ["loss", "training_iteration"],
        ["1.0", "1"],
        ["0.5", "2"],
    ]


def test_results_without_a_line_get_one_from_the_head(tmp_path):
    log = TrialLog(str(tmp_path))
    result = {"loss": 2.0, "tags": {"a": 1}, "training_iteration": 1}
    result_json = json.dumps(result).encode()
    log.append(result_json, b"", lambda: json.loads(result_json))
    log.close()
    assert read_progress(tmp_path) == [["loss", "training_iteration"], ["2.0", "1"]]
